//! The server binary against moto's real KMS and STS server (loopback only).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn kms_stanza(key: &str, endpoint: &str) -> String {
    format!(
        "seal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"{key}\"\n  endpoint = \"{endpoint}\"\n  max_backoff = \"2s\"\n}}\n"
    )
}

/// Initializes through the API and checks Vault's response shape for auto-unseal seals.
async fn init_awskms(addr: &str) -> Value {
    let (st, v) = put(
        addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 5, "secret_threshold": 3}),
    )
    .await;
    assert_eq!(
        st, 400,
        "shamir parameters must be refused under awskms: {v}"
    );
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("not applicable to seal type awskms"),
        "{v}"
    );
    let (st, v) = put(
        addr,
        "/v1/sys/init",
        None,
        &json!({"recovery_shares": 5, "recovery_threshold": 3}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["keys"], json!([]));
    assert_eq!(v["recovery_keys"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["recovery_keys_base64"].as_array().map(Vec::len), Some(5));
    v
}

async fn write_and_check_restart(spec: &ServerSpec<'_>) {
    let mut server = ServerProc::start(spec);
    let init = init_awskms(&server.addr).await;
    let root = init["root_token"].as_str().expect("root token").to_owned();
    let st = wait_status(&server.addr, Duration::from_secs(10), |v| {
        v["sealed"] == false
    })
    .await;
    assert_eq!(
        (
            st["type"].clone(),
            st["recovery_seal"].clone(),
            st["n"].clone(),
            st["t"].clone()
        ),
        (json!("awskms"), json!(true), json!(5), json!(3))
    );
    let (code, v) = put(
        &server.addr,
        "/v1/secret/data/app/db",
        Some(&root),
        &json!({"data": {"password": "s3cr3t"}}),
    )
    .await;
    assert_eq!(code, 200, "{v}");

    server.kill(); // SIGKILL: no graceful shutdown.
    let server = ServerProc::start(spec);
    let st = wait_status(&server.addr, Duration::from_secs(20), |v| {
        v["sealed"] == false
    })
    .await;
    assert_eq!(st["initialized"], true);
    let (code, v) = get_auth(&server.addr, "/v1/secret/data/app/db", &root).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["data"]["password"], "s3cr3t");
    assert!(
        !server.log_text().contains(&root),
        "the root token must never be logged"
    );
    let (code, v) = get(&server.addr, "/v1/sys/seal-backend-status").await;
    assert_eq!((code, v["healthy"].clone()), (200, json!(true)), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn awskms_init_then_sigkill_restart_auto_unseals_with_data() {
    let moto = Moto::start();
    let arn = create_kms_key(&moto.url, "sealkeep-static").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec {
        dir: dir.path(),
        port: free_port(),
        extra_hcl: kms_stanza("alias/sealkeep-static", &moto.url),
        env: static_creds(),
    };
    write_and_check_restart(&spec).await;
    // The stored blob records the ARN of the key that wrapped it.
    let db = sealkeep::server::physical::FileBackend::open(&dir.path().join("data")).expect("open");
    let raw =
        sealkeep::server::physical::Physical::get(&db, sealkeep::server::core::paths::ROOT_KEY)
            .await
            .expect("get")
            .expect("root key stored");
    let wrapped: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(wrapped["key_id"], json!(arn));
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_web_identity_only_no_static_keys() {
    let moto = Moto::start();
    create_kms_key(&moto.url, "sealkeep-irsa").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    // moto does not verify the token's signature; the SDK must still read and send it.
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2VhbGtlZXA6c2VydmVyIn0.c2ln",
    )
    .expect("token");
    let spec = ServerSpec {
        dir: dir.path(),
        port: free_port(),
        extra_hcl: "seal \"awskms\" {\n  kms_key_id = \"alias/sealkeep-irsa\"\n}\n".into(),
        env: vec![
            ("AWS_ROLE_ARN".into(), ACCOUNT_ROLE.into()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
                token.display().to_string(),
            ),
            ("AWS_ROLE_SESSION_NAME".into(), "sealkeep-test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL".into(), moto.url.clone()),
        ],
    };
    write_and_check_restart(&spec).await;

    // A token file that cannot be read: sealed, with a class and message that say why.
    std::fs::remove_file(&token).expect("rm token");
    let server = ServerProc::start(&spec);
    let v = wait_backend_error(&server.addr).await;
    assert_eq!(v["last_error_class"], "WebIdentityDenied", "{v}");
    assert!(
        v["last_error"]
            .as_str()
            .unwrap_or("")
            .contains(&token.display().to_string()),
        "{v}"
    );
    let (code, _) = get(&server.addr, "/v1/sys/health").await;
    assert_eq!(code, 503);
}

async fn wait_backend_error(addr: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let (_, v) = get(addr, "/v1/sys/seal-backend-status").await;
        if v["last_error_class"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
        {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no seal error reported: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kms_outage_at_start_recovers_without_restart() {
    let moto = Moto::start();
    create_kms_key(&moto.url, "sealkeep-outage").await;
    let mut fwd = Forwarder::new(&moto.url);
    fwd.start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec {
        dir: dir.path(),
        port: free_port(),
        extra_hcl: kms_stanza("alias/sealkeep-outage", &fwd.url()),
        env: static_creds(),
    };
    let root = {
        let server = ServerProc::start(&spec);
        let init = init_awskms(&server.addr).await;
        init["root_token"].as_str().expect("root token").to_owned()
    };
    // KMS down while the server starts.
    fwd.stop().await;
    let server = ServerProc::start(&spec);
    let v = wait_backend_error(&server.addr).await;
    assert_eq!(v["healthy"], false, "{v}");
    assert_eq!(v["last_error_class"], "Unreachable", "{v}");
    assert!(
        v["last_error"].as_str().unwrap_or("").contains(&fwd.url()),
        "must name the endpoint: {v}"
    );
    let (_, st) = get(&server.addr, "/v1/sys/seal-status").await;
    assert_eq!(
        (st["initialized"].clone(), st["sealed"].clone()),
        (json!(true), json!(true))
    );
    let (code, _) = get(&server.addr, "/v1/sys/health").await;
    assert_eq!(code, 503);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        server_alive(&server),
        "the server must not exit while KMS is down"
    );

    // KMS back: unsealed within the 2 s backoff cap plus a few seconds, with no restart.
    fwd.start().await;
    let started = std::time::Instant::now();
    wait_status(&server.addr, Duration::from_secs(2 + 8), |v| {
        v["sealed"] == false
    })
    .await;
    eprintln!("unsealed {:?} after KMS came back", started.elapsed());
    let (_, v) = get(&server.addr, "/v1/sys/seal-backend-status").await;
    assert_eq!(v["healthy"], true, "{v}");
    let (_, metrics) = (
        0,
        client()
            .get(format!("{}/v1/sys/metrics?format=prometheus", server.addr))
            .header("X-Vault-Token", &root)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text"),
    );
    assert!(metrics.contains("result=\"Unreachable\""), "{metrics}");
}

fn server_alive(server: &ServerProc) -> bool {
    std::net::TcpStream::connect(server.addr.trim_start_matches("http://")).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_key_alias_stays_sealed_with_key_not_found() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServerSpec {
        dir: dir.path(),
        port: free_port(),
        extra_hcl: kms_stanza("alias/does-not-exist", &moto.url),
        env: static_creds(),
    };
    let server = ServerProc::start(&spec);
    let v = wait_backend_error(&server.addr).await;
    assert_eq!(v["last_error_class"], "KeyNotFound", "{v}");
    assert!(
        v["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("alias/does-not-exist"),
        "{v}"
    );
    // Init fails with the KMS error and leaves storage untouched, so it can be retried.
    let (code, body) = put(
        &server.addr,
        "/v1/sys/init",
        None,
        &json!({"recovery_shares": 1, "recovery_threshold": 1}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("KeyNotFound"),
        "{body}"
    );
    let (_, st) = get(&server.addr, "/v1/sys/seal-status").await;
    assert_eq!(
        (st["initialized"].clone(), st["sealed"].clone()),
        (json!(false), json!(true))
    );
}
