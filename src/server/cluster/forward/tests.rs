//! Tests of request forwarding: two in-process cluster ports with certificates of one cluster
//! CA; the "leader" serves `forward_routes` over an API router that echoes what it sees.
//! Real TCP on 127.0.0.1 ephemeral ports; every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::*;
use crate::server::cluster::{
    ClusterListener, ClusterTls, ListenerLimits, NodeTls, PeerClient, RaftRpcService, router,
};

const BOUND: Duration = Duration::from_secs(10);

mod wire;

struct NoRaft;

#[async_trait]
impl RaftRpcService for NoRaft {
    async fn handle(&self, _request: Bytes) -> Vec<u8> {
        Vec::new()
    }
}

/// The leader's API: echoes the request as JSON with status 201 and a response header of its
/// own (and a hop-by-hop one that must not reach the client).
#[derive(Clone)]
struct Api {
    name: &'static str,
    calls: Arc<AtomicUsize>,
}

async fn echo(State(api): State<Api>, req: Request) -> Response {
    api.calls.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let mut headers = serde_json::Map::new();
    for k in parts.headers.keys() {
        let all: Vec<String> = parts
            .headers
            .get_all(k)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(k.to_string(), json!(all.join(", ")));
    }
    let reply = json!({
        "node": api.name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "client": parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string()),
        "marked": parts.extensions.get::<Forwarded>().is_some(),
    });
    (
        StatusCode::CREATED,
        [("x-echo", "yes"), ("keep-alive", "timeout=5")],
        reply.to_string(),
    )
        .into_response()
}

struct Leader {
    url: String,
    node: NodeTls,
    calls: Arc<AtomicUsize>,
    _stop: watch::Sender<bool>,
}

/// A cluster port serving the raft route and, when `forwarding`, the forwarding route.
async fn leader(ca: &ClusterTls, name: &'static str, forwarding: bool) -> Leader {
    let node = ca
        .issue_node(name, "https://127.0.0.1:8201")
        .expect("issue");
    let listener = ClusterListener::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &node,
        ListenerLimits::default(),
    )
    .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let calls = Arc::new(AtomicUsize::new(0));
    let api = Router::new().fallback(echo).with_state(Api {
        name,
        calls: Arc::clone(&calls),
    });
    let mut app = router(Arc::new(NoRaft));
    if forwarding {
        app = app.merge(forward_routes(api));
    }
    let (stop, rx) = watch::channel(false);
    tokio::spawn(listener.serve(app, rx, Duration::from_secs(1)));
    Leader {
        url,
        node,
        calls,
        _stop: stop,
    }
}

fn standby(ca: &ClusterTls) -> Forwarder {
    let node = ca
        .issue_node("standby", "https://127.0.0.1:8202")
        .expect("issue");
    let f = Forwarder::new();
    f.set_tls(node.client_config().expect("client config"));
    f
}

fn request(method: &str, pq: &str, body: &str, headers: &[(&str, &str)]) -> ForwardedRequest {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    ForwardedRequest {
        method: Method::from_bytes(method.as_bytes()).expect("method"),
        path_and_query: pq.into(),
        headers: map,
        body: Bytes::from(body.to_owned()),
        client_addr: Some("203.0.113.7:51234".parse().expect("addr")),
    }
}

