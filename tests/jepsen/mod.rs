//! Jepsen harness (test code): runs one scenario against a raft cluster of real `sealkeep
//! server` processes on loopback (tests/common/cluster.rs), then judges it. Process, network
//! and file I/O.
//!
//! A scenario: form the cluster; run the [`workload`] clients, the [`nemesis`] and the leader
//! sampler together for a fixed time; heal; then check: the history is linearizable per key
//! ([`checker`], porcupine), no two nodes led in one term, the nodes converge to one applied
//! index and one state-machine hash, and every acknowledged write reads back at its version
//! ([`durability`]). Artifacts (history.jsonl, the checker's HTML, server logs) stay in the
//! scenario's output directory.

pub mod checker;
pub mod durability;
pub mod history;
pub mod nemesis;
pub mod rng;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::cluster::Cluster;
use crate::common::{Moto, create_kms_key, put};
use history::{Counts, Event, History, Kind, Op};
use nemesis::{Fault, Nemesis, Schedule};
use workload::{AckedWrite, Workload};

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

#[derive(Debug)]
pub struct Report {
    pub name: String,
    pub seed: u64,
    pub duration: Duration,
    pub counts: Counts,
    pub faults: Vec<Fault>,
    /// Per fault: time to the next acknowledged write.
    pub windows: Vec<Option<Duration>>,
    pub verdict: checker::Verdict,
    pub split_brains: Vec<(u64, std::collections::BTreeSet<usize>)>,
    pub converged: Result<u64, String>,
    pub missing: Vec<String>,
    pub hashes: Vec<Result<(String, usize), String>>,
    pub acked: usize,
    pub out_dir: PathBuf,
}

