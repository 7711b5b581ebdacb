//! hvac, the Python Vault client, against the real `sealkeep` binary: this harness starts the
//! server (file storage, Shamir seal, uninitialized) on a free loopback port and runs
//! `tests/clients/test_hvac.py` with the venv's Python (hvac pinned by `scripts/test-all.sh`).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/test_hvac.py");
const LIMIT: Duration = Duration::from_secs(180);

/// The venv's Python: $SEALKEEP_HVAC_PYTHON, else $SEALKEEP_CACHE/venv/bin/python (the venv
/// that `scripts/test-all.sh` fills), else `python3` on PATH.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SEALKEEP_HVAC_PYTHON") {
        return p.into();
    }
    let cache = std::env::var("SEALKEEP_CACHE").unwrap_or_else(|_| "/var/cache/sealkeep".into());
    let venv = PathBuf::from(cache).join("venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

#[test]
fn hvac_drives_init_unseal_kv2_tokens_policies_and_mounts() {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import hvac"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e})", py.display()));
    assert!(
        probe.status.success(),
        "hvac is not importable with {}: run `bash scripts/test-all.sh` once, or `{} -m pip install hvac==2.4.0` ({})",
        py.display(),
        py.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec::plain(dir.path());
    let server = ServerProc::start(&spec);

    let out_path = dir.path().join("hvac.out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("output file");
    let started = Instant::now();
    // Nothing inherited but PATH: no VAULT_TOKEN, proxy settings or ~/.vault-token.
    let mut child = base_command(py.to_str().expect("utf-8 path"))
        .arg("-W")
        .arg("error::DeprecationWarning:__main__")
        .arg(SCRIPT)
        .env("VAULT_ADDR", &server.addr)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn python");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait python") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{output}");
    println!("hvac test took {:.1?}", started.elapsed());
    let Some(status) = status else {
        panic!(
            "test_hvac.py did not finish within {LIMIT:?}\nserver log:\n{}",
            server.log_text()
        );
    };
    assert!(
        status.success(),
        "test_hvac.py failed ({status}):\n{output}\nserver log:\n{}",
        server.log_text()
    );
    assert!(
        output.contains(" passed, 0 failed"),
        "no summary line from test_hvac.py:\n{output}"
    );
}

/// Writes one HTTP/1.1 request with a body on `conn`, the headers and the body in two writes
/// `gap` apart (Python's http.client, under hvac, also writes them separately), and reads the
/// response: (status, whether it says `Connection: close`).
async fn request_in_two_writes(
    conn: &mut tokio::net::TcpStream,
    path: &str,
    token: &str,
    body: &str,
    gap: Duration,
) -> std::io::Result<(u16, bool)> {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    tokio::time::sleep(gap).await;
    conn.write_all(body.as_bytes()).await?;
    read_response(conn).await
}

/// Reads one response (headers and a Content-Length body): (status, `Connection: close`).
async fn read_response(conn: &mut tokio::net::TcpStream) -> std::io::Result<(u16, bool)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("no response within 5 s"))??;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed without a response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let len: usize = header("content-length:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, header("connection:").as_deref() == Some("close")))
}

/// HTTP/1.1 keep-alive after a refusal: a response the server sends before reading the request
/// body (403 for a bad token or a denied path) must leave the connection usable for the next
/// request, or say `Connection: close`. Vault (Go's net/http) reads the rest of a small body
/// after the handler returns, so hvac's pooled connections keep working there.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_before_the_body_keeps_the_connection_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec::plain(dir.path());
    let server = ServerProc::start(&spec);
    let (_, init) = put(
        &server.addr,
        "/v1/sys/init",
        None,
        &serde_json::json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    put(
        &server.addr,
        "/v1/sys/unseal",
        None,
        &serde_json::json!({"key": init["keys"][0]}),
    )
    .await;
    let root = init["root_token"].as_str().expect("root token");
    let port = spec.port;
    let mut failures = Vec::new();
    for (path, token, body, want) in [
        ("/v1/sys/mounts/evil", "hvs.bogus", r#"{"type":"kv"}"#, 403),
        (
            "/v1/secret/data/x",
            "hvs.bogus",
            r#"{"data":{"a":"b"}}"#,
            403,
        ),
        // The control: a request that is let through reads its body, and keep-alive works.
        (
            "/v1/sys/mounts/ok",
            root,
            r#"{"type":"kv","options":{"version":"2"}}"#,
            204,
        ),
    ] {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (status, close) =
            request_in_two_writes(&mut conn, path, token, body, Duration::from_millis(100))
                .await
                .expect("first response");
        assert_eq!(status, want, "POST {path}");
        if close {
            continue; // the server said so: the client opens a new connection
        }
        let next = async {
            use tokio::io::AsyncWriteExt;
            conn.write_all(b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await?;
            read_response(&mut conn).await
        }
        .await;
        if !matches!(next, Ok((200, _))) {
            failures.push(format!(
                "POST {path} answered {status} (no Connection: close), then the next request on the connection got {next:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
