//! Router tests for KV v2 `data/`, `delete/`, `undelete/`, `destroy/` and `subkeys/`: status
//! codes and the JSON shapes Vault clients check.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::tests::{error, srv};

const MERGE: (&str, &str) = ("Content-Type", "application/merge-patch+json");

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn write_read_versions_and_envelope() {
    let s = srv().await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"user": "a", "n": 1}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        keys(&v),
        [
            "auth",
            "data",
            "lease_duration",
            "lease_id",
            "mount_type",
            "renewable",
            "request_id",
            "warnings",
            "wrap_info"
        ]
    );
    assert_eq!(
        keys(&v["data"]),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    assert_eq!(v["data"]["version"], 1);
    assert_eq!(v["data"]["deletion_time"], "");
    assert_eq!(v["data"]["destroyed"], false);
    assert_eq!(v["data"]["custom_metadata"], Value::Null);
    assert_eq!(
        (v["lease_id"].clone(), v["renewable"].clone()),
        (json!(""), json!(false))
    );
    let created = v["data"]["created_time"].as_str().expect("time").to_owned();
    assert!(humantime::parse_rfc3339(&created).is_ok(), "{created}");

    let (st, v) = s
        .call(
            "PUT",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"user": "b"}})),
        )
        .await;
    assert_eq!(
        (st, v["data"]["version"].clone()),
        (StatusCode::OK, json!(2))
    );

    let (st, v) = s.call("GET", "/v1/secret/data/app/db", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["data"]["data"], json!({"user": "b"}));
    assert_eq!(
        keys(&v["data"]["metadata"]),
        keys(&json!({
            "created_time": 0, "custom_metadata": 0, "deletion_time": 0, "destroyed": 0, "version": 0
        }))
    );
    assert_eq!(v["data"]["metadata"]["version"], 2);
    let (_, v) = s
        .call("GET", "/v1/secret/data/app/db?version=1", None)
        .await;
    assert_eq!(v["data"]["data"], json!({"user": "a", "n": 1}));
    assert_eq!(v["data"]["metadata"]["created_time"], created.as_str());
    for missing in ["/v1/secret/data/app/db?version=7", "/v1/secret/data/nope"] {
        let (st, v) = s.call("GET", missing, None).await;
        assert_eq!(
            (st, v),
            (StatusCode::NOT_FOUND, json!({"errors": []})),
            "{missing}"
        );
    }
    let (st, v) = s
        .call("GET", "/v1/secret/data/app/db?version=abc", None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error(&v).contains("\"version\""), "{v}");
}

