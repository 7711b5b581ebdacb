//! Test harness: a raft cluster of real `sealkeep server` processes on 127.0.0.1, sealed by
//! moto's KMS through IRSA-style credentials (a web-identity token file and a role ARN; STS is
//! moto too). Every node lists every other node in `retry_join`, as the Helm chart does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{ACCOUNT_ROLE, ServerProc, ServerSpec, client, free_port, get, get_auth, put};

/// One node's fixed identity: its directory and ports survive restarts.
pub struct NodeSpec {
    pub name: String,
    pub dir: PathBuf,
    pub api_port: u16,
    pub cluster_port: u16,
    /// The port this node advertises as its `cluster_addr` (peers dial it): `None` for
    /// `cluster_port`; tests/jepsen puts a fault proxy there.
    pub advertised_cluster_port: Option<u16>,
    pub extra_env: Vec<(String, String)>,
    /// The KMS key alias this node's seal uses.
    pub key_alias: String,
    pub region: String,
}

pub struct Cluster {
    pub moto_url: String,
    pub nodes: Vec<NodeSpec>,
    pub procs: Vec<Option<ServerProc>>,
    /// The server binary the nodes run: `None` for this build's `sealkeep`.
    pub bin: Option<PathBuf>,
    /// The pid of each running node, shared with observers that outlive a borrow of the
    /// cluster (tests/jepsen's fault proxy tells which node opened a connection by it).
    pub pids: Arc<Mutex<Vec<Option<u32>>>>,
    _tmp: tempfile::TempDir,
}

impl NodeSpec {
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn hcl(&self, joins: &[String]) -> String {
        let retry: String = joins
            .iter()
            .map(|a| format!("  retry_join {{ leader_api_addr = \"{a}\" }}\n"))
            .collect();
        format!(
            "storage \"raft\" {{\n  path = \"{raft}\"\n  node_id = \"{name}\"\n{retry}}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cl}\"\n  tls_disable = 1\n}}\n\
             api_addr = \"http://127.0.0.1:{api}\"\ncluster_addr = \"https://127.0.0.1:{advertised}\"\n\
             seal \"awskms\" {{\n  kms_key_id = \"alias/{alias}\"\n  max_backoff = \"1s\"\n}}\n",
            raft = self.dir.join("raft").display(),
            name = self.name,
            api = self.api_port,
            cl = self.cluster_port,
            advertised = self.advertised_cluster_port.unwrap_or(self.cluster_port),
            alias = self.key_alias,
        )
    }
}

impl Cluster {
    /// `n` nodes (not started) whose seals use the KMS key `alias/<key_alias>` in moto.
    pub fn new(n: usize, moto_url: &str, key_alias: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let nodes = (0..n)
            .map(|i| {
                let dir = tmp.path().join(format!("node-{i}"));
                std::fs::create_dir_all(&dir).expect("node dir");
                NodeSpec {
                    name: format!("node-{i}"),
                    dir,
                    api_port: free_port(),
                    cluster_port: free_port(),
                    advertised_cluster_port: None,
                    extra_env: Vec::new(),
                    key_alias: key_alias.to_owned(),
                    region: "us-east-1".into(),
                }
            })
            .collect();
        Self {
            moto_url: moto_url.to_owned(),
            nodes,
            procs: (0..n).map(|_| None).collect(),
            bin: None,
            pids: Arc::new(Mutex::new(vec![None; n])),
            _tmp: tmp,
        }
    }

    pub fn addr(&self, i: usize) -> String {
        self.nodes[i].addr()
    }

    /// Starts node `i` (again), with `retry_join` to every other node.
    pub fn start(&mut self, i: usize) {
        let joins: Vec<String> = (0..self.nodes.len())
            .filter(|j| *j != i)
            .map(|j| self.addr(j))
            .collect();
        let node = &self.nodes[i];
        let token = node.dir.join("token");
        // moto does not check the token's signature; the SDK must still read and send it.
        std::fs::write(
            &token,
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2VhbGtlZXA6c2VydmVyIn0.c2ln",
        )
        .expect("token");
        let mut env = vec![
            ("AWS_ROLE_ARN".to_owned(), ACCOUNT_ROLE.to_owned()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(),
                token.display().to_string(),
            ),
            ("AWS_ROLE_SESSION_NAME".to_owned(), node.name.clone()),
            ("AWS_REGION".to_owned(), node.region.clone()),
            ("AWS_ENDPOINT_URL".to_owned(), self.moto_url.clone()),
        ];
        env.extend(node.extra_env.iter().cloned());
        let spec = ServerSpec {
            dir: &node.dir,
            port: node.api_port,
            extra_hcl: node.hcl(&joins),
            env,
        };
        let proc = match &self.bin {
            Some(bin) => ServerProc::start_bin(&spec, bin),
            None => ServerProc::start(&spec),
        };
        self.set_pid(i, Some(proc.child.id()));
        self.procs[i] = Some(proc);
    }

