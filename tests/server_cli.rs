//! The `sealkeep` binary's CLI: `status` exit codes, config errors at start, dev mode, and
//! Shamir shares crossing with Vault's own implementation.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

fn status(addr: &str) -> (i32, String, String) {
    let out = base_command(env!("CARGO_BIN_EXE_sealkeep"))
        .args(["status"])
        .env("SEALKEEP_ADDR", addr)
        .output()
        .expect("run status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn row(out: &str, key: &str) -> Option<String> {
    out.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with("  "))
        .map(|l| l[key.len()..].trim().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn status_exit_codes_0_2_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec::plain(dir.path());
    let server = ServerProc::start(&spec);

    // Uninitialized counts as sealed.
    let (code, out, _) = status(&server.addr);
    assert_eq!(code, 2, "{out}");
    assert_eq!(row(&out, "Initialized").as_deref(), Some("false"));

    let (_, init) = put(
        &server.addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 3, "secret_threshold": 2}),
    )
    .await;
    let (code, out, _) = status(&server.addr);
    assert_eq!(code, 2);
    assert_eq!(row(&out, "Sealed").as_deref(), Some("true"));
    assert_eq!(row(&out, "Total Shares").as_deref(), Some("3"));
    assert_eq!(row(&out, "Threshold").as_deref(), Some("2"));
    assert_eq!(row(&out, "Unseal Progress").as_deref(), Some("0/2"));

    for i in 0..2 {
        put(
            &server.addr,
            "/v1/sys/unseal",
            None,
            &json!({"key": init["keys"][i]}),
        )
        .await;
    }
    let (code, out, _) = status(&server.addr);
    assert_eq!(code, 0, "{out}");
    assert_eq!(row(&out, "Seal Type").as_deref(), Some("shamir"));
    assert_eq!(row(&out, "Sealed").as_deref(), Some("false"));
    assert_eq!(row(&out, "Storage Type").as_deref(), Some("file"));
    assert_eq!(row(&out, "HA Enabled").as_deref(), Some("false"));

    // VAULT_ADDR is honoured when SEALKEEP_ADDR is absent.
    let out = base_command(env!("CARGO_BIN_EXE_sealkeep"))
        .arg("status")
        .env("VAULT_ADDR", &server.addr)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));

    drop(server);
    let (code, _, err) = status(&format!("http://127.0.0.1:{}", free_port()));
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the server"), "{err}");
}

#[test]
fn bad_config_stops_the_server_with_file_line_and_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.hcl");
    std::fs::write(
        &cfg,
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_disable = 1\n  tls_disabel = 1\n}\n",
    )
    .expect("write");
    let out = base_command(env!("CARGO_BIN_EXE_sealkeep"))
        .args(["server", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:5:3: unknown setting \"tls_disabel\"",
            cfg.display()
        )),
        "{err}"
    );
    assert!(err.contains("use one of: address, tls_disable"), "{err}");

    let out = base_command(env!("CARGO_BIN_EXE_sealkeep"))
        .args(["server", "--config", "/nonexistent/sealkeep.hcl"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_mode_prints_token_and_serves_unsealed() {
    let port = free_port();
    let mut child = base_command(env!("CARGO_BIN_EXE_sealkeep"))
        .args([
            "server",
            "--dev",
            "--dev-listen-address",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let addr = format!("http://127.0.0.1:{port}");
    let st = wait_status(&addr, Duration::from_secs(20), |v| v["sealed"] == false).await;
    assert_eq!(st["storage_type"], "inmem");
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root Token: "))
        .unwrap_or_else(|| panic!("no root token printed: {stdout}"));
    assert!(token.starts_with("hvs."), "{stdout}");
    assert!(
        stdout.contains(&format!("export VAULT_ADDR='{addr}'")),
        "{stdout}"
    );
}

/// Builds (once) the Go program in tests/vault_shamir that runs Vault's own shamir package.
fn vault_shamir_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("SEALKEEP_VAULTSHAMIR") {
        return p.into();
    }
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vaultshamir");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vault_shamir"))
        .status()
        .expect("go is needed to build Vault's shamir reference (tests/vault_shamir)");
    assert!(status.success(), "go build of tests/vault_shamir failed");
    out
}

#[test]
fn shares_cross_with_vaults_own_shamir() {
    let bin = vault_shamir_bin();
    let secret: Vec<u8> = (0..32u8).map(|b| b.wrapping_mul(7)).collect();
    // Ours -> Vault.
    let shares = sealkeep::server::seal::shamir::split(&secret, 5, 3).expect("split");
    for pick in [[0usize, 1, 2], [4, 2, 0], [1, 3, 4]] {
        let input: String = pick
            .iter()
            .map(|i| format!("{}\n", hex::encode(shares[*i].as_slice())))
            .collect();
        let mut child = Command::new(&bin)
            .arg("combine")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("vaultshamir");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), input.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("output");
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            hex::encode(&secret)
        );
    }
    // Vault -> ours.
    let out = Command::new(&bin)
        .args(["split", "5", "3", &hex::encode(&secret)])
        .output()
        .expect("vaultshamir split");
    assert!(out.status.success());
    let vault_shares: Vec<zeroize::Zeroizing<Vec<u8>>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| zeroize::Zeroizing::new(hex::decode(l).expect("hex")))
        .collect();
    assert_eq!(vault_shares.len(), 5);
    let combined = sealkeep::server::seal::shamir::combine(&vault_shares[1..4]).expect("combine");
    assert_eq!(combined.as_slice(), secret.as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make a test certificate");
    assert!(ok.success());
    let port = free_port();
    let config = dir.path().join("tls.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("config");
    let child = base_command(env!("CARGO_BIN_EXE_sealkeep"))
        .args(["server", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _guard = KillOnDrop(child);
    wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let pem = std::fs::read(&cert).expect("cert");
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .build()
        .expect("client");
    let resp = https
        .get(format!("https://127.0.0.1:{port}/v1/sys/seal-status"))
        .send()
        .await
        .expect("HTTPS request with the server's certificate as the only root");
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(v["initialized"], false);
    // Plain HTTP on a TLS listener does not get an API answer.
    let plain = client()
        .get(format!("http://127.0.0.1:{port}/v1/sys/seal-status"))
        .send()
        .await;
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));
}

/// Kills a child process even when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
