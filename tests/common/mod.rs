//! Test harness: spawns the real `sealkeep` binary and moto's real KMS/STS server on loopback.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cluster;
pub mod k8s;
pub mod operator;

pub const ACCOUNT_ROLE: &str = "arn:aws:iam::123456789012:role/sealkeep-test";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The moto_server executable: $SEALKEEP_MOTO_SERVER, the CI venv, or PATH.
pub fn moto_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SEALKEEP_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let cache = std::env::var("SEALKEEP_CACHE").unwrap_or_else(|_| "/var/cache/sealkeep".into());
    let venv = Path::new(&cache).join("venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

/// moto: the shared instance that `scripts/test-all.sh` started ($SEALKEEP_TEST_MOTO_URL), or
/// else a private one on a free loopback port, killed on drop.
pub struct Moto {
    child: Option<Child>,
    pub url: String,
}

impl Moto {
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("SEALKEEP_TEST_MOTO_URL") {
            return Self { child: None, url };
        }
        let port = free_port();
        let child = Command::new(moto_server_bin())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}); run `bash .ci/run` once, or set SEALKEEP_MOTO_SERVER to a moto_server from `pip install \"moto[server]\"`"
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self {
            child: Some(child),
            url,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("condition not met within {limit:?}");
}

/// Creates a symmetric KMS key and `alias/NAME` in moto; returns the key ARN.
pub async fn create_kms_key(moto_url: &str, alias: &str) -> String {
    let conf = aws_sdk_kms::config::Builder::new()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::v2026_01_12())
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .endpoint_url(moto_url)
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    let kms = aws_sdk_kms::Client::from_conf(conf);
    let key = kms.create_key().send().await.expect("create key");
    let meta = key.key_metadata().expect("metadata");
    kms.create_alias()
        .alias_name(format!("alias/{alias}"))
        .target_key_id(meta.key_id())
        .send()
        .await
        .expect("create alias");
    meta.arn().expect("arn").to_owned()
}

/// A `sealkeep server` child process; killed (SIGKILL) on drop.
pub struct ServerProc {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
}

pub struct ServerSpec<'a> {
    pub dir: &'a Path,
    pub port: u16,
    /// Extra HCL appended to storage + listener; a `storage` block in it replaces the
    /// default `storage "file"` in `dir/data`, a `listener` block the default listener.
    pub extra_hcl: String,
    pub env: Vec<(String, String)>,
}

impl<'a> ServerSpec<'a> {
    /// A file-storage server in `dir` on a free loopback port, with no extra config or env.
    pub fn plain(dir: &'a Path) -> Self {
        Self {
            dir,
            port: free_port(),
            extra_hcl: String::new(),
            env: vec![],
        }
    }

    pub fn config_text(&self) -> String {
        let storage = if self.extra_hcl.contains("storage \"") {
            String::new()
        } else {
            format!(
                "storage \"file\" {{ path = \"{}\" }}\n",
                self.dir.join("data").display()
            )
        };
        let listener = if self.extra_hcl.contains("listener \"") {
            String::new()
        } else {
            format!(
                "listener \"tcp\" {{ address = \"127.0.0.1:{}\" tls_disable = 1 }}\n",
                self.port
            )
        };
        format!("{storage}{listener}{}\n", self.extra_hcl)
    }
}

/// A one-node `storage "raft"` server in `dir` named `name` (Shamir seal, free port).
pub fn raft_spec<'a>(dir: &'a Path, name: &str) -> ServerSpec<'a> {
    raft_spec_at(dir, &dir.join("raft"), name)
}

/// [`raft_spec`] with the raft files at `path`. The cluster port gets a free port of its own:
/// the default (the API port + 1) may be taken by another socket on a busy machine.
pub fn raft_spec_at<'a>(dir: &'a Path, path: &Path, name: &str) -> ServerSpec<'a> {
    let mut spec = ServerSpec::plain(dir);
    spec.extra_hcl = format!(
        "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"{name}\"\n}}\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{}\"\n  cluster_address = \"127.0.0.1:{}\"\n  tls_disable = 1\n}}\n",
        path.display(),
        spec.port,
        free_port()
    );
    spec
}

/// Gives `key` to `sys/unseal` and asserts the server is then unsealed.
pub async fn unseal(addr: &str, key: &str) {
    let (status, body) = put(
        addr,
        "/v1/sys/unseal",
        None,
        &serde_json::json!({ "key": key }),
    )
    .await;
    assert_eq!(status, 200, "unseal: {body}");
    assert_eq!(body["sealed"], false, "{body}");
}

/// Environment for a server process: nothing inherited but PATH, plus `env`.
pub fn base_command(bin: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials");
    cmd
}

pub fn static_creds() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

impl ServerProc {
    pub fn start(spec: &ServerSpec<'_>) -> Self {
        Self::start_bin(spec, std::path::Path::new(env!("CARGO_BIN_EXE_sealkeep")))
    }

    /// As [`ServerProc::start`], with another build of the server (tests/jepsen's negative
    /// control runs a deliberately broken one).
    pub fn start_bin(spec: &ServerSpec<'_>, bin: &Path) -> Self {
        let config = spec.dir.join("server.hcl");
        std::fs::write(&config, spec.config_text()).expect("write config");
        let log = spec.dir.join(format!("server-{}.log", std::process::id()));
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut cmd = base_command(&bin.to_string_lossy());
        cmd.arg("server")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "sealkeep=debug");
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn sealkeep");
        let addr = format!("http://127.0.0.1:{}", spec.port);
        let port = spec.port;
        wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_ok()
        });
        Self { child, addr, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

pub async fn get(addr: &str, path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{addr}{path}"))
        .send()
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn put(addr: &str, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client().put(format!("{addr}{path}")).json(body);
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    let resp = req.send().await.expect("PUT");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn get_auth(addr: &str, path: &str, token: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{addr}{path}"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls seal-status until `pred` holds; returns the last status.
pub async fn wait_status(addr: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < limit {
        let resp = client()
            .get(format!("{addr}/v1/sys/seal-status"))
            .send()
            .await;
        if let Ok(v) = match resp {
            Ok(r) => r.json::<Value>().await,
            Err(e) => Err(e),
        } {
            if pred(&v) {
                return v;
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("seal-status never matched within {limit:?}; last: {last}");
}

/// A loopback TCP forwarder to moto that can be stopped and restarted on the same port, to
/// make KMS unreachable without losing moto's in-memory keys.
pub struct Forwarder {
    bind: std::net::IpAddr,
    pub port: u16,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Forwarder {
    pub fn new(target_url: &str) -> Self {
        let target: SocketAddr = target_url
            .trim_start_matches("http://")
            .parse()
            .expect("moto addr");
        Self {
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            port: free_port(),
            target,
            task: None,
        }
    }

    /// A forwarder listening on `bind` (for example the testenv bridge, so pods reach it).
    pub fn on(bind: std::net::IpAddr, target_url: &str) -> Self {
        let port = std::net::TcpListener::bind((bind, 0))
            .and_then(|l| l.local_addr())
            .expect("free port on the bind address")
            .port();
        Self {
            bind,
            port,
            ..Self::new(target_url)
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}:{}", self.bind, self.port)
    }

    pub async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind((self.bind, self.port))
            .await
            .expect("bind forwarder");
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every open connection.
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}