#[tokio::test]
async fn check_and_set_and_cas_required() {
    let s = srv().await;
    let w = |cas: Value| json!({"data": {"k": "v"}, "options": {"cas": cas}});
    let (st, _) = s.call("POST", "/v1/secret/data/c", Some(w(json!(0)))).await;
    assert_eq!(st, StatusCode::OK);
    for cas in [json!(0), json!(5), json!(-1), json!("0")] {
        let (st, v) = s
            .call("POST", "/v1/secret/data/c", Some(w(cas.clone())))
            .await;
        assert_eq!(
            (st, error(&v)),
            (
                StatusCode::BAD_REQUEST,
                "check-and-set parameter did not match the current version".to_owned()
            ),
            "cas {cas}"
        );
    }
    let (st, v) = s
        .call("POST", "/v1/secret/data/c", Some(w(json!("1"))))
        .await;
    assert_eq!(
        (st, v["data"]["version"].clone()),
        (StatusCode::OK, json!(2))
    );

    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/config",
            Some(json!({"cas_required": true})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s
        .call("POST", "/v1/secret/data/c", Some(json!({"data": {"k": 1}})))
        .await;
    assert_eq!(
        (st, error(&v)),
        (
            StatusCode::BAD_REQUEST,
            "check-and-set parameter required for this call".to_owned()
        )
    );
    let (st, _) = s.call("POST", "/v1/secret/data/c", Some(w(json!(2)))).await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn patch_needs_merge_patch_and_an_existing_secret() {
    let s = srv().await;
    let body = json!({"data": {"b": {"c": null}, "d": 4}}).to_string();
    let uri = "/v1/secret/data/p";
    let (st, v) = s.send_raw("PATCH", uri, Some(&body), &[MERGE]).await;
    assert_eq!((st, v), (StatusCode::NOT_FOUND, json!({"errors": []})));
    s.call(
        "POST",
        uri,
        Some(json!({"data": {"a": 1, "b": {"c": 2, "x": 3}}})),
    )
    .await;

    let (st, v) = s.send_raw("PATCH", uri, Some(&body), &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let json_ct = [("Content-Type", "application/json")];
    let (st, v) = s.send_raw("PATCH", uri, Some(&body), &json_ct).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert!(error(&v).contains("application/merge-patch+json"), "{v}");

    let (st, v) = s.send_raw("PATCH", uri, Some(&body), &[MERGE]).await;
    assert_eq!(
        (st, v["data"]["version"].clone()),
        (StatusCode::OK, json!(2)),
        "{v}"
    );
    let (_, v) = s.call("GET", uri, None).await;
    assert_eq!(v["data"]["data"], json!({"a": 1, "b": {"x": 3}, "d": 4}));
    let stale = json!({"data": {"a": 9}, "options": {"cas": 1}}).to_string();
    let (st, v) = s.send_raw("PATCH", uri, Some(&stale), &[MERGE]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    // A deleted current version cannot be patched: 404 with its metadata.
    s.call("DELETE", uri, None).await;
    let (st, v) = s.send_raw("PATCH", uri, Some(&body), &[MERGE]).await;
    assert_eq!(
        (st, v["data"]["version"].clone()),
        (StatusCode::NOT_FOUND, json!(2)),
        "{v}"
    );
}

#[tokio::test]
async fn delete_undelete_destroy_round_trip() {
    let s = srv().await;
    let uri = "/v1/secret/data/d";
    for i in 1..=3 {
        s.call("POST", uri, Some(json!({"data": {"i": i}}))).await;
    }
    let (st, v) = s.call("DELETE", uri, None).await;
    assert_eq!((st, v), (StatusCode::NO_CONTENT, Value::Null));
    let (st, v) = s.call("GET", uri, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["data"]["data"], Value::Null);
    assert_eq!(v["data"]["metadata"]["version"], 3);
    assert_ne!(v["data"]["metadata"]["deletion_time"], "");
    assert_eq!(v["data"]["metadata"]["destroyed"], false);
    assert!(v.get("errors").is_none(), "{v}");

    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/delete/d",
            Some(json!({"versions": "1,2"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.call("GET", &format!("{uri}?version=1"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .call(
            "PUT",
            "/v1/secret/undelete/d",
            Some(json!({"versions": [1, "3"]})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.call("GET", uri, None).await;
    assert_eq!(
        (st, v["data"]["data"].clone()),
        (StatusCode::OK, json!({"i": 3}))
    );
    let (st, _) = s.call("GET", &format!("{uri}?version=2"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/destroy/d",
            Some(json!({"versions": [3]})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.call("GET", uri, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["data"]["metadata"]["destroyed"], true);
    assert_eq!(v["data"]["metadata"]["deletion_time"], "");

    for (op, msg) in [
        ("delete", "No version number provided"),
        ("undelete", "No version number provided"),
        ("destroy", "no version number provided"),
    ] {
        let (st, v) = s
            .call("POST", &format!("/v1/secret/{op}/d"), Some(json!({})))
            .await;
        assert_eq!(
            (st, error(&v)),
            (StatusCode::BAD_REQUEST, msg.to_owned()),
            "{op}"
        );
        let (st, v) = s
            .call(
                "POST",
                &format!("/v1/secret/{op}/d"),
                Some(json!({"versions": [{}]})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{op}: {v}");
        let (st, _) = s.call("GET", &format!("/v1/secret/{op}/d"), None).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{op}");
        // Missing keys are not an error, as in Vault.
        let (st, _) = s
            .call(
                "POST",
                &format!("/v1/secret/{op}/missing"),
                Some(json!({"versions": [1]})),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{op}");
    }
    let (st, _) = s.call("DELETE", "/v1/secret/data/missing", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn subkeys_depth_and_version() {
    let s = srv().await;
    let nested = json!({"data": {"foo": "abc", "bar": {"baz": {"q": 1}}, "quux": {}}});
    s.call("POST", "/v1/secret/data/sk", Some(nested)).await;
    s.call(
        "POST",
        "/v1/secret/data/sk",
        Some(json!({"data": {"only": "v2"}})),
    )
    .await;
    let (st, v) = s.call("GET", "/v1/secret/subkeys/sk?version=1", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["subkeys"],
        json!({"foo": null, "bar": {"baz": {"q": null}}, "quux": null})
    );
    assert_eq!(v["data"]["metadata"]["version"], 1);
    let (_, v) = s
        .call("GET", "/v1/secret/subkeys/sk?version=1&depth=1", None)
        .await;
    assert_eq!(
        v["data"]["subkeys"],
        json!({"foo": null, "bar": null, "quux": null})
    );
    let (_, v) = s.call("GET", "/v1/secret/subkeys/sk", None).await;
    assert_eq!(v["data"]["subkeys"], json!({"only": null}));
    let (st, v) = s.call("GET", "/v1/secret/subkeys/none", None).await;
    assert_eq!((st, v), (StatusCode::NOT_FOUND, json!({"errors": []})));
    s.call("DELETE", "/v1/secret/data/sk", None).await;
    let (st, v) = s.call("GET", "/v1/secret/subkeys/sk", None).await;
    assert_eq!(
        (st, v["data"]["subkeys"].clone()),
        (StatusCode::NOT_FOUND, Value::Null)
    );
    assert_eq!(v["data"]["metadata"]["version"], 2);
}

#[tokio::test]
async fn max_versions_and_delete_version_after_over_http() {
    let s = srv().await;
    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/metadata/mv",
            Some(json!({"max_versions": 2})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    for i in 1..=4 {
        s.call(
            "POST",
            "/v1/secret/data/mv",
            Some(json!({"data": {"i": i}})),
        )
        .await;
    }
    let (_, v) = s.call("GET", "/v1/secret/metadata/mv", None).await;
    assert_eq!(keys(&v["data"]["versions"]), ["3", "4"]);
    assert_eq!(v["data"]["oldest_version"], 3);
    let (st, _) = s.call("GET", "/v1/secret/data/mv?version=2", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/config",
            Some(json!({"delete_version_after": "1h"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s
        .call(
            "POST",
            "/v1/secret/data/dva",
            Some(json!({"data": {"a": 1}})),
        )
        .await;
    let deletion = v["data"]["deletion_time"]
        .as_str()
        .expect("time")
        .to_owned();
    let created = v["data"]["created_time"].as_str().expect("time").to_owned();
    let gap = humantime::parse_rfc3339(&deletion)
        .expect("deletion")
        .duration_since(humantime::parse_rfc3339(&created).expect("created"))
        .expect("later");
    assert_eq!(gap.as_secs(), 3600);
    let (st, _) = s.call("GET", "/v1/secret/data/dva", None).await;
    assert_eq!(st, StatusCode::OK, "not yet deleted");
}
