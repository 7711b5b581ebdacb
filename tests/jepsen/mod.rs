//! Jepsen harness (test code): runs one scenario against a raft cluster of real `sealkeep
//! server` processes on loopback (tests/common/cluster.rs), then judges it. Process, network
//! and file I/O.
//!
//! A scenario: form the cluster, every raft link through the fault [`proxy`]; run the
//! [`workload`] clients, the [`nemesis`] and the leader sampler together for a fixed time;
//! heal; then check: the history is linearizable per key ([`checker`], porcupine), no two
//! nodes led in one term, the nodes converge to one applied index and one state-machine hash,
//! every acknowledged write reads back at its version and every acknowledged token is found
//! ([`durability`]). Artifacts (history.jsonl, the checker's HTML, server logs) stay in the
//! scenario's output directory.

pub mod checker;
pub mod durability;
pub mod history;
pub mod nemesis;
pub mod ops;
pub mod proxy;
pub mod report;
pub mod rng;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::cluster::Cluster;
use crate::common::{Moto, create_kms_key, put};
use history::{History, Op};
use nemesis::{Nemesis, Schedule};
use ops::{Call, Outcome};
use proxy::FaultNet;
pub use report::Report;
use workload::{AckedWrite, Shared, Workload};

const FORM: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub nodes: usize,
    pub nemesis: Nemesis,
    pub duration: Duration,
    pub seed: u64,
    pub workload: Workload,
    pub schedule: Schedule,
    /// Another server build (the negative control); `None` for this build's `sealkeep`.
    pub server_bin: Option<PathBuf>,
}

impl Scenario {
    pub fn new(name: &str, nemesis: Nemesis, duration: Duration, seed: u64) -> Self {
        Self {
            name: name.to_owned(),
            nodes: 3,
            nemesis,
            duration,
            seed,
            workload: Workload::default(),
            schedule: Schedule {
                quiet: Duration::from_secs(3),
                hold: Duration::from_secs(3),
                max_faults: 1_000,
            },
            server_bin: None,
        }
    }
}

