//! A request forwarded over the cluster port runs through the active node's whole API (front
//! door, ACL, audit): the answer comes back exactly, and the audit log records the original
//! client's address. The standby's side is a bare `Forwarder`: deciding to forward needs a
//! raft standby (covered by the multi-process HA tests).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::server::cluster::{
    ClusterListener, ClusterTls, ForwardedRequest, Forwarder, ListenerLimits, forward_routes,
};
use crate::server::http::kv::tests::{Srv, srv};

async fn send(
    f: &Forwarder,
    url: &str,
    method: Method,
    pq: &str,
    token: &str,
    body: &str,
) -> (StatusCode, Value) {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-vault-token",
        HeaderValue::from_str(token).expect("token"),
    );
    let req = ForwardedRequest {
        method,
        path_and_query: pq.into(),
        headers,
        body: Bytes::from(body.to_owned()),
        client_addr: Some("198.51.100.4:5000".parse().expect("addr")),
    };
    let resp = tokio::time::timeout(Duration::from_secs(10), f.forward(url, req))
        .await
        .expect("bounded")
        .expect("forwarded");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json")
    };
    (status, v)
}

async fn enable_file_audit(s: &Srv, log: &std::path::Path) {
    let (st, v) = s
        .call(
            "POST",
            "/v1/sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_requests_run_through_the_api_and_audit_the_original_client() {
    let s = srv().await;
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("audit.log");
    enable_file_audit(&s, &log).await;

    let ca = ClusterTls::generate().expect("ca");
    let active = ca
        .issue_node("active", "https://127.0.0.1:8201")
        .expect("issue");
    let listener = ClusterListener::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &active,
        ListenerLimits::default(),
    )
    .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let (_stop, rx) = watch::channel(false);
    tokio::spawn(listener.serve(
        forward_routes(s.server.app.clone()),
        rx,
        Duration::from_secs(1),
    ));
    let standby = ca
        .issue_node("standby", "https://127.0.0.1:8202")
        .expect("issue");
    let f = Forwarder::new();
    f.set_tls(standby.client_config().expect("client config"));

    let (st, v) = send(
        &f,
        &url,
        Method::PUT,
        "/v1/secret/data/fw",
        &s.root,
        r#"{"data":{"k":"v"}}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = send(
        &f,
        &url,
        Method::GET,
        "/v1/secret/data/fw?version=1",
        &s.root,
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["data"], json!({"k": "v"}));
    // The ACL of the active node applies: a bad token is its 403, relayed as it is.
    let (st, v) = send(&f, &url, Method::GET, "/v1/secret/data/fw", "s.nope", "").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(v["errors"].is_array(), "{v}");
    // Vault's LIST verb survives the trip.
    let (st, v) = send(
        &f,
        &url,
        Method::from_bytes(b"LIST").expect("m"),
        "/v1/secret/metadata/",
        &s.root,
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["keys"], json!(["fw"]));

    let text = std::fs::read_to_string(&log).expect("log");
    let requests: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "request")
        .filter(|v| {
            v["request"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("secret/"))
        })
        .collect();
    assert!(requests.len() >= 3, "{text}");
    for r in &requests {
        assert_eq!(r["request"]["remote_address"], "198.51.100.4", "{r}");
    }
}