impl Report {
    /// Durability: converged, no acknowledged write lost, one state-machine hash, one leader
    /// per term. Empty when all hold.
    pub fn durability_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = &self.converged {
            p.push(e.clone());
        }
        p.extend(self.missing.iter().take(20).cloned());
        let hashes: Vec<_> = self.hashes.iter().collect();
        if hashes.iter().any(|h| h.is_err()) || hashes.windows(2).any(|w| w[0] != w[1]) {
            p.push(format!("state machines differ between nodes: {hashes:?}"));
        }
        for (term, nodes) in &self.split_brains {
            p.push(format!("two leaders in term {term}: nodes {nodes:?}"));
        }
        p
    }

    pub fn max_window(&self) -> Option<Duration> {
        self.windows.iter().flatten().max().copied()
    }

    fn percentile(&self, q: f64) -> Option<Duration> {
        let mut w: Vec<Duration> = self.windows.iter().flatten().copied().collect();
        if w.is_empty() {
            return None;
        }
        w.sort();
        let i = ((w.len() as f64 - 1.0) * q).round() as usize;
        w.get(i).copied()
    }

    pub fn table_header() -> String {
        format!(
            "{:<24} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
            "scenario",
            "seed",
            "secs",
            "ops",
            "ok",
            "fail",
            "info",
            "faults",
            "linear",
            "durable",
            "unav p50",
            "unav p99",
            "unav max"
        )
    }

    pub fn table_row(&self) -> String {
        let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{}ms", d.as_millis()));
        format!(
            "{:<24} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
            self.name,
            self.seed,
            self.duration.as_secs(),
            self.counts.ops,
            self.counts.ok,
            self.counts.fail,
            self.counts.info,
            self.faults.len(),
            match self.verdict.code {
                0 => "yes",
                1 => "NO",
                _ => "?",
            },
            if self.durability_problems().is_empty() {
                "yes"
            } else {
                "NO"
            },
            ms(self.percentile(0.5)),
            ms(self.percentile(0.99)),
            ms(self.max_window()),
        )
    }

    /// Everything a failed assertion should show.
    pub fn explain(&self) -> String {
        format!(
            "{}\n{}\nchecker (exit {}):\n{}\ndurability: {:?}\nfaults: {}\nartifacts: {}",
            Self::table_header(),
            self.table_row(),
            self.verdict.code,
            self.verdict.output,
            self.durability_problems(),
            self.faults
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            self.out_dir.display()
        )
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

/// Forms the cluster and returns it with the root token; KV v2 at `secret/` keeps every
/// version (so each acknowledged write can be read back at its version).
async fn form(s: &Scenario, moto: &Moto) -> (Cluster, String) {
    let alias = format!("jepsen-{}-{}-{}", s.name, s.seed, std::process::id());
    create_kms_key(&moto.url, &alias).await;
    let mut c = Cluster::new(s.nodes, &moto.url, &alias);
    c.bin = s.server_bin.clone();
    c.start_all();
    let token = c.init(0).await;
    c.wait_unsealed(FORM).await;
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
    (c, token)
}

/// After healing: one read of every key through every node, recorded in the history.
async fn final_reads(c: &Cluster, token: &str, history: &History) {
    let mut keys: Vec<String> = history.events().into_iter().map(|e| e.key).collect();
    keys.sort();
    keys.dedup();
    let addrs: Vec<String> = (0..c.nodes.len()).map(|i| c.addr(i)).collect();
    let http = workload::http_client(Duration::from_secs(10));
    for (n, key) in keys.iter().enumerate() {
        for node in 0..addrs.len() {
            let process = 999_000_000 + (n * addrs.len() + node) as u64;
            let mut ev = Event {
                process,
                kind: Kind::Invoke,
                f: Op::Read,
                key: key.clone(),
                value: None,
                expect: None,
                version: None,
                matched: None,
                time: 0,
                node,
                error: None,
                late: None,
            };
            history.record(ev.clone());
            match workload::execute(&http, &addrs, token, workload::Call::read(node, key)).await {
                workload::Outcome::Ok { value, version, .. } => {
                    ev.kind = Kind::Ok;
                    ev.value = value;
                    ev.version = Some(version);
                }
                workload::Outcome::Fail { error, .. } | workload::Outcome::Info { error, .. } => {
                    ev.kind = Kind::Fail;
                    ev.error = Some(error);
                }
            }
            history.record(ev);
        }
    }
}

fn copy_logs(c: &Cluster, out: &Path) {
    for (i, node) in c.nodes.iter().enumerate() {
        for e in std::fs::read_dir(&node.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("server-") && name.ends_with(".log") {
                let _ = std::fs::copy(e.path(), out.join(format!("node-{i}-{name}")));
            }
        }
    }
}

/// Runs scenario `s` and judges it (see the module docs). Needs a multi-threaded runtime.
pub async fn run(s: &Scenario) -> Report {
    let out = out_dir(s);
    let moto = Moto::start();
    let (mut c, token) = form(s, &moto).await;
    let history = Arc::new(History::new());
    let addrs = Arc::new((0..s.nodes).map(|i| c.addr(i)).collect::<Vec<_>>());
    let token_arc = Arc::new(token.clone());
    let deadline = Instant::now() + s.duration;
    let clients: Vec<_> = (0..s.workload.clients as u64)
        .map(|id| {
            tokio::spawn(workload::client(
                id,
                s.workload.clone(),
                Arc::clone(&history),
                Arc::clone(&addrs),
                Arc::clone(&token_arc),
                s.seed,
                deadline,
            ))
        })
        .collect();
    let sampler = tokio::spawn(durability::sample_leaders(
        Arc::clone(&addrs),
        Arc::clone(&token_arc),
        deadline,
    ));
    let faults = nemesis::run(&mut c, &token, s, &history, deadline).await;
    let mut acked: Vec<AckedWrite> = Vec::new();
    for cl in clients {
        acked.extend(cl.await.expect("client task"));
    }
    let claims = sampler.await.expect("leader sampler");
    let fault_times: Vec<u64> = faults.iter().map(|f| f.at).collect();
    let windows = history::unavailability(&fault_times, &history.acked_write_times());
    let counts = history.counts();

    nemesis::heal(&mut c);
    let converged = durability::converge(&c, &token, FORM).await;
    final_reads(&c, &token, &history).await;
    let raw = history.events();
    let mut keys: Vec<String> = raw.iter().map(|e| e.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let raw_path = out.join("history.raw.jsonl");
    history::write_jsonl(&raw, &raw_path).unwrap_or_else(|e| panic!("{}: {e}", raw_path.display()));
    // The final version lists: which indeterminate writes happened, and no acknowledged
    // write lost.
    let (missing, resolved) = match durability::version_lists(&c, &token, &keys).await {
        Ok(lists) => (
            durability::lost_or_doubled(&lists, &acked),
            durability::resolve(&raw, &lists),
        ),
        Err(e) => (vec![format!("cannot read the final versions: {e}")], raw),
    };
    let history_path = out.join("history.jsonl");
    history::write_jsonl(&resolved, &history_path)
        .unwrap_or_else(|e| panic!("{}: {e}", history_path.display()));
    let verdict = checker::check(&history_path, &out);
    tokio::task::block_in_place(|| durability::stop_all(&mut c));
    let hashes = (0..s.nodes)
        .map(|i| durability::state_hash(&c, i))
        .collect();
    copy_logs(&c, &out);
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
