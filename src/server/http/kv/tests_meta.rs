//! Router tests for KV v2 `metadata/`, LIST, `config` and invalid engine paths.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::tests::{error, srv};

#[tokio::test]
async fn metadata_read_write_patch_delete() {
    let s = srv().await;
    let (st, v) = s.call("GET", "/v1/secret/metadata/m", None).await;
    assert_eq!((st, v), (StatusCode::NOT_FOUND, json!({"errors": []})));
    let settings = json!({
        "max_versions": 5,
        "cas_required": false,
        "delete_version_after": "3h25m19s",
        "custom_metadata": {"owner": "ops", "n": 7}
    });
    let (st, v) = s
        .call("POST", "/v1/secret/metadata/m", Some(settings))
        .await;
    assert_eq!((st, v), (StatusCode::NO_CONTENT, Value::Null));
    s.call("POST", "/v1/secret/data/m", Some(json!({"data": {"a": 1}})))
        .await;
    s.call("POST", "/v1/secret/data/m", Some(json!({"data": {"a": 2}})))
        .await;

    let (st, v) = s.call("GET", "/v1/secret/metadata/m", None).await;
    assert_eq!(st, StatusCode::OK);
    let d = &v["data"];
    assert_eq!(d["current_version"], 2);
    assert_eq!(d["oldest_version"], 0);
    assert_eq!(d["max_versions"], 5);
    assert_eq!(d["cas_required"], false);
    assert_eq!(d["delete_version_after"], "3h25m19s");
    assert_eq!(d["custom_metadata"], json!({"owner": "ops", "n": "7"}));
    assert!(
        d["created_time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{d}"
    );
    assert!(
        d["updated_time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{d}"
    );
    let v1 = &d["versions"]["1"];
    assert_eq!(v1["destroyed"], false);
    assert!(
        v1["created_time"].is_string() && v1["deletion_time"].is_string(),
        "{v1}"
    );
    // The data read carries the key's custom metadata.
    let (_, v) = s.call("GET", "/v1/secret/data/m", None).await;
    assert_eq!(v["data"]["metadata"]["custom_metadata"]["owner"], "ops");

    let patch = json!({"custom_metadata": {"owner": null, "env": "prod"}, "max_versions": 3});
    let ct = [("Content-Type", "application/merge-patch+json")];
    let uri = "/v1/secret/metadata/m";
    let (st, _) = s
        .send_raw("PATCH", uri, Some(&patch.to_string()), &ct)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s.call("GET", "/v1/secret/metadata/m", None).await;
    assert_eq!(
        v["data"]["custom_metadata"],
        json!({"env": "prod", "n": "7"})
    );
    assert_eq!(v["data"]["max_versions"], 3);
    let uri = "/v1/secret/metadata/none";
    let (st, _) = s
        .send_raw("PATCH", uri, Some(&patch.to_string()), &ct)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, _) = s.call("DELETE", "/v1/secret/metadata/m", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    for uri in [
        "/v1/secret/metadata/m",
        "/v1/secret/data/m",
        "/v1/secret/data/m?version=1",
    ] {
        let (st, _) = s.call("GET", uri, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{uri}");
    }
    assert!(
        s.logical_keys().await.is_empty(),
        "all versions and the metadata are gone"
    );
}

#[tokio::test]
async fn metadata_bad_input_and_warnings() {
    let s = srv().await;
    for (body, msg) in [
        (
            json!({"max_versions": -1}),
            "max_versions must be a whole number",
        ),
        (
            json!({"max_versions": "lots"}),
            "max_versions must be a whole number",
        ),
        (
            json!({"cas_required": "maybe"}),
            "cas_required must be true or false",
        ),
        (json!({"delete_version_after": "-5s"}), "cannot be negative"),
        (
            json!({"delete_version_after": "soon"}),
            "delete_version_after",
        ),
        (
            json!({"custom_metadata": "x"}),
            "custom_metadata must be a JSON object",
        ),
        (
            json!({"custom_metadata": {"k": ""}}),
            "custom_metadata validation failed",
        ),
        (
            json!({"custom_metadata": {"k": [1]}}),
            "custom_metadata validation failed",
        ),
    ] {
        let (st, v) = s
            .call("POST", "/v1/secret/metadata/b", Some(body.clone()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(error(&v).contains(msg), "{body}: {v}");
    }
    assert!(s.logical_keys().await.is_empty(), "nothing stored");

    s.call(
        "POST",
        "/v1/secret/config",
        Some(json!({"cas_required": true})),
    )
    .await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/secret/metadata/b",
            Some(json!({"cas_required": false})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("mandated")),
        "{v}"
    );
}

#[tokio::test]
async fn list_keys_and_folders() {
    let s = srv().await;
    for p in ["app/db", "app/api/key", "top"] {
        s.call(
            "POST",
            &format!("/v1/secret/data/{p}"),
            Some(json!({"data": {"a": 1}})),
        )
        .await;
    }
    for (method, uri, want) in [
        ("LIST", "/v1/secret/metadata", json!(["app/", "top"])),
        ("LIST", "/v1/secret/metadata/", json!(["app/", "top"])),
        (
            "GET",
            "/v1/secret/metadata?list=true",
            json!(["app/", "top"]),
        ),
        ("LIST", "/v1/secret/metadata/app", json!(["api/", "db"])),
        (
            "GET",
            "/v1/secret/metadata/app/?list=true",
            json!(["api/", "db"]),
        ),
        ("LIST", "/v1/secret/metadata/app/api/", json!(["key"])),
    ] {
        let (st, v) = s.call(method, uri, None).await;
        assert_eq!(
            (st, v["data"]["keys"].clone()),
            (StatusCode::OK, want),
            "{method} {uri}"
        );
    }
    let (st, v) = s.call("LIST", "/v1/secret/metadata/nothing", None).await;
    assert_eq!((st, v), (StatusCode::NOT_FOUND, json!({"errors": []})));
    let (st, _) = s.call("LIST", "/v1/secret/metadata/../x", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // LIST on data/ is not a KV v2 endpoint.
    let (st, v) = s.call("LIST", "/v1/secret/data/", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(
        v["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("vault kv list")),
        "{v}"
    );
}

#[tokio::test]
async fn config_read_and_write() {
    let s = srv().await;
    let (st, v) = s.call("GET", "/v1/secret/config", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["data"],
        json!({"max_versions": 0, "cas_required": false, "delete_version_after": "0s"})
    );
    let body = json!({"max_versions": 4, "cas_required": true, "delete_version_after": 90});
    let (st, _) = s.call("POST", "/v1/secret/config", Some(body)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s.call("GET", "/v1/secret/config", None).await;
    assert_eq!(
        v["data"],
        json!({"max_versions": 4, "cas_required": true, "delete_version_after": "1m30s"})
    );
    // A negative duration disables delete_version_after; zero clears it.
    s.call(
        "POST",
        "/v1/secret/config",
        Some(json!({"delete_version_after": "-10s"})),
    )
    .await;
    let (_, v) = s.call("GET", "/v1/secret/config", None).await;
    assert_eq!(v["data"]["delete_version_after"], "-1s");
    s.call(
        "POST",
        "/v1/secret/config",
        Some(json!({"delete_version_after": 0})),
    )
    .await;
    let (_, v) = s.call("GET", "/v1/secret/config", None).await;
    assert_eq!(v["data"]["delete_version_after"], "0s");
    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/config",
            Some(json!({"max_versions": -3})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s.call("DELETE", "/v1/secret/config", None).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn invalid_engine_paths_get_vaults_warnings() {
    let s = srv().await;
    for uri in ["/v1/secret/data", "/v1/secret/data/", "/v1/secret/metadata"] {
        let (st, v) = s.call("GET", uri, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(
            v["warnings"][0],
            "Non-listing operations on the root of a K/V v2 mount are not supported.",
            "{uri}"
        );
    }
    for (method, sub) in [("GET", "get"), ("POST", "put"), ("DELETE", "delete")] {
        let (st, v) = s.call(method, "/v1/secret/app/db", Some(json!({}))).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let w = v["warnings"][0].as_str().unwrap_or_default();
        assert!(w.contains(&format!("'vault kv {sub}'")), "{method}: {v}");
    }
    let (st, _) = s.call("GET", "/v1/secret", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.call("OPTIONS", "/v1/secret/data/x", None).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
}
