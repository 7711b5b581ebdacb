use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::server::http::tests::TestServer;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
        .collect()
}

#[tokio::test]
async fn file_device_records_hashed_requests_and_is_fail_closed() {
    let (s, root) = TestServer::unsealed().await;
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("logs/audit.log");
    std::fs::create_dir_all(log.parent().expect("parent")).expect("mkdir");
    let enable = json!({"type": "file", "options": {"file_path": log.display().to_string()}});
    let (st, v) = s
        .call(
            "PUT",
            "/v1/sys/audit/file",
            Some(&root),
            Some(&enable.to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, v) = s.call("GET", "/v1/sys/audit", Some(&root), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["file/"]["type"], "file", "{v}");
    assert_eq!(
        v["data"]["file/"]["options"]["file_path"],
        log.display().to_string()
    );

    let body = json!({"data": {"password": "hunter2-very-secret"}});
    let (st, v) = s
        .call(
            "POST",
            "/v1/secret/data/app",
            Some(&root),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = s
        .call("GET", "/v1/secret/data/app", Some(&root), None)
        .await;
    assert_eq!(st, StatusCode::OK);

    let text = std::fs::read_to_string(&log).expect("audit log");
    assert!(
        !text.contains("hunter2-very-secret"),
        "secret in clear: {text}"
    );
    assert!(!text.contains(&root), "token in clear");
    let entries = lines(&log);
    let writes: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"]["path"] == "secret/data/app")
        .collect();
    assert_eq!(
        writes.len(),
        4,
        "one request and one response line per request: {entries:?}"
    );
    assert_eq!(writes[0]["type"], "request");
    assert_eq!(writes[0]["request"]["operation"], "update");
    let hashed = writes[0]["request"]["data"]["data"]["password"]
        .as_str()
        .unwrap_or("");
    assert!(hashed.starts_with("hmac-sha256:"), "{hashed}");
    assert_eq!(writes[3]["type"], "response");
    assert_eq!(
        writes[3]["response"]["data"]["data"]["password"], hashed,
        "the same value hashes the same in request and response"
    );
    assert!(
        writes[0]["auth"]["client_token"]
            .as_str()
            .unwrap_or("")
            .starts_with("hmac-sha256:")
    );

    // The only device breaks: requests are refused and nothing is written.
    std::fs::remove_dir_all(log.parent().expect("parent")).expect("remove the log directory");
    let body = json!({"data": {"password": "second"}});
    let (st, v) = s
        .call(
            "POST",
            "/v1/secret/data/refused",
            Some(&root),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("no audit device could record"),
        "{v}"
    );
    // With the directory back the device records again; disable it.
    std::fs::create_dir_all(log.parent().expect("parent")).expect("mkdir");
    let (st, _) = s
        .call("DELETE", "/v1/sys/audit/file", Some(&root), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call("GET", "/v1/secret/data/refused", Some(&root), None)
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "the refused write was never applied"
    );
}

#[tokio::test]
async fn audit_endpoints_need_a_valid_request() {
    let (s, root) = TestServer::unsealed().await;
    let (st, v) = s
        .call(
            "PUT",
            "/v1/sys/audit/file",
            Some(&root),
            Some(r#"{"type":"syslog","options":{}}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("use \"file\""),
        "{v}"
    );
    let (st, v) = s
        .call(
            "PUT",
            "/v1/sys/audit/file",
            Some(&root),
            Some(r#"{"type":"file","options":{"file_path":"rel.log"}}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _) = s.call("GET", "/v1/sys/audit", None, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no token");
}