/// Where a scenario's artifacts go: `$SEALKEEP_JEPSEN_OUT` or cargo's target tmpdir.
fn out_dir(s: &Scenario) -> PathBuf {
    let base = std::env::var("SEALKEEP_JEPSEN_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_TARGET_TMPDIR")).join("jepsen"));
    let dir = base.join(format!("{}-seed{}-{}", s.name, s.seed, std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Forms the cluster behind its fault proxies and returns it with the root token; KV v2 at
/// `secret/` keeps every version (so each acknowledged write can be read back at its version),
/// and autopilot promotes a caught-up learner after 2 s instead of 10 s (membership rounds).
async fn form(s: &Scenario, moto: &Moto) -> (Cluster, FaultNet, String) {
    let alias = format!("jepsen-{}-{}-{}", s.name, s.seed, std::process::id());
    create_kms_key(&moto.url, &alias).await;
    let mut c = Cluster::new(s.nodes, &moto.url, &alias);
    c.bin = s.server_bin.clone();
    let targets: Vec<u16> = c.nodes.iter().map(|n| n.cluster_port).collect();
    let net = FaultNet::start(&targets, Arc::clone(&c.pids)).await;
    for (i, node) in c.nodes.iter_mut().enumerate() {
        node.advertised_cluster_port = Some(net.port(i));
    }
    tokio::task::block_in_place(|| c.start_all());
    let token = c.init(0).await;
    c.wait_unsealed(FORM).await;
    let leader = c.wait_leader(&token, FORM).await;
    let (st, v) = put(
        &c.addr(leader),
        "/v1/sys/storage/raft/autopilot/configuration",
        Some(&token),
        &json!({"server_stabilization_time": "2s"}),
    )
    .await;
    assert!(st == 200 || st == 204, "autopilot configuration: {st} {v}");
    c.wait_voters(&token, s.nodes, FORM).await;
    let leader = c.wait_leader(&token, FORM).await;
    let (st, v) = put(
        &c.addr(leader),
        "/v1/secret/config",
        Some(&token),
        &json!({"max_versions": 1_000_000}),
    )
    .await;
    assert!(st == 200 || st == 204, "secret/config: {st} {v}");
    (c, net, token)
}

/// Process ids of the final reads.
const FINAL: u64 = 999_000_000;

/// After healing: one read of every KV key through every node, and one lookup of every
/// acknowledged token (through rotating nodes), recorded in the history. Returns the tokens
/// not found (lost after they were acknowledged).
async fn final_reads(c: &Cluster, shared: &Shared) -> Vec<String> {
    let history = &shared.history;
    let mut keys: Vec<String> = history
        .events()
        .into_iter()
        .filter(|e| !matches!(e.f, Op::TokenCreate | Op::TokenLookup))
        .map(|e| e.key)
        .collect();
    keys.sort();
    keys.dedup();
    let n = c.nodes.len();
    let http = ops::http_client(Duration::from_secs(10));
    let token = shared.token.as_str();
    for (k, key) in keys.iter().enumerate() {
        for node in 0..n {
            let process = FINAL + (k * n + node) as u64;
            ops::perform(
                history,
                &http,
                &shared.addrs,
                token,
                process,
                Call::read(node, key),
            )
            .await;
        }
    }
    let base = FINAL + (keys.len() * n) as u64;
    let tokens = shared.tokens();
    let mut lost = Vec::new();
    for (chunk_no, chunk) in tokens.chunks(16).enumerate() {
        let lookups = chunk.iter().enumerate().map(|(j, (key, t))| {
            let i = chunk_no * 16 + j;
            let call = Call::lookup(i % n, key, t);
            let http = &http;
            async move {
                let o =
                    ops::perform(history, http, &shared.addrs, token, base + i as u64, call).await;
                match o {
                    Outcome::Ok { value: None, .. } => Some(format!(
                        "token {key} was acknowledged as created but is gone"
                    )),
                    Outcome::Ok { .. } => None,
                    Outcome::Fail { error, .. } | Outcome::Info { error, .. } => {
                        Some(format!("token {key}: the final lookup failed: {error}"))
                    }
                }
            }
        });
        lost.extend(
            futures::future::join_all(lookups)
                .await
                .into_iter()
                .flatten(),
        );
    }
    lost
}

/// Copies the nodes' server logs into the output directory when dropped: at the end of a
/// run, and also when a wait panics midway (the nodes' directories go with the cluster).
struct LogsOnDrop {
    dirs: Vec<PathBuf>,
    out: PathBuf,
}

impl Drop for LogsOnDrop {
    fn drop(&mut self) {
        for (i, dir) in self.dirs.iter().enumerate() {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("server-") && name.ends_with(".log") {
                    let _ = std::fs::copy(e.path(), self.out.join(format!("node-{i}-{name}")));
                }
            }
        }
    }
}

/// Runs scenario `s` and judges it (see the module docs). Needs a multi-threaded runtime.
pub async fn run(s: &Scenario) -> Report {
    let out = out_dir(s);
    let moto = Moto::start();
    let (mut c, net, token) = form(s, &moto).await;
    let logs = LogsOnDrop {
        dirs: c.nodes.iter().map(|n| n.dir.clone()).collect(),
        out: out.clone(),
    };
    let history = Arc::new(History::new());
    let shared = Arc::new(Shared {
        history: Arc::clone(&history),
        addrs: (0..s.nodes).map(|i| c.addr(i)).collect(),
        token: token.clone(),
        tokens: Mutex::new(Vec::new()),
    });
    let deadline = Instant::now() + s.duration;
    let clients: Vec<_> = (0..s.workload.clients as u64)
        .map(|id| {
            tokio::spawn(workload::client(
                id,
                s.workload.clone(),
                Arc::clone(&shared),
                s.seed,
                deadline,
            ))
        })
        .collect();
    let sampler = tokio::spawn(durability::sample_leaders(
        Arc::new(shared.addrs.clone()),
        Arc::new(token.clone()),
        deadline,
    ));
    let faults = nemesis::run(&mut c, &net, &token, s, &history, deadline).await;
    let mut acked: Vec<AckedWrite> = Vec::new();
    for cl in clients {
        acked.extend(cl.await.expect("client task"));
    }
    let claims = sampler.await.expect("leader sampler");
    let fault_times: Vec<u64> = faults.iter().map(|f| f.at).collect();
    let windows = history::unavailability(&fault_times, &history.acked_write_times());
    let counts = history.counts();

    nemesis::heal(&mut c, &net);
    let converged = durability::converge(&c, &token, FORM).await;
    let lost_tokens = final_reads(&c, &shared).await;
    let raw = history.events();
    let mut keys: Vec<String> = raw
        .iter()
        .filter(|e| !matches!(e.f, Op::TokenCreate | Op::TokenLookup))
        .map(|e| e.key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    let raw_path = out.join("history.raw.jsonl");
    history::write_jsonl(&raw, &raw_path).unwrap_or_else(|e| panic!("{}: {e}", raw_path.display()));
    // The final version lists: which indeterminate writes happened, and no acknowledged
    // write lost.
    let (mut missing, resolved) = match durability::version_lists(&c, &token, &keys).await {
        Ok(lists) => (
            durability::lost_or_doubled(&lists, &acked),
            durability::resolve(&raw, &lists),
        ),
        Err(e) => (vec![format!("cannot read the final versions: {e}")], raw),
    };
    missing.extend(lost_tokens);
    // The undeletes of version_lists are writes: every node must apply them before the
    // state machines are compared.
    let converged = match converged {
        Ok(_) => durability::converge(&c, &token, FORM).await,
        e => e,
    };
    let history_path = out.join("history.jsonl");
    history::write_jsonl(&resolved, &history_path)
        .unwrap_or_else(|e| panic!("{}: {e}", history_path.display()));
    let verdict = checker::check(&history_path, &out);
    tokio::task::block_in_place(|| durability::stop_all(&mut c));
    let hashes = (0..s.nodes)
        .map(|i| durability::state_hash(&c, i))
        .collect();
    drop(logs);
    Report {
        name: s.name.clone(),
        seed: s.seed,
        duration: s.duration,
        counts,
        faults,
        windows,
        verdict,
        split_brains: durability::split_brains(&claims),
        converged,
        missing,
        hashes,
        acked: acked.len(),
        out_dir: out,
    }
}

/// A server built with the test-only feature `jepsen-negative-stale-reads` (raft reads skip
/// the ReadIndex round). `$SEALKEEP_JEPSEN_NEGATIVE_BIN` overrides; else it is built here with
/// the cargo that runs the tests, in the same target directory (so only this crate compiles
/// again, a minute or two), copied aside, and the normal `sealkeep` put back in place.
pub fn negative_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SEALKEEP_JEPSEN_NEGATIVE_BIN") {
        return p.into();
    }
    let normal = Path::new(env!("CARGO_BIN_EXE_sealkeep"));
    let profile_dir = normal.parent().expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target dir");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = |features: bool| {
        let mut cmd = std::process::Command::new(&cargo);
        cmd.args([
            "test",
            "--locked",
            "--workspace",
            "--test",
            "jepsen",
            "--no-run",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if features {
            cmd.args(["--features", "sealkeep/jepsen-negative-stale-reads"]);
        }
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo");
        assert!(
            st.success(),
            "building the negative-control server (cargo test --features sealkeep/jepsen-negative-stale-reads --no-run) failed; see cargo's output above"
        );
    };
    let before = std::fs::read(normal).expect("the sealkeep binary");
    build(true);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sealkeep-jepsen-negative");
    std::fs::copy(normal, &out).expect("copy the negative-control server");
    build(false);
    let after = std::fs::read(normal).expect("the sealkeep binary");
    assert!(
        before == after,
        "target/.../sealkeep was not restored to the normal build after building the negative control"
    );
    assert!(
        std::fs::read(&out).expect("negative-control server") != after,
        "the negative-control server is the same file as the normal one: the feature had no effect"
    );
    out
}
