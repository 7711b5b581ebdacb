//! Router tests for `sys/mounts` and `sys/mounts/<path>/tune`, and routing to new mounts.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::server::http::kv::tests::{error, srv};

fn kv2() -> Value {
    json!({"type": "kv", "options": {"version": "2"}, "description": "team secrets"})
}

#[tokio::test]
async fn list_mounts_in_vaults_shape() {
    let s = srv().await;
    let (st, v) = s.call("GET", "/v1/sys/mounts", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let secret = &v["data"]["secret/"];
    assert_eq!(secret["type"], "kv");
    assert_eq!(secret["options"], json!({"version": "2"}));
    assert_eq!(secret["description"], "key/value secret storage");
    assert!(
        secret["accessor"]
            .as_str()
            .is_some_and(|a| a.starts_with("kv_")),
        "{secret}"
    );
    assert!(
        secret["uuid"].as_str().is_some_and(|u| u.len() == 36),
        "{secret}"
    );
    assert_eq!(
        secret["config"],
        json!({"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0})
    );
    assert_eq!(
        (secret["local"].clone(), secret["seal_wrap"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(v["data"]["sys/"]["type"], "system");
    assert_eq!(v["data"]["sys/"]["options"], Value::Null);
    // Vault repeats the mounts at the top level.
    assert_eq!(v["secret/"], *secret);
    assert_eq!(v["request_id"].as_str().map(str::len), Some(36));
    let (st, _) = s.server.call("GET", "/v1/sys/mounts", None, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.call("DELETE", "/v1/sys/mounts", None).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn mount_use_and_unmount_a_kv_engine() {
    let s = srv().await;
    let (st, v) = s.call("POST", "/v1/sys/mounts/team/kv", Some(kv2())).await;
    assert_eq!((st, v), (StatusCode::NO_CONTENT, Value::Null));
    let (st, v) = s.call("GET", "/v1/sys/mounts/team/kv", None).await;
    assert_eq!(
        (st, v["data"]["type"].clone()),
        (StatusCode::OK, json!("kv")),
        "{v}"
    );
    assert_eq!(v["data"]["description"], "team secrets");

    let (st, _) = s
        .call(
            "POST",
            "/v1/team/kv/data/app",
            Some(json!({"data": {"k": "v"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.call("GET", "/v1/team/kv/data/app", None).await;
    assert_eq!(
        (st, v["data"]["data"]["k"].clone()),
        (StatusCode::OK, json!("v"))
    );
    // Mounts are separate: the same key under secret/ does not exist.
    let (st, _) = s.call("GET", "/v1/secret/data/app", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, _) = s.call("DELETE", "/v1/sys/mounts/team/kv", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.call("GET", "/v1/team/kv/data/app", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(error(&v).contains("no handler for route"), "{v}");
    let (st, _) = s.call("DELETE", "/v1/sys/mounts/team/kv", None).await;
    assert_eq!(
        st,
        StatusCode::NO_CONTENT,
        "unmounting nothing succeeds, as in Vault"
    );
    // Only secret/'s data is left (none was written there).
    assert!(
        s.logical_keys().await.is_empty(),
        "{:?}",
        s.logical_keys().await
    );

    // kv-v2 is accepted as a type; remounting at the same path starts empty.
    let (st, _) = s
        .call(
            "PUT",
            "/v1/sys/mounts/team/kv",
            Some(json!({"type": "kv-v2"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.call("GET", "/v1/team/kv/data/app", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mount_requests_are_validated() {
    let s = srv().await;
    let cases = [
        ("secret", kv2(), "path is already in use at secret/"),
        ("secret/inner", kv2(), "path is already in use at secret/"),
        ("x", json!({"type": "kv"}), "kv version 1"),
        (
            "x",
            json!({"type": "kv", "options": {"version": 1}}),
            "kv version 1",
        ),
        ("x", json!({"type": "pki"}), "\"pki\" is not supported"),
        (
            "x",
            json!({"description": "no type"}),
            "backend type must be specified",
        ),
        (
            "x",
            json!({"type": "kv", "options": "2"}),
            "options must be a JSON object",
        ),
        ("sys/x", kv2(), "reserved"),
        ("auth/kv", kv2(), "reserved"),
        ("cubbyhole", kv2(), "reserved"),
        ("a/../b", kv2(), "'.' and '..'"),
        ("a%2Fb", kv2(), "encoded slashes"),
    ];
    for (path, body, msg) in cases {
        let (st, v) = s
            .call("POST", &format!("/v1/sys/mounts/{path}"), Some(body))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(error(&v).contains(msg), "{path}: {v}");
    }
    let (st, v) = s.send_raw("POST", "/v1/sys/mounts/x", Some("{"), &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error(&v).contains("failed to parse JSON input"), "{v}");
    let (st, v) = s.call("DELETE", "/v1/sys/mounts/sys", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (_, v) = s.call("GET", "/v1/sys/mounts", None).await;
    let mut paths: Vec<_> = v["data"]
        .as_object()
        .expect("mounts")
        .keys()
        .cloned()
        .collect();
    paths.sort();
    assert_eq!(paths, ["secret/", "sys/"]);
}

#[tokio::test]
async fn tune_reads_and_sets_settings_and_max_versions() {
    let s = srv().await;
    let (st, v) = s.call("GET", "/v1/sys/mounts/secret/tune", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["default_lease_ttl"], 2_764_800);
    assert_eq!(v["data"]["max_lease_ttl"], 2_764_800);
    assert_eq!(v["data"]["options"], json!({"version": "2"}));
    assert_eq!(v["data"]["description"], "key/value secret storage");

    let tune = json!({
        "description": "tuned",
        "default_lease_ttl": "1h",
        "options": {"max_versions": "2"}
    });
    let (st, v) = s
        .call("POST", "/v1/sys/mounts/secret/tune", Some(tune))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (_, v) = s.call("GET", "/v1/sys/mounts/secret/tune", None).await;
    assert_eq!(
        (
            v["data"]["description"].clone(),
            v["data"]["default_lease_ttl"].clone()
        ),
        (json!("tuned"), json!(3600))
    );
    let (_, v) = s.call("GET", "/v1/secret/config", None).await;
    assert_eq!(v["data"]["max_versions"], 2);
    for i in 1..=3 {
        s.call("POST", "/v1/secret/data/t", Some(json!({"data": {"i": i}})))
            .await;
    }
    let (_, v) = s.call("GET", "/v1/secret/metadata/t", None).await;
    assert_eq!(v["data"]["versions"].as_object().map(|m| m.len()), Some(2));

    let (st, v) = s
        .call(
            "POST",
            "/v1/sys/mounts/secret/tune",
            Some(json!({"options": {"version": "1"}})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _) = s
        .call("POST", "/v1/sys/mounts/nope/tune", Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s.call("GET", "/v1/sys/mounts/nope", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unmounting_secret_routes_it_nowhere() {
    let s = srv().await;
    s.call("POST", "/v1/secret/data/x", Some(json!({"data": {"a": 1}})))
        .await;
    let (st, _) = s.call("DELETE", "/v1/sys/mounts/secret/", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.call("GET", "/v1/secret/data/x", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        error(&v),
        "no handler for route \"secret/data/x\". route entry not found."
    );
    assert!(s.logical_keys().await.is_empty());
}

#[tokio::test]
async fn ui_mount_preflight_tells_the_cli_it_is_kv_v2() {
    let s = srv().await;
    let (st, v) = s
        .call("GET", "/v1/sys/internal/ui/mounts/secret/app/db", None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["path"], "secret/");
    assert_eq!(v["data"]["type"], "kv");
    assert_eq!(v["data"]["options"]["version"], "2");
    let (st, _) = s
        .call("GET", "/v1/sys/internal/ui/mounts/nomount/x", None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .server
        .call("GET", "/v1/sys/internal/ui/mounts/secret/x", None, None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A token with access to secret/data/app/* may see the mount; one without may not.
    let hcl = "path \"secret/data/app/*\" { capabilities = [\"read\"] }";
    let (st, _) = s
        .call(
            "PUT",
            "/v1/sys/policies/acl/app",
            Some(json!({ "policy": hcl })),
        )
        .await;
    assert!(st.is_success());
    let create = json!({"policies": ["app"], "no_default_policy": true});
    let (_, v) = s.call("POST", "/v1/auth/token/create", Some(create)).await;
    let app = v["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let uri = "/v1/sys/internal/ui/mounts/secret/app/db";
    let (st, v) = s.server.call("GET", uri, Some(&app), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let uri = "/v1/sys/internal/ui/mounts/secret/other";
    let (st, _) = s.server.call("GET", uri, Some(&app), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}
