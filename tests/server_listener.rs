//! The real server binary's listeners on loopback: Vault's HTTP timeouts, `max_connections`,
//! per-listener metrics access, and graceful shutdown on SIGTERM. Raw sockets, so the test sees
//! exactly when the server closes a connection. Every wait is bounded; no timing is asserted
//! beyond generous upper bounds ("closed within 10 s when the timeout is 1 s").

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Generous bound for "the server closed it" when the configured timeout is 1 s.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// Starts `sealkeep server` with in-memory storage and the given listener blocks (each a body
/// for `listener "tcp" { ... }`, plain HTTP unless it sets `tls_cert_file`). Returns the
/// process and the ports.
fn start(listeners: &[&str]) -> (ServerProc, Vec<u16>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = listeners.iter().map(|_| free_port()).collect();
    let mut text = String::from("storage \"inmem\" {}\n");
    for (body, port) in listeners.iter().zip(&ports) {
        let body = body.replace("{port}", &port.to_string());
        let plain = if body.contains("tls_cert_file") {
            ""
        } else {
            "  tls_disable = 1\n"
        };
        text.push_str(&format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n{plain}{body}\n}}\n"
        ));
    }
    let config = dir.path().join("server.hcl");
    std::fs::write(&config, text).expect("config");
    let log = dir.path().join("server.log");
    let logf = std::fs::File::create(&log).expect("log");
    let child = base_command(env!("CARGO_BIN_EXE_sealkeep"))
        .args(["server", "--config"])
        .arg(&config)
        .env("RUST_LOG", "sealkeep=debug")
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("spawn sealkeep");
    for port in &ports {
        let port = *port;
        wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }
    let addr = format!("http://127.0.0.1:{}", ports[0]);
    (ServerProc { child, addr, log }, ports, dir)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    s
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

/// What a read within `limit` saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Bytes (appended to the buffer).
    Data,
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing within the limit.
    Nothing,
}

fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>, limit: Duration) -> Seen {
    let start = Instant::now();
    let mut chunk = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut chunk) {
            Ok(0) => return Seen::Closed,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Seen::Data;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Seen::Closed,
        }
    }
    Seen::Nothing
}

/// Reads one whole response (headers and a Content-Length body) within `limit`.
fn read_response(s: &mut TcpStream, limit: Duration) -> Option<(u16, String)> {
    let start = Instant::now();
    let mut buf = Vec::new();
    while start.elapsed() < limit {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return Some((status, body));
            }
        }
        if read_some(s, &mut buf, limit.saturating_sub(start.elapsed())) != Seen::Data {
            return None;
        }
    }
    None
}

