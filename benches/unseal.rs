//! Auto-unseal latency against local moto: process start -> first `sys/seal-status` with
//! sealed=false, median of N runs, with the time spent inside KMS calls (from the server's own
//! `sealkeep_kms_request_duration_seconds_sum`) shown separately; plus the idle RSS of an
//! unsealed server. Prints figures; asserts nothing. `cargo bench --bench unseal [-- --runs N]`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn moto_bin() -> PathBuf {
    std::env::var("SEALKEEP_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let cache =
                std::env::var("SEALKEEP_CACHE").unwrap_or_else(|_| "/var/cache/sealkeep".into());
            PathBuf::from(cache).join("venv/bin/moto_server")
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn spawn_server(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sealkeep"))
        .args(["server", "--config"])
        .arg(config)
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", "/nonexistent")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sealkeep")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn kms_seconds(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("sealkeep_kms_request_duration_seconds_sum"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(11);

    let moto_port = free_port();
    let mut moto = Command::new(moto_bin())
        .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (pip install \"moto[server]\" or set SEALKEEP_MOTO_SERVER)");
    let moto_url = format!("http://127.0.0.1:{moto_port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", moto_port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::new()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::v2026_01_12())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .endpoint_url(&moto_url)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "t", "t", None, None, "t",
            ))
            .build(),
    );
    let key = kms.create_key().send().await.expect("create key");
    let key_id = key.key_metadata().expect("meta").key_id().to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("server.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:{port}\" tls_disable = 1 telemetry {{ unauthenticated_metrics_access = true }} }}\nseal \"awskms\" {{ region = \"us-east-1\" kms_key_id = \"{key_id}\" endpoint = \"{moto_url}\" }}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");

    // Initialize once.
    let mut server = spawn_server(&config);
    let init_url = format!("{addr}/v1/sys/init");
    let mut initialized = false;
    for _ in 0..400 {
        if let Ok(r) = http
            .put(&init_url)
            .body(r#"{"recovery_shares":1,"recovery_threshold":1}"#)
            .send()
            .await
        {
            initialized = r.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(initialized, "init failed");
    let _ = server.kill();
    let _ = server.wait();

    let status_url = format!("{addr}/v1/sys/seal-status");
    let (mut totals, mut kms_ms, mut local) = (Vec::new(), Vec::new(), Vec::new());
    let mut last: Option<Child> = None;
    for i in 0..runs {
        let start = Instant::now();
        let mut child = spawn_server(&config);
        let deadline = start + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(&status_url).send().await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["sealed"] == false
            {
                break;
            }
            assert!(Instant::now() < deadline, "no unseal within 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let total = start.elapsed().as_secs_f64() * 1000.0;
        let metrics = http
            .get(format!("{addr}/v1/sys/metrics?format=prometheus"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let k = kms_seconds(&metrics) * 1000.0;
        totals.push(total);
        kms_ms.push(k);
        local.push(total - k);
        if i + 1 == runs {
            last = Some(child);
        } else {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    println!("auto-unseal latency over {runs} runs (process start -> sealed=false), local moto:");
    println!("  median total          {:>8.1} ms", median(&mut totals));
    println!(
        "  median in KMS calls   {:>8.1} ms  (DescribeKey + Decrypt, server-side histogram)",
        median(&mut kms_ms)
    );
    println!(
        "  median local overhead {:>8.1} ms  (target: under 20 ms)",
        median(&mut local)
    );
    if let Some(mut child) = last {
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!(
            "idle RSS of an unsealed server: {:.1} MiB (target: under 30 MiB)",
            rss_kib(child.id()) as f64 / 1024.0
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = moto.kill();
    let _ = moto.wait();
}
