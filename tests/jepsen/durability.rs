//! Jepsen harness (test code): checks beyond linearizability. During a run, a sampler asks
//! every node's `sys/leader` and records who claims to lead in which term (two leaders in one
//! term is split brain). After it: all nodes converge to one applied index, every acknowledged
//! write reads back at its version, and, once the nodes are stopped, every node's state
//! machine (`raft/sm.redb`, table `kv`) hashes the same. HTTP, signals and file reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::nemesis::leader_status;
use super::workload::AckedWrite;
use crate::common::cluster::Cluster;

/// term → the nodes that said `is_self` in it.
pub type LeaderClaims = BTreeMap<u64, BTreeSet<usize>>;

/// Samples every node's `sys/leader` every 100 ms until `deadline`.
pub async fn sample_leaders(addrs: Arc<Vec<String>>, token: Arc<String>, deadline: Instant) -> LeaderClaims {
    let mut claims = LeaderClaims::new();
    while Instant::now() < deadline {
        let answers = futures::future::join_all(
            addrs
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let token = Arc::clone(&token);
                    async move { (i, leader_status(a, &token).await) }
                }),
        )
        .await;
        for (i, v) in answers {
            if let Some(v) = v {
                if v["is_self"] == true {
                    if let Some(term) = v["raft_term"].as_u64() {
                        claims.entry(term).or_default().insert(i);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    claims
}

/// The terms in which more than one node claimed to lead.
pub fn split_brains(claims: &LeaderClaims) -> Vec<(u64, BTreeSet<usize>)> {
    claims
        .iter()
        .filter(|(_, nodes)| nodes.len() > 1)
        .map(|(t, n)| (*t, n.clone()))
        .collect()
}

/// Waits until a leader serves writes, every node is a voter and all nodes report the same
/// applied index; returns it.
pub async fn converge(c: &Cluster, token: &str, limit: Duration) -> Result<u64, String> {
    c.wait_unsealed(limit).await;
    c.wait_voters(token, c.nodes.len(), limit).await;
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < limit {
        let mut applied = Vec::new();
        for i in 0..c.nodes.len() {
            let v = leader_status(&c.addr(i), token).await;
            applied.push(v.and_then(|v| v["raft_applied_index"].as_u64()));
        }
        if let Some(Some(first)) = applied.first() {
            if applied.iter().all(|a| *a == Some(*first)) {
                return Ok(*first);
            }
        }
        last = applied;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the nodes did not converge to one applied index within {limit:?}: {last:?}"
    ))
}

/// Reads every acknowledged write back at its version (`?version=N`, through rotating
/// nodes); returns one line per write that is missing or changed.
pub async fn missing_acked_writes(c: &Cluster, token: &str, acked: &[AckedWrite]) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut missing = Vec::new();
    for (n, w) in acked.iter().enumerate() {
        let addr = c.addr(n % c.nodes.len());
        let url = format!("{addr}/v1/secret/data/{}?version={}", w.key, w.version);
        let mut got = None;
        for _ in 0..3 {
            if let Ok(r) = http.get(&url).header("X-Vault-Token", token).send().await {
                let st = r.status().as_u16();
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                got = Some((st, v["data"]["data"]["v"].as_i64()));
                if st == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if got.map(|(_, v)| v) != Some(Some(w.value)) {
            missing.push(format!(
                "{} version {} was acknowledged with value {} but reads back as {got:?}",
                w.key, w.version, w.value
            ));
        }
    }
    missing
}

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// Stops every node (SIGTERM, then SIGKILL after 15 s).
pub fn stop_all(c: &mut Cluster) {
    for i in 0..c.nodes.len() {
        if c.procs[i].is_some() {
            c.signal(i, "TERM");
        }
    }
    for i in 0..c.nodes.len() {
        if let Some(p) = c.procs[i].as_mut() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if matches!(p.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        c.kill(i);
    }
}

fn find_file(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if depth > 0 && p.is_dir() {
            if let Some(f) = find_file(&p, name, depth - 1) {
                return Some(f);
            }
        }
    }
    None
}

/// SHA-256 of node `i`'s state-machine table `kv` (keys and ciphertexts, in key order) and its
/// number of entries. Only on a stopped node.
pub fn state_hash(c: &Cluster, i: usize) -> Result<(String, usize), String> {
    let path = find_file(&c.nodes[i].dir, "sm.redb", 3)
        .ok_or_else(|| format!("node {i}: no sm.redb under {}", c.nodes[i].dir.display()))?;
    let db = redb::Database::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let txn = db.begin_read().map_err(|e| format!("{}: {e}", path.display()))?;
    let table = txn.open_table(KV).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut n = 0;
    for row in table.iter().map_err(|e| format!("{}: {e}", path.display()))? {
        let (k, v) = row.map_err(|e| format!("{}: {e}", path.display()))?;
        let (k, v) = (k.value(), v.value());
        ctx.update(&(k.len() as u64).to_le_bytes());
        ctx.update(k.as_bytes());
        ctx.update(&(v.len() as u64).to_le_bytes());
        ctx.update(v);
        n += 1;
    }
    Ok((hex::encode(ctx.finish().as_ref()), n))
}