/// Waits (bounded) until the server closes `s`; returns how long that took.
fn wait_closed(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = Vec::new();
    loop {
        match read_some(s, &mut buf, limit.saturating_sub(start.elapsed())) {
            Seen::Closed => return start.elapsed(),
            Seen::Data => {}
            Seen::Nothing => panic!(
                "the server did not close the connection within {limit:?}; it sent {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
}

#[test]
fn slow_request_headers_are_closed_after_the_header_timeout() {
    let (_server, ports, _dir) = start(&["  http_read_header_timeout = \"1s\""]);
    let mut s = connect(ports[0]);
    s.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("write");
    // One header byte every 200 ms, never the blank line that ends the headers.
    let start = Instant::now();
    let mut closed = false;
    for _ in 0..50 {
        if s.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        let mut buf = Vec::new();
        if read_some(&mut s, &mut buf, Duration::from_millis(200)) == Seen::Closed {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open after {:?}", start.elapsed());
    assert!(start.elapsed() < CLOSE_BOUND, "{:?}", start.elapsed());
    eprintln!("slow headers closed after {:?}", start.elapsed());

    // A connection that never sends a byte is closed too.
    let mut silent = connect(ports[0]);
    let took = wait_closed(&mut silent, CLOSE_BOUND);
    eprintln!("silent connection closed after {took:?}");
}

#[test]
fn a_slow_body_gets_408_and_the_connection_is_closed() {
    let (_server, ports, _dir) = start(&["  http_read_timeout = \"1s\""]);
    let mut s = connect(ports[0]);
    s.write_all(
        b"PUT /v1/sys/unseal HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ke",
    )
    .expect("write");
    let (status, body) = read_response(&mut s, CLOSE_BOUND).expect("a response");
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("http_read_timeout"), "{body}");
    wait_closed(&mut s, CLOSE_BOUND);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    // Header timeout long, so only the idle timeout can close the connection.
    let (_server, ports, _dir) =
        start(&["  http_idle_timeout = \"1s\"\n  http_read_header_timeout = \"30s\""]);
    let mut s = connect(ports[0]);
    // Keep-alive works: several requests on one connection, each well within the idle timeout.
    for i in 0..5 {
        s.write_all(get_request("/v1/sys/seal-status").as_bytes())
            .expect("write");
        let (status, body) =
            read_response(&mut s, Duration::from_secs(10)).expect("a keep-alive response");
        assert_eq!(status, 200, "request {i}: {body}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let took = wait_closed(&mut s, CLOSE_BOUND);
    eprintln!("idle connection closed {took:?} after its last response");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_normal_keep_alive_client_still_works() {
    let (server, _ports, _dir) = start(&[
        "  http_idle_timeout = \"2s\"\n  http_read_header_timeout = \"1s\"\n  http_read_timeout = \"1s\"",
    ]);
    let http = client();
    let (st, init) = put(
        &server.addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(st, 200, "{init}");
    let key = init["keys_base64"][0].as_str().expect("key");
    let (st, v) = put(&server.addr, "/v1/sys/unseal", None, &json!({ "key": key })).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");
    let root = init["root_token"].as_str().expect("root");
    // A 64 KiB secret (a body well within the read timeout), written and read 20 times over
    // the client's pooled keep-alive connections, with pauses past the header timeout.
    let big = "x".repeat(64 * 1024);
    for i in 0..20 {
        let resp = http
            .put(format!("{}/v1/secret/data/app/{i}", server.addr))
            .header("X-Vault-Token", root)
            .json(&json!({"data": {"v": big}}))
            .send()
            .await
            .expect("PUT");
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = http
            .get(format!("{}/v1/secret/data/app/{i}", server.addr))
            .header("X-Vault-Token", root)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert_eq!(
            v["data"]["data"]["v"].as_str().map(str::len),
            Some(big.len())
        );
        if i % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
}

#[test]
fn max_connections_makes_further_connections_wait_for_a_free_slot() {
    let (_server, ports, _dir) = start(&["  max_connections = 2\n  http_idle_timeout = \"60s\""]);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|i| {
            let mut s = connect(ports[0]);
            s.write_all(get_request("/v1/sys/health").as_bytes())
                .expect("write");
            let r = read_response(&mut s, Duration::from_secs(10));
            assert!(r.is_some(), "connection {i} is served");
            s
        })
        .collect();
    // The third connects (the kernel queues it) but is not served while both slots are held.
    let mut third = connect(ports[0]);
    third
        .write_all(get_request("/v1/sys/health").as_bytes())
        .expect("write");
    let mut buf = Vec::new();
    assert_eq!(
        read_some(&mut third, &mut buf, Duration::from_millis(1500)),
        Seen::Nothing,
        "a third connection must wait: {:?}",
        String::from_utf8_lossy(&buf)
    );
    // A slot frees: the waiting connection is accepted and answered.
    drop(held.pop());
    let r = read_response(&mut third, Duration::from_secs(10));
    assert!(
        r.is_some(),
        "the waiting connection is served once a slot is free"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_access_is_per_listener() {
    let (server, ports, _dir) = start(&[
        "",
        "  telemetry {\n    unauthenticated_metrics_access = true\n  }",
    ]);
    let on = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    let prom = "/v1/sys/metrics?format=prometheus";
    // Sealed: the open listener serves metrics (so Prometheus sees a sealed server); the
    // other answers 503 like every path that needs a token.
    for path in [prom, "/metrics"] {
        let open = client().get(on(ports[1], path)).send().await.expect("GET");
        assert_eq!(
            open.status().as_u16(),
            200,
            "{path} is open on this listener"
        );
        let text = open.text().await.expect("text");
        assert!(text.contains("sealkeep_sealed 1"), "{text}");
        let closed = client().get(on(ports[0], path)).send().await.expect("GET");
        assert_eq!(closed.status().as_u16(), 503, "{path}");
    }
    let (st, init) = put(
        &server.addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(st, 200, "{init}");
    let key = init["keys_base64"][0].as_str().expect("key");
    let (st, _) = put(&server.addr, "/v1/sys/unseal", None, &json!({ "key": key })).await;
    assert_eq!(st, 200);
    let root = init["root_token"].as_str().expect("root");
    for path in [prom, "/metrics"] {
        let closed = client().get(on(ports[0], path)).send().await.expect("GET");
        assert_eq!(closed.status().as_u16(), 403, "{path} needs a token");
        let v: Value = closed.json().await.expect("json");
        assert_eq!(v["errors"][0], "permission denied");
        // Prometheus' bearer_token_file sends `Authorization: Bearer`.
        let with_token = client()
            .get(on(ports[0], path))
            .bearer_auth(root)
            .send()
            .await
            .expect("GET");
        assert_eq!(with_token.status().as_u16(), 200, "{path} with a token");
        assert!(
            with_token
                .text()
                .await
                .expect("text")
                .contains("sealkeep_sealed 0")
        );
        let open = client().get(on(ports[1], path)).send().await.expect("GET");
        assert_eq!(
            open.status().as_u16(),
            200,
            "{path} is open on this listener"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_accepting_and_exits_cleanly() {
    let (mut server, ports, _dir) = start(&[""]);
    let (st, _) = get(&server.addr, "/v1/sys/seal-status").await;
    assert_eq!(st, 200);
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}: {}", server.log_text());
    assert!(TcpStream::connect(("127.0.0.1", ports[0])).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_times_out_a_silent_handshake_and_still_serves_https() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make a test certificate");
    assert!(ok.success());
    let body = format!(
        "  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  http_read_header_timeout = \"1s\"",
        cert.display(),
        key.display()
    );
    let (_server, ports, _dir) = start(&[&body]);
    // No ClientHello: closed after the header timeout, which bounds the handshake too.
    let mut silent = connect(ports[0]);
    let took = wait_closed(&mut silent, CLOSE_BOUND);
    eprintln!("silent TLS connection closed after {took:?}");
    // A real client is served, on one keep-alive connection, with pauses past the timeout.
    let pem = std::fs::read(&cert).expect("cert");
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .build()
        .expect("client");
    for _ in 0..3 {
        let resp = https
            .get(format!("https://127.0.0.1:{}/v1/sys/seal-status", ports[0]))
            .send()
            .await
            .expect("HTTPS");
        assert_eq!(resp.status().as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
}
