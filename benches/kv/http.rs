//! The HTTP side of the KV benchmark: the real server process and keep-alive clients.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::workers::{Workers, keep_alive_client};
use super::{Figures, MANY, phase};

/// User plus system CPU time of process `pid` so far (all threads), from `/proc`; Linux
/// reports it in USER_HZ (100) ticks.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The server child process, killed when dropped (also when the bench panics).
struct Server {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path, port: u16, cache: bool) -> Self {
        let config = dir.join("server.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{ address = \"127.0.0.1:{port}\" tls_disable = 1 }}\nseal \"shamir\" {{}}\ndisable_cache = {}\n",
                dir.join("data").display(),
                !cache,
            ),
        )
        .expect("write server config");
        let log = dir.join("server.log");
        let logf = std::fs::File::create(&log).expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_sealkeep"))
            .args(["server", "--config"])
            .arg(&config)
            .env_clear()
            .env("HOME", "/nonexistent")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn sealkeep server");
        Self { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Initializes (one share) and unseals the server; returns the root token.
async fn init_unseal(http: &reqwest::Client, addr: &str, server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let init: Value = loop {
        match http
            .put(format!("{addr}/v1/sys/init"))
            .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => break r.json().await.expect("init JSON"),
            Ok(r) => panic!("init failed: {} {}", r.status(), server.log_text()),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("server never answered: {e}; log:\n{}", server.log_text()),
        }
    };
    let key = init["keys_base64"][0]
        .as_str()
        .expect("unseal key")
        .to_owned();
    let unseal: Value = http
        .put(format!("{addr}/v1/sys/unseal"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .expect("unseal")
        .json()
        .await
        .expect("unseal JSON");
    assert_eq!(unseal["sealed"], json!(false), "unseal: {unseal}");
    init["root_token"].as_str().expect("root token").to_owned()
}

/// The running server, its clients, and how many keys each worker has written so far.
pub(super) struct HttpBench {
    http: Arc<Workers>,
    written: Vec<u64>,
    server: Server,
    _dir: tempfile::TempDir,
}

impl HttpBench {
    pub(super) async fn start(cache: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let server = Server::start(dir.path(), port, cache);
        let addr = format!("http://127.0.0.1:{port}");
        let token = init_unseal(&keep_alive_client(), &addr, &server).await;
        let http = Arc::new(Workers::new(MANY, &addr, &token));
        // Warm-up outside the clock: opens every keep-alive connection, creates the lazily
        // mounted `secret/` and writes key 0 of every worker.
        for w in 0..MANY {
            http.write(w, 0).await;
        }
        Self {
            http,
            written: vec![1; MANY],
            server,
            _dir: dir,
        }
    }

    /// Worker `w` writes new keys `bench/c<w>/k<n>` after the ones it already wrote.
    pub(super) async fn writes(&mut self, workers: usize, budget: Duration) -> Figures {
        let (h, base) = (Arc::clone(&self.http), Arc::new(self.written.clone()));
        let cpu = cpu_time(self.server.child.id());
        let mut f = phase(workers, budget, move |w, j| {
            let (h, base) = (Arc::clone(&h), Arc::clone(&base));
            async move { h.write(w, base[w] + j).await }
        })
        .await;
        f.server_cpu = Some(cpu_time(self.server.child.id()).saturating_sub(cpu));
        for (w, n) in f.per_worker.iter().enumerate() {
            self.written[w] += n;
        }
        f
    }

    /// Worker `w` reads its own keys in turn.
    pub(super) async fn reads(&self, workers: usize, budget: Duration) -> Figures {
        let (h, n) = (Arc::clone(&self.http), Arc::new(self.written.clone()));
        let cpu = cpu_time(self.server.child.id());
        let mut f = phase(workers, budget, move |w, j| {
            let (h, n) = (Arc::clone(&h), Arc::clone(&n));
            async move { h.read(w, j % n[w]).await }
        })
        .await;
        f.server_cpu = Some(cpu_time(self.server.child.id()).saturating_sub(cpu));
        f
    }
}
