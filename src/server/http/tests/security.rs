//! Regression tests of the security review (issue 11): each failed on the code before the one
//! front door, and passes now.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::server::http::kv::tests::{Srv, error, srv, token_with_policy};

fn kv2() -> Value {
    json!({"type": "kv", "options": {"version": "2"}})
}

/// High: a token with `sys/mounts/*` but `deny` on `sys/mounts/victim` could read, tune and
/// delete the victim mount (and its data) by encoding the name twice (`v%2569ctim`): the ACL
/// checked the once-decoded path, the mounts handler decoded again.
#[tokio::test]
async fn a_doubly_encoded_mount_name_cannot_bypass_a_deny() {
    let s = srv().await;
    let (st, _) = s.call("POST", "/v1/sys/mounts/victim", Some(kv2())).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(
            "POST",
            "/v1/victim/data/db",
            Some(json!({"data": {"password": "p"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let attacker = token_with_policy(
        &s,
        "mount-admin",
        r#"path "sys/mounts/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
           path "sys/mounts/victim" { capabilities = ["deny"] }
           path "sys/mounts/victim/*" { capabilities = ["deny"] }"#,
    )
    .await;
    for (method, uri, body) in [
        ("GET", "/v1/sys/mounts/v%2569ctim", None),
        ("GET", "/v1/sys/mounts/v%2569ctim/tune", None),
        (
            "POST",
            "/v1/sys/mounts/v%2569ctim/tune",
            Some(r#"{"description":"pwned"}"#),
        ),
        ("DELETE", "/v1/sys/mounts/v%2569ctim", None),
        ("DELETE", "/v1/sys/mounts/%76ictim", None),
        ("DELETE", "/v1/sys/mounts/victim", None),
    ] {
        let (st, v) = s.server.call(method, uri, Some(&attacker), body).await;
        // A DELETE of a name nothing is mounted at succeeds, as in Vault; whether it touched
        // the victim is checked below.
        if method != "DELETE" {
            assert!(!st.is_success(), "{method} {uri}: {st} {v}");
        }
        let (st, v) = s.call("GET", "/v1/sys/mounts/victim", None).await;
        assert_eq!(st, StatusCode::OK, "after {method} {uri}: {v}");
    }
    // The victim is still mounted, untuned, with its data.
    let (st, v) = s.call("GET", "/v1/sys/mounts/victim", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_ne!(v["data"]["description"], "pwned");
    let (st, v) = s.call("GET", "/v1/victim/data/db", None).await;
    assert_eq!(
        (st, v["data"]["data"]["password"].clone()),
        (StatusCode::OK, json!("p"))
    );
}

/// A path is decoded exactly once, for every route: a doubly encoded key names the key with
/// the once-decoded name, never the twice-decoded one.
#[tokio::test]
async fn paths_are_decoded_exactly_once() {
    let s = srv().await;
    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/data/%2561pp",
            Some(json!({"data": {"k": 1}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.call("GET", "/v1/secret/data/app", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "not the twice-decoded name");
    let (st, v) = s.call("LIST", "/v1/secret/metadata/", None).await;
    assert_eq!(
        (st, v["data"]["keys"].clone()),
        (StatusCode::OK, json!(["%61pp"]))
    );
    for bad in [
        "/v1/secret/data/a%2Fb",
        "/v1/sys/mounts/a%2fb",
        "/v1/sys/policies/acl/..",
        "/v1/sys/%2e%2e/secret/data/x",
        "/v1/auth/token/lookup%00-self",
        "/v1/secret//data/x",
    ] {
        let (st, v) = s.call("GET", bad, None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(error(&v).starts_with("invalid request path"), "{bad}: {v}");
    }
    // An encoded static segment routes like the plain one (routing sees the decoded path).
    let (st, v) = s.call("GET", "/v1/sys/%6dounts", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["secret/"]["type"], "kv");
}

async fn status(s: &Srv, token: &str, method: &str, uri: &str, body: Option<Value>) -> StatusCode {
    let body = body.map(|b| b.to_string());
    s.server
        .call(method, uri, Some(token), body.as_deref())
        .await
        .0
}

/// `sys/auth/*` (and Vault's other root-protected paths) need `sudo` besides the operation's
/// capability; before, `update` on `sys/auth/*` was enough to enable or disable a method.
#[tokio::test]
async fn root_protected_paths_need_sudo() {
    let s = srv().await;
    let plain = token_with_policy(
        &s,
        "no-sudo",
        r#"path "sys/auth/*" { capabilities = ["create", "read", "update", "delete"] }
           path "sys/rotate" { capabilities = ["update"] }
           path "sys/seal" { capabilities = ["update"] }
           path "sys/key-status" { capabilities = ["read"] }
           path "sys/audit/*" { capabilities = ["create", "update", "delete"] }
           path "auth/token/revoke-orphan" { capabilities = ["update"] }"#,
    )
    .await;
    let sudo = token_with_policy(
        &s,
        "with-sudo",
        r#"path "sys/auth/*" { capabilities = ["create", "read", "update", "delete", "sudo"] }
           path "sys/rotate" { capabilities = ["update", "sudo"] }
           path "sys/key-status" { capabilities = ["read", "sudo"] }
           path "sys/seal" { capabilities = ["update", "sudo"] }"#,
    )
    .await;
    let k8s = Some(json!({"type": "kubernetes"}));
    for (method, uri, body) in [
        ("POST", "/v1/sys/auth/kubernetes", k8s.clone()),
        ("POST", "/v1/sys/rotate", None),
        ("GET", "/v1/sys/key-status", None),
        (
            "POST",
            "/v1/sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": "stdout"}})),
        ),
        (
            "POST",
            "/v1/auth/token/revoke-orphan",
            Some(json!({"token": "x"})),
        ),
        ("POST", "/v1/sys/seal", None),
    ] {
        assert_eq!(
            status(&s, &plain, method, uri, body).await,
            StatusCode::FORBIDDEN,
            "{method} {uri} without sudo"
        );
    }
    assert_eq!(
        status(&s, &sudo, "POST", "/v1/sys/auth/kubernetes", k8s).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&s, &sudo, "GET", "/v1/sys/auth", None).await,
        StatusCode::FORBIDDEN,
        "listing needs read on sys/auth, which this policy does not grant"
    );
    assert_eq!(
        status(&s, &sudo, "DELETE", "/v1/sys/auth/kubernetes", None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&s, &sudo, "POST", "/v1/sys/rotate", None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(&s, &sudo, "GET", "/v1/sys/key-status", None).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&s, &sudo, "POST", "/v1/sys/seal", None).await,
        StatusCode::NO_CONTENT,
        "sudo, not root, may seal"
    );
    let (st, v) = s.call("GET", "/v1/secret/data/x", None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "sealed: {v}");
}

/// The audit log records the path the ACL checked (decoded), not the raw URL.
#[tokio::test]
async fn the_audit_log_records_the_decoded_path() {
    let s = srv().await;
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("audit.log");
    let (st, v) = s
        .call(
            "POST",
            "/v1/sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/data/%61pp",
            Some(json!({"data": {"k": "v"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let text = std::fs::read_to_string(&log).expect("log");
    let paths: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["request"]["path"].as_str().map(str::to_owned))
        .collect();
    assert!(
        paths.iter().any(|p| p == "secret/data/app"),
        "decoded path recorded: {paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains('%')),
        "no raw path recorded: {paths:?}"
    );
}

/// The audit log's `remote_address` is the client's IP as the listener (or, for a forwarded
/// request, the forwarding route) gives it in `ConnectInfo`.
#[tokio::test]
async fn the_audit_log_records_the_client_address() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use tower::ServiceExt;

    let s = srv().await;
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("audit.log");
    let (st, v) = s
        .call(
            "POST",
            "/v1/sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let mut req = axum::http::Request::builder()
        .method("GET")
        .uri("/v1/secret/data/where")
        .header("X-Vault-Token", &s.root)
        .body(Body::empty())
        .expect("request");
    let client: std::net::SocketAddr = "203.0.113.9:40000".parse().expect("addr");
    req.extensions_mut().insert(ConnectInfo(client));
    let resp = s.server.app.clone().oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let text = std::fs::read_to_string(&log).expect("log");
    let addrs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["request"]["path"] == "secret/data/where")
        .map(|v| v["request"]["remote_address"].clone())
        .collect();
    assert!(!addrs.is_empty(), "{text}");
    assert!(addrs.iter().all(|a| a == "203.0.113.9"), "{addrs:?}");
}

/// Request bodies are parsed with serde_json's nesting limit (128): a deeply nested body is a
/// 400 naming the cause, never a crash, and a body at a sane depth still works.
#[tokio::test]
async fn deeply_nested_request_bodies_are_refused_not_fatal() {
    let s = srv().await;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let ok = format!(r#"{{"data": {{"k": {}}}}}"#, nested(100));
    let (st, v) = s
        .send_raw("POST", "/v1/secret/data/deep", Some(&ok), &[])
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for depth in [129, 200, 30_000] {
        let body = format!(r#"{{"data": {{"k": {}}}}}"#, nested(depth));
        let (st, v) = s
            .send_raw("POST", "/v1/secret/data/deeper", Some(&body), &[])
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "depth {depth}: {v}");
        assert!(error(&v).contains("recursion limit"), "depth {depth}: {v}");
    }
    let (st, _) = s.call("GET", "/v1/secret/data/deep", None).await;
    assert_eq!(st, StatusCode::OK, "the server is still serving");
}