async fn forward(
    f: &Forwarder,
    url: &str,
    req: ForwardedRequest,
) -> Result<(StatusCode, HeaderMap, Value), ForwardError> {
    let resp = tokio::time::timeout(BOUND, f.forward(url, req))
        .await
        .expect("bounded")?;
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let v = serde_json::from_slice(&bytes).expect("json reply");
    Ok((parts.status, parts.headers, v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_forwarded_and_answers_relayed_exactly() {
    let ca = ClusterTls::generate().expect("ca");
    let l = leader(&ca, "leader", true).await;
    let f = standby(&ca);
    let cases = [
        ("GET", "/v1/secret/data/a?version=2&x=%2F", ""),
        ("PUT", "/v1/secret/data/a", r#"{"data":{"k":"v"}}"#),
        ("DELETE", "/v1/secret/metadata/a?b=1", "tail"),
        ("LIST", "/v1/secret/metadata/", ""),
        ("POST", "/v1/sys/policies/acl/p", &"x".repeat(200_000)),
    ];
    for (method, pq, body) in cases {
        let req = request(
            method,
            pq,
            body,
            &[
                ("x-vault-token", "s.token"),
                ("x-custom", "one"),
                ("x-custom", "two"),
                ("connection", "keep-alive, x-named-by-connection"),
                ("x-named-by-connection", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("trailer", "x-t"),
                ("upgrade", "h2c"),
                ("proxy-authorization", "Basic eA=="),
                ("host", "standby:8200"),
                ("x-sealkeep-forward-method", "DELETE"),
                ("x-sealkeep-forward-client", "10.0.0.1:1"),
                ("x-sealkeep-forwarded", "0"),
            ],
        );
        let (status, headers, v) = forward(&f, &l.url, req).await.expect(method);
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(
            headers.get("x-echo").map(|h| h.as_bytes()),
            Some(&b"yes"[..])
        );
        for gone in ["keep-alive", RELAYED_HEADER] {
            assert!(!headers.contains_key(gone), "{gone} reached the client");
        }
        assert_eq!(v["node"], "leader");
        assert_eq!(v["method"], method);
        assert_eq!(v["uri"], pq);
        assert_eq!(v["body"], body);
        assert_eq!(v["client"], "203.0.113.7:51234");
        assert_eq!(v["marked"], true);
        let seen = v["headers"].as_object().expect("headers");
        assert_eq!(seen["x-vault-token"], "s.token");
        assert_eq!(
            seen["x-custom"], "one, two",
            "repeated headers keep every value"
        );
        assert_eq!(seen["x-sealkeep-forwarded"], "1");
        for gone in [
            "connection",
            "x-named-by-connection",
            "keep-alive",
            "te",
            "trailer",
            "upgrade",
            "proxy-authorization",
            "host",
            METHOD_HEADER,
            URI_HEADER,
            CLIENT_HEADER,
        ] {
            assert!(
                !seen.contains_key(gone),
                "{method}: {gone} was forwarded: {v}"
            );
        }
    }
    assert_eq!(l.calls.load(Ordering::SeqCst), cases.len());

    // Without a known client address the API sees none (and nothing is invented).
    let mut req = request("GET", "/v1/a", "", &[]);
    req.client_addr = None;
    let (_, _, v) = forward(&f, &l.url, req).await.expect("no client");
    assert_eq!(v["client"], Value::Null);
}

/// An answer to HEAD arrives without a body (and without a Content-Length that would not
/// match the empty body of the answer to the cluster port's POST).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_requests_are_answered_without_a_body() {
    let ca = ClusterTls::generate().expect("ca");
    let l = leader(&ca, "leader", true).await;
    let f = standby(&ca);
    let resp = tokio::time::timeout(BOUND, f.forward(&l.url, request("HEAD", "/v1/x", "", &[])))
        .await
        .expect("bounded")
        .expect("forwarded");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        resp.headers().get("x-echo").map(|h| h.as_bytes()),
        Some(&b"yes"[..])
    );
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    assert!(body.is_empty(), "{body:?}");
    assert_eq!(l.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_gets_a_new_connection() {
    let ca = ClusterTls::generate().expect("ca");
    let a = leader(&ca, "node-a", true).await;
    let b = leader(&ca, "node-b", true).await;
    let f = standby(&ca);
    for (url, name) in [(&a.url, "node-a"), (&b.url, "node-b"), (&a.url, "node-a")] {
        let (_, _, v) = forward(&f, url, request("GET", "/v1/x", "", &[]))
            .await
            .expect("forward");
        assert_eq!(v["node"], name);
    }
    assert_eq!(a.calls.load(Ordering::SeqCst), 2);
    assert_eq!(b.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_needs_tls_and_a_certificate_of_the_cluster() {
    let ca = ClusterTls::generate().expect("ca");
    let l = leader(&ca, "leader", true).await;

    let err = forward(&Forwarder::new(), &l.url, request("GET", "/v1/x", "", &[]))
        .await
        .expect_err("no TLS yet");
    assert!(matches!(err, ForwardError::NotReady), "{err}");
    assert!(err.to_string().contains("307"), "{err}");

    // A node of another cluster that trusts this leader's CA: the leader refuses it.
    let foreign = ClusterTls::generate()
        .expect("ca")
        .issue_node("intruder", "https://127.0.0.1:8203")
        .expect("issue");
    let f = Forwarder::new();
    f.set_tls(foreign.client_config_trusting(&l.node));
    let err = forward(&f, &l.url, request("PUT", "/v1/x", "b", &[]))
        .await
        .expect_err("foreign certificate");
    assert!(
        matches!(err, ForwardError::Connect(_) | ForwardError::Request(_)),
        "{err}"
    );
    // A node of another cluster that does not trust this leader gives up while connecting.
    f.set_tls(foreign.client_config().expect("cfg"));
    let err = forward(&f, &l.url, request("PUT", "/v1/x", "b", &[]))
        .await
        .expect_err("unknown server CA");
    assert!(matches!(err, ForwardError::Connect(_)), "{err}");
    assert_eq!(l.calls.load(Ordering::SeqCst), 0, "nothing was served");

    // Sealing forgets the TLS.
    let f = standby(&ca);
    assert!(f.is_ready());
    f.clear_tls();
    assert!(!f.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_leader_fails_fast_with_connect() {
    let ca = ClusterTls::generate().expect("ca");
    let f = standby(&ca);

    // Refused: nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let started = Instant::now();
    let err = forward(&f, &url, request("GET", "/v1/x", "", &[]))
        .await
        .expect_err("refused");
    assert!(matches!(err, ForwardError::Connect(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{err}");

    // Black hole: the TCP handshake completes (kernel backlog) but nothing answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", hole.local_addr().expect("addr"));
    let started = Instant::now();
    let err = forward(&f, &url, request("GET", "/v1/x", "", &[]))
        .await
        .expect_err("no answer");
    assert!(matches!(err, ForwardError::Connect(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    assert!(err.to_string().contains("307"), "{err}");

    let err = forward(&f, "http://a:1", request("GET", "/v1/x", "", &[]))
        .await
        .expect_err("bad address");
    assert!(matches!(err, ForwardError::Addr(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_route_is_a_refusal_not_an_answer() {
    let ca = ClusterTls::generate().expect("ca");
    let l = leader(&ca, "old-version", false).await;
    let f = standby(&ca);
    let err = forward(&f, &l.url, request("GET", "/v1/x", "", &[]))
        .await
        .expect_err("no forwarding route");
    match err {
        ForwardError::Refused { status, .. } => assert_eq!(status, 404),
        other => panic!("expected a refusal, got {other}"),
    }
}
