//! The forwarding route parses its headers as untrusted input: precise 400s, no panics, and
//! nothing reaches the API.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::super::{CLIENT_HEADER, FORWARD_PATH, METHOD_HEADER, RELAYED_HEADER, URI_HEADER};
use super::{BOUND, ClusterTls, Ordering, PeerClient, leader};

/// A raw header: name and bytes.
type Header = (&'static str, &'static [u8]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forward_headers_get_precise_400s() {
    let ca = ClusterTls::generate().expect("ca");
    let l = leader(&ca, "leader", true).await;
    let member = ca
        .issue_node("member", "https://127.0.0.1:8204")
        .expect("issue");
    let client = PeerClient::new(&l.url, member.client_config().expect("cfg")).expect("client");
    let ok: [Header; 2] = [(METHOD_HEADER, b"GET"), (URI_HEADER, b"/v1/x")];
    let cases: Vec<(Vec<Header>, &str)> = vec![
        (vec![(URI_HEADER, b"/v1/x")], METHOD_HEADER),
        (vec![(METHOD_HEADER, b"GET")], URI_HEADER),
        (
            vec![(METHOD_HEADER, b"G(T"), (URI_HEADER, b"/v1/x")],
            "not an HTTP method",
        ),
        (
            vec![(METHOD_HEADER, b""), (URI_HEADER, b"/v1/x")],
            "not an HTTP method",
        ),
        (
            vec![(METHOD_HEADER, b"GET"), (URI_HEADER, b"v1/x")],
            "absolute path",
        ),
        (
            vec![(METHOD_HEADER, b"GET"), (URI_HEADER, b"//evil/x")],
            "absolute path",
        ),
        (
            vec![(METHOD_HEADER, b"GET"), (URI_HEADER, b"https://evil/x")],
            "absolute path",
        ),
        (
            vec![(METHOD_HEADER, b"GET"), (URI_HEADER, b"/v1/a b")],
            "valid path",
        ),
        (
            vec![(METHOD_HEADER, b"GET"), (URI_HEADER, b"/v1/\xffx")],
            "visible ASCII",
        ),
        (
            vec![ok[0], ok[1], (METHOD_HEADER, b"PUT")],
            "more than once",
        ),
        (vec![ok[0], ok[1], (CLIENT_HEADER, b"10.0.0.1")], "IP:PORT"),
        (
            vec![ok[0], ok[1], (CLIENT_HEADER, b"[::1]:99999")],
            "IP:PORT",
        ),
    ];
    for (headers, expect) in cases {
        let mut map = HeaderMap::new();
        for (k, v) in &headers {
            map.append(
                HeaderName::from_static(k),
                HeaderValue::from_bytes(v).expect("value"),
            );
        }
        let resp = tokio::time::timeout(
            BOUND,
            client.send(Method::POST, FORWARD_PATH, map, Body::from("b")),
        )
        .await
        .expect("bounded")
        .expect("answer");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        assert!(!resp.headers().contains_key(RELAYED_HEADER));
        let body = axum::body::to_bytes(Body::new(resp.into_body()), 4096)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(expect), "{headers:?}: {text}");
    }
    // Only POST reaches the route.
    let resp = client
        .send(Method::GET, FORWARD_PATH, HeaderMap::new(), Body::empty())
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(l.calls.load(Ordering::SeqCst), 0, "nothing reached the API");
}
