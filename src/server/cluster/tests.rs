//! Tests of the cluster port: CA and node certificates, the mutual-TLS listener (peers of
//! another CA or without a certificate are refused), body limits, and cluster addresses.
//! Real TCP on 127.0.0.1 ephemeral ports; every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::*;

const BOUND: Duration = Duration::from_secs(10);

/// Answers every RPC with its bytes reversed, and counts the calls.
#[derive(Default)]
struct Echo {
    calls: AtomicUsize,
}

#[async_trait]
impl RaftRpcService for Echo {
    async fn handle(&self, request: Bytes) -> Vec<u8> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        request.iter().rev().copied().collect()
    }
}

struct Served {
    addr: SocketAddr,
    echo: Arc<Echo>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn serve(node: &NodeTls, limits: ListenerLimits) -> Served {
    let listener =
        ClusterListener::bind("127.0.0.1:0".parse().expect("addr"), node, limits).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let echo = Arc::new(Echo::default());
    let app = router(Arc::clone(&echo) as Arc<dyn RaftRpcService>);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(listener.serve(app, stop_rx, Duration::from_secs(1)));
    Served {
        addr,
        echo,
        stop,
        task,
    }
}

async fn post(client: &PeerClient, body: &[u8]) -> Result<Bytes, ClientError> {
    tokio::time::timeout(BOUND, client.post(RAFT_RPC_PATH, body.to_vec(), 1 << 20))
        .await
        .expect("the request must finish in bounded time")
}

fn node(ca: &ClusterTls, name: &str) -> NodeTls {
    ca.issue_node(name, "https://127.0.0.1:8201")
        .expect("issue")
}

#[test]
fn cluster_tls_round_trips_and_never_shows_its_key() {
    let ca = ClusterTls::generate().expect("generate");
    let bytes = ca.to_bytes().expect("to_bytes");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("PRIVATE KEY"), "the CA key is serialised");
    let loaded = ClusterTls::from_bytes(&bytes).expect("from_bytes");
    assert_eq!(loaded.ca_cert_pem(), ca.ca_cert_pem());
    for shown in [format!("{ca:?}"), format!("{loaded:?}")] {
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
    let n = node(&loaded, "sealkeep-0");
    let shown = format!("{n:?}");
    assert!(
        shown.contains("sealkeep-0") && shown.contains("redacted"),
        "{shown}"
    );
    assert_eq!(n.name(), "sealkeep-0");

    // Another CA's key with this certificate, garbage, and a future version are refused.
    let other = ClusterTls::generate().expect("generate");
    let other: serde_json::Value =
        serde_json::from_slice(&other.to_bytes().expect("to_bytes")).expect("json");
    let mut mixed: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    mixed["ca_key_pem"] = other["ca_key_pem"].clone();
    let err = ClusterTls::from_bytes(mixed.to_string().as_bytes()).expect_err("mismatch");
    assert!(err.to_string().contains("does not match"), "{err}");
    let err = ClusterTls::from_bytes(b"\x00garbage").expect_err("garbage");
    assert!(
        err.to_string().contains("not a cluster TLS record"),
        "{err}"
    );
    let mut future: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    future["version"] = 2.into();
    let err = ClusterTls::from_bytes(future.to_string().as_bytes()).expect_err("version");
    assert!(err.to_string().contains("format version 2"), "{err}");
}

#[test]
fn node_certificates_need_a_usable_name() {
    let ca = ClusterTls::generate().expect("generate");
    let err = ca
        .issue_node("bad name", "https://127.0.0.1:8201")
        .expect_err("space in a DNS name");
    assert!(err.to_string().contains("bad name"), "{err}");
    let err = ca
        .issue_node("sealkeep-0", "http://127.0.0.1:8201")
        .expect_err("plain http");
    assert!(err.to_string().contains("https"), "{err}");
}

#[test]
fn cluster_addresses_parse() {
    let a = ClusterAddr::parse("https://sealkeep-0.sealkeep-internal.ns.svc:8201").expect("dns");
    assert_eq!(
        (a.host(), a.port()),
        ("sealkeep-0.sealkeep-internal.ns.svc", 8201)
    );
    let a = ClusterAddr::parse("127.0.0.1:8201/").expect("no scheme");
    assert_eq!((a.host(), a.port()), ("127.0.0.1", 8201));
    let a = ClusterAddr::parse("https://[::1]:8201").expect("v6");
    assert_eq!(
        (a.host(), a.port(), a.to_string().as_str()),
        ("::1", 8201, "[::1]:8201")
    );
    for bad in [
        "http://a:1",
        "https://a",
        "https://:1",
        "https://a:0",
        "https://a:x",
        "https://a:1/p",
        "https://[::1",
    ] {
        let e = ClusterAddr::parse(bad).expect_err(bad);
        assert!(e.to_string().contains("https://HOST:PORT"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_served_over_mutual_tls_http2() {
    let ca = ClusterTls::generate().expect("generate");
    let server = node(&ca, "sealkeep-0");
    let s = serve(&server, ListenerLimits::default()).await;
    let peer = node(&ca, "sealkeep-1");
    let client = PeerClient::new(
        &format!("https://{}", s.addr),
        peer.client_config().expect("client config"),
    )
    .expect("client");
    assert_eq!(&post(&client, b"abc").await.expect("post")[..], b"cba");
    // The pooled connection serves concurrent requests.
    let client = Arc::new(client);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let c = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            post(&c, &[i, 0xff]).await.expect("concurrent post")
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(&t.await.expect("task")[..], &[0xff, i as u8]);
    }
    assert_eq!(s.echo.calls.load(Ordering::SeqCst), 9);

    // The server's certificate is checked against the dialled host: a name not in its SANs
    // (the cert has sealkeep-0 and 127.0.0.1) fails the handshake on the client side.
    let wrong = PeerClient::new(
        &format!("https://localhost:{}", s.addr.port()),
        peer.client_config().expect("client config"),
    )
    .expect("client");
    let err = post(&wrong, b"x").await.expect_err("name mismatch");
    assert!(err.is_connect(), "{err}");

    s.stop.send(true).expect("stop");
    tokio::time::timeout(BOUND, s.task)
        .await
        .expect("stops")
        .expect("task");
    let err = post(&client, b"after").await.expect_err("stopped");
    assert!(err.to_string().contains(&s.addr.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_certificate_of_the_cluster_ca_are_refused() {
    let ca = ClusterTls::generate().expect("generate");
    let server = node(&ca, "sealkeep-0");
    let s = serve(&server, ListenerLimits::default()).await;
    let url = format!("https://{}", s.addr);

    // A certificate from another CA, presented by a client that trusts this server.
    let foreign = node(&ClusterTls::generate().expect("generate"), "intruder");
    let client = PeerClient::new(&url, foreign.client_config_trusting(&server)).expect("client");
    post(&client, b"rpc")
        .await
        .expect_err("a foreign CA's certificate");

    // No certificate at all.
    let client = PeerClient::new(&url, server.client_config_without_cert()).expect("client");
    post(&client, b"rpc")
        .await
        .expect_err("no client certificate");

    // A client of another cluster that does not trust this server gives up on its own.
    let client = PeerClient::new(&url, foreign.client_config().expect("cfg")).expect("client");
    let err = post(&client, b"rpc").await.expect_err("unknown server CA");
    assert!(err.is_connect(), "{err}");

    assert_eq!(s.echo.calls.load(Ordering::SeqCst), 0, "nothing was served");
    s.stop.send(true).expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused() {
    let ca = ClusterTls::generate().expect("generate");
    let server = node(&ca, "sealkeep-0");
    let limits = ListenerLimits {
        max_body: 1024,
        ..ListenerLimits::default()
    };
    let s = serve(&server, limits).await;
    let peer = node(&ca, "sealkeep-1");
    let client = PeerClient::new(
        &format!("https://{}", s.addr),
        peer.client_config().expect("client config"),
    )
    .expect("client");
    assert_eq!(
        post(&client, &[1; 1024]).await.expect("at the limit").len(),
        1024
    );
    match post(&client, &[1; 1025]).await {
        Err(ClientError::Status { status, .. }) => {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => panic!("expected 413, got {other:?}"),
    }
    assert_eq!(s.echo.calls.load(Ordering::SeqCst), 1);
    s.stop.send(true).expect("stop");
}

/// A relay to `target` that holds the first bytes the server sends on each connection (its
/// TLS handshake flight) back for `delay`, and relays the rest at once: a peer whose handshake
/// is slow (a loaded CPU, a proxy that looks the connection up first) but whose calls are fast.
async fn slow_handshake_relay(target: SocketAddr, delay: Duration) -> SocketAddr {
    async fn pump(
        mut rd: tokio::net::tcp::OwnedReadHalf,
        mut wr: tokio::net::tcp::OwnedWriteHalf,
        mut delay: Duration,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            tokio::time::sleep(std::mem::take(&mut delay)).await;
            if wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(upstream) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            tokio::spawn(pump(cr, uw, Duration::ZERO));
            tokio::spawn(pump(ur, cw, delay));
        }
    });
    addr
}

/// Regression (Jepsen harness, `five_nodes_survive_partitions`, seed 1): a raft heartbeat
/// has 100 ms, and a connection used to be opened inside the call, so a handshake slower than
/// that was abandoned with every call and never finished; after a partition healed, a leader
/// kept failing to reach a follower. The connection now outlives the calls that wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_slower_than_each_call_still_connects() {
    let ca = ClusterTls::generate().expect("generate");
    let server = node(&ca, "sealkeep-0");
    let s = serve(&server, ListenerLimits::default()).await;
    // The handshake takes 250 ms, more than the 100 ms each call may take; a call, once
    // connected, takes a few.
    let relay = slow_handshake_relay(s.addr, Duration::from_millis(250)).await;
    let client = PeerClient::new(
        &format!("https://{relay}"),
        node(&ca, "sealkeep-1")
            .client_config()
            .expect("client config"),
    )
    .expect("client");
    let mut timeouts = 0;
    let reply = loop {
        let call = client.post(RAFT_RPC_PATH, b"hb".to_vec(), 1 << 20);
        match tokio::time::timeout(Duration::from_millis(100), call).await {
            Ok(r) => break r.expect("the heartbeat is answered once connected"),
            Err(_) => timeouts += 1,
        }
        assert!(
            timeouts < 50,
            "no call of 100 ms ever got through a link whose handshake takes longer: each call abandons the connection it started"
        );
    };
    assert_eq!(&reply[..], b"bh");
    assert!(
        timeouts >= 1,
        "the handshake was expected to outlast one call"
    );
    let _ = s.stop.send(true);
}
