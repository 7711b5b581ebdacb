//! The real server binary with a black-holed KMS or STS endpoint: a loopback listener that
//! accepts TCP connections and never answers (a firewall that drops, a missing VPC endpoint).
//! `sys/seal-backend-status` must say `Unreachable`, naming the endpoint, within 5 s of the
//! start; the test prints how long it took (a figure, not an assertion beyond a generous bound).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Accepts connections on a free loopback port and holds them open without a byte in reply.
struct BlackHole {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            // Bounded: a test makes a handful of attempts.
            while held.len() < 1000 {
                match listener.accept().await {
                    Ok((s, _)) => held.push(s),
                    Err(_) => break,
                }
            }
            std::future::pending::<()>().await;
        });
        Self { port, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `sys/seal-backend-status` (at most `limit`) until it reports `Unreachable`; returns
/// the body and the time since `started`.
async fn wait_unreachable(addr: &str, started: Instant, limit: Duration) -> (Value, Duration) {
    let mut last = Value::Null;
    while started.elapsed() < limit {
        if let Ok(resp) = client()
            .get(format!("{addr}/v1/sys/seal-backend-status"))
            .send()
            .await
        {
            if let Ok(v) = resp.json::<Value>().await {
                if v["last_error_class"] == "Unreachable" {
                    return (v, started.elapsed());
                }
                last = v;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no Unreachable within {limit:?}; last: {last}");
}

fn kms_stanza(endpoint: &str) -> String {
    format!(
        "seal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"alias/blackhole\"\n  endpoint = \"{endpoint}\"\n  max_backoff = \"2s\"\n}}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_black_holed_kms_endpoint_is_reported_unreachable_within_5_s() {
    let hole = BlackHole::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec {
        extra_hcl: kms_stanza(&hole.url()),
        env: static_creds(),
        ..ServerSpec::plain(dir.path())
    };
    let started = Instant::now();
    let server = ServerProc::start(&spec);
    let (v, took) = wait_unreachable(&server.addr, started, Duration::from_secs(20)).await;
    eprintln!("black-holed KMS: Unreachable {took:?} after spawning the server: {v}");
    let message = v["last_error"].as_str().unwrap_or("");
    assert!(message.contains(&hole.url()), "must name the endpoint: {v}");
    assert_eq!(v["healthy"], false, "{v}");
    assert!(took < Duration::from_secs(5), "diagnosed after {took:?}");
    // The retry goes on: the server is alive, sealed, and still reports the class.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, v) = get(&server.addr, "/v1/sys/seal-backend-status").await;
    assert_eq!((code, v["last_error_class"].clone()), (200, "Unreachable".into()), "{v}");
    let attempts = server.log_text().matches("KMS call failed").count();
    assert!(attempts >= 2, "the auto-unseal loop keeps retrying: {attempts} attempts logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_black_holed_sts_endpoint_is_reported_unreachable_within_5_s() {
    let sts = BlackHole::start().await;
    // KMS is never reached (no credentials), so any address will do; make it a black hole too.
    let kms = BlackHole::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").expect("token");
    let spec = ServerSpec {
        extra_hcl: kms_stanza(&kms.url()),
        env: vec![
            ("AWS_ROLE_ARN".into(), ACCOUNT_ROLE.into()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
                token.display().to_string(),
            ),
            ("AWS_ROLE_SESSION_NAME".into(), "sealkeep-test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL_STS".into(), sts.url()),
        ],
        ..ServerSpec::plain(dir.path())
    };
    let started = Instant::now();
    let server = ServerProc::start(&spec);
    let (v, took) = wait_unreachable(&server.addr, started, Duration::from_secs(20)).await;
    eprintln!("black-holed STS: Unreachable {took:?} after spawning the server: {v}");
    let message = v["last_error"].as_str().unwrap_or("");
    assert!(message.contains(&sts.url()), "must name the STS endpoint: {v}");
    assert!(took < Duration::from_secs(5), "diagnosed after {took:?}");
}