    fn set_pid(&self, i: usize, pid: Option<u32>) {
        self.pids.lock().unwrap_or_else(|p| p.into_inner())[i] = pid;
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            p.kill();
        }
        self.set_pid(i, None);
    }

    pub fn pid(&self, i: usize) -> i32 {
        let p = self.procs[i].as_ref().expect("node running");
        i32::try_from(p.child.id()).expect("pid")
    }

    pub fn signal(&self, i: usize, sig: &str) {
        let st = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid(i).to_string())
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{sig}");
    }

    pub fn log(&self, i: usize) -> String {
        self.procs[i]
            .as_ref()
            .map(ServerProc::log_text)
            .unwrap_or_default()
    }

    /// `sys/init` on node `i` with one recovery share; returns the root token.
    pub async fn init(&self, i: usize) -> String {
        let (st, v) = put(
            &self.addr(i),
            "/v1/sys/init",
            None,
            &json!({"recovery_shares": 1, "recovery_threshold": 1}),
        )
        .await;
        assert_eq!(st, 200, "init: {v}");
        v["root_token"].as_str().expect("root token").to_owned()
    }

    /// Waits until every running node is initialized and unsealed.
    pub async fn wait_unsealed(&self, limit: Duration) {
        for i in 0..self.nodes.len() {
            if self.procs[i].is_some() {
                super::wait_status(&self.addr(i), limit, |v| {
                    v["initialized"] == true && v["sealed"] == false
                })
                .await;
            }
        }
    }

    /// The index of the node that says it is the active node, waiting up to `limit`.
    pub async fn wait_leader(&self, token: &str, limit: Duration) -> usize {
        let start = Instant::now();
        while start.elapsed() < limit {
            for i in 0..self.nodes.len() {
                if self.procs[i].is_none() {
                    continue;
                }
                let (st, v) = get_auth(&self.addr(i), "/v1/sys/leader", token).await;
                if st == 200 && v["is_self"] == true {
                    // Serving, not just elected: a write goes through.
                    let (w, _) = put(
                        &self.addr(i),
                        "/v1/secret/data/cluster-probe",
                        Some(token),
                        &json!({"data": {"probe": i}}),
                    )
                    .await;
                    if w == 200 {
                        return i;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no active node within {limit:?}");
    }

    /// `sys/storage/raft/configuration` through node `i`.
    pub async fn configuration(&self, i: usize, token: &str) -> Value {
        let (st, v) = get_auth(&self.addr(i), "/v1/sys/storage/raft/configuration", token).await;
        assert_eq!(st, 200, "configuration: {v}");
        v
    }

    /// Waits until the configuration lists `n` voters.
    pub async fn wait_voters(&self, token: &str, n: usize, limit: Duration) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < limit {
            let leader = self.wait_leader(token, limit).await;
            let (st, v) = get_auth(
                &self.addr(leader),
                "/v1/sys/storage/raft/configuration",
                token,
            )
            .await;
            if st == 200 {
                let voters = v["data"]["config"]["servers"]
                    .as_array()
                    .map_or(0, |s| s.iter().filter(|s| s["voter"] == true).count());
                if voters == n {
                    return v;
                }
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("never {n} voters within {limit:?}; last: {last}");
    }
}

/// Writes `data` to KV v2 `secret/data/<key>` through `addr`, following redirects; the status.
pub async fn write(addr: &str, token: &str, key: &str, data: Value) -> u16 {
    let resp = client()
        .put(format!("{addr}/v1/secret/data/{key}"))
        .header("X-Vault-Token", token)
        .json(&json!({ "data": data }))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    resp.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Reads KV v2 `secret/data/<key>` through `addr`, following redirects: (status, data).
pub async fn read(addr: &str, token: &str, key: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{addr}/v1/secret/data/{key}"))
        .header("X-Vault-Token", token)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match resp {
        Ok(r) => {
            let st = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (st, v["data"]["data"].clone())
        }
        Err(_) => (0, Value::Null),
    }
}

/// Plain `get` re-exported for tests that want no token.
pub async fn status(addr: &str) -> (u16, Value) {
    get(addr, "/v1/sys/seal-status").await
}
