//! Jepsen harness (test code): checks beyond linearizability. During a run, a sampler asks
//! every node's `sys/leader` and records who claims to lead in which term (two leaders in one
//! term is split brain). After it: all nodes converge to one applied index, every acknowledged
//! write reads back at its version, and, once the nodes are killed together, every node's state
//! machine (`raft/sm.redb`, table `kv`) hashes the same. HTTP, signals and file reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::history::{Event, Kind, Op};
use super::nemesis::leader_status;
use super::workload::AckedWrite;
use crate::common::cluster::Cluster;

/// term → the nodes that said `is_self` in it.
pub type LeaderClaims = BTreeMap<u64, BTreeSet<usize>>;

/// Samples every node's `sys/leader` every 100 ms until `deadline`.
pub async fn sample_leaders(
    addrs: Arc<Vec<String>>,
    token: Arc<String>,
    deadline: Instant,
) -> LeaderClaims {
    let mut claims = LeaderClaims::new();
    while Instant::now() < deadline {
        let answers = futures::future::join_all(addrs.iter().enumerate().map(|(i, a)| {
            let token = Arc::clone(&token);
            async move { (i, leader_status(a, &token).await) }
        }))
        .await;
        for (i, v) in answers {
            if let Some(v) = v
                && v["is_self"] == true
                && let Some(term) = v["raft_term"].as_u64()
            {
                claims.entry(term).or_default().insert(i);
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

/// Waits until a leader serves writes, every node is a voter (once: a wiped node's old raft
/// id is gone) and all nodes report the same applied index; returns it.
pub async fn converge(c: &Cluster, token: &str, limit: Duration) -> Result<u64, String> {
    c.wait_unsealed(limit).await;
    c.wait_leader(token, limit).await;
    let start = Instant::now();
    let n = c.nodes.len();
    let mut voters = None;
    while voters != Some(n) && start.elapsed() < limit {
        voters = super::nemesis::voters(c, token).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if voters != Some(n) {
        return Err(format!(
            "the configuration never held the {n} nodes as voters (each once) within {limit:?}; last count {voters:?}"
        ));
    }
    let mut last = Vec::new();
    while start.elapsed() < limit {
        let mut applied = Vec::new();
        for i in 0..c.nodes.len() {
            let v = leader_status(&c.addr(i), token).await;
            applied.push(v.and_then(|v| v["raft_applied_index"].as_u64()));
        }
        if let Some(Some(first)) = applied.first()
            && applied.iter().all(|a| *a == Some(*first))
        {
            return Ok(*first);
        }
        last = applied;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the nodes did not converge to one applied index within {limit:?}: {last:?}"
    ))
}

/// Every key's applied versions after the run, read through rotating nodes: `lists[key][v-1]`
/// is version `v`'s value (`None`: unreadable). This is the oracle that says which
/// indeterminate writes happened ([`resolve`]) and whether an acknowledged write was lost.
/// Versions the workload deleted are undeleted first (their data is kept, but a read of a
/// deleted version shows none), so this changes the state: converge again afterwards.
pub async fn version_lists(
    c: &Cluster,
    token: &str,
    keys: &[String],
) -> Result<BTreeMap<String, Vec<Option<i64>>>, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let call = |req: reqwest::RequestBuilder, what: String| async move {
        for _ in 0..5 {
            let Some(req) = req.try_clone() else { break };
            if let Ok(r) = req.header("X-Vault-Token", token).send().await {
                let st = r.status().as_u16();
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                if matches!(st, 200 | 204 | 404) {
                    return Ok((st, v));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("no answer to {what} after 5 tries"))
    };
    let mut lists = BTreeMap::new();
    let mut n = 0usize;
    let mut addr = || {
        n += 1;
        c.addr(n % c.nodes.len())
    };
    for key in keys {
        let url = format!("{}/v1/secret/metadata/{key}", addr());
        let (st, meta) = call(http.get(&url), url).await?;
        let current = if st == 404 {
            0
        } else {
            meta["data"]["current_version"].as_i64().unwrap_or(0)
        };
        let deleted: Vec<i64> = (1..=current)
            .filter(|v| {
                meta["data"]["versions"][v.to_string()]["deletion_time"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
            .collect();
        if !deleted.is_empty() {
            let url = format!("{}/v1/secret/undelete/{key}", addr());
            let body = serde_json::json!({ "versions": deleted });
            call(http.post(&url).json(&body), url).await?;
        }
        let mut values = Vec::new();
        for v in 1..=current {
            let url = format!("{}/v1/secret/data/{key}?version={v}", addr());
            let (st, body) = call(http.get(&url), url).await?;
            values.push(if st == 200 {
                body["data"]["data"]["v"].as_i64()
            } else {
                None
            });
        }
        lists.insert(key.clone(), values);
    }
    Ok(lists)
}

/// Acknowledged writes that are not at their version with their value, and values applied
/// twice (every operation writes a value of its own).
pub fn lost_or_doubled(
    lists: &BTreeMap<String, Vec<Option<i64>>>,
    acked: &[AckedWrite],
) -> Vec<String> {
    let mut problems = Vec::new();
    for w in acked {
        let got = lists
            .get(&w.key)
            .and_then(|l| l.get(usize::try_from(w.version - 1).ok()?))
            .copied()
            .flatten();
        if got != Some(w.value) {
            problems.push(format!(
                "{} version {} was acknowledged with value {} but the cluster has {got:?} there",
                w.key, w.version, w.value
            ));
        }
    }
    for (key, l) in lists {
        let mut seen = BTreeSet::new();
        for v in l.iter().flatten() {
            if !seen.insert(*v) {
                problems.push(format!(
                    "{key}: value {v} was applied twice (a retried write?)"
                ));
            }
        }
    }
    problems
}

/// The history for the checker: each indeterminate (`info`) write or cas whose value the
/// final version lists hold becomes `ok` at that version, `late` (it took effect at some
/// unknown time after its invoke); one whose value they do not hold did not happen (`fail`).
pub fn resolve(events: &[Event], lists: &BTreeMap<String, Vec<Option<i64>>>) -> Vec<Event> {
    let mut applied: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (key, l) in lists {
        for (i, v) in l.iter().enumerate() {
            if let Some(v) = v {
                applied.insert((key.clone(), *v), i64::try_from(i).unwrap_or(0) + 1);
            }
        }
    }
    let mut invoked: BTreeMap<u64, i64> = BTreeMap::new();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let mut e = e.clone();
        match e.kind {
            Kind::Invoke => {
                if let Some(v) = e.value {
                    invoked.insert(e.process, v);
                }
            }
            Kind::Info if matches!(e.f, Op::Write | Op::Cas) && lists.contains_key(&e.key) => {
                let value = invoked.get(&e.process).copied();
                match value.and_then(|v| applied.get(&(e.key.clone(), v))) {
                    Some(version) => {
                        e.kind = Kind::Ok;
                        e.version = Some(*version);
                        e.matched = (e.f == Op::Cas).then_some(true);
                        e.late = Some(true);
                    }
                    None => e.kind = Kind::Fail,
                }
            }
            _ => {}
        }
        out.push(e);
    }
    out
}

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// Stops every node at once with SIGKILL (applied state is fsynced before it is acknowledged,
/// so nothing applied is lost). Not SIGTERM: a leader's graceful stop hands leadership over,
/// and the new leader could append entries that the nodes already stopped never apply.
pub fn stop_all(c: &mut Cluster) {
    for i in 0..c.nodes.len() {
        if c.procs[i].is_some() {
            c.signal(i, "KILL");
        }
    }
    for i in 0..c.nodes.len() {
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
        if depth > 0
            && p.is_dir()
            && let Some(f) = find_file(&p, name, depth - 1)
        {
            return Some(f);
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
    let txn = db
        .begin_read()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let table = txn
        .open_table(KV)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut n = 0;
    for row in table
        .iter()
        .map_err(|e| format!("{}: {e}", path.display()))?
    {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(process: u64, kind: Kind, f: Op, value: Option<i64>) -> Event {
        Event {
            kind,
            value,
            ..Event::invoke(process, f, "k", 0)
        }
    }

    #[test]
    fn an_indeterminate_write_is_late_ok_when_its_value_was_applied_else_failed() {
        let lists = BTreeMap::from([("k".to_owned(), vec![Some(10), Some(20)])]);
        let events = vec![
            ev(1, Kind::Invoke, Op::Write, Some(20)),
            ev(1, Kind::Info, Op::Write, None),
            ev(2, Kind::Invoke, Op::Write, Some(30)),
            ev(2, Kind::Info, Op::Write, None),
        ];
        let r = resolve(&events, &lists);
        assert_eq!(
            (r[1].kind, r[1].version, r[1].late),
            (Kind::Ok, Some(2), Some(true))
        );
        assert_eq!((r[3].kind, r[3].version), (Kind::Fail, None));
    }

    #[test]
    fn a_lost_acknowledged_write_and_a_doubled_value_are_reported() {
        let lists = BTreeMap::from([("k".to_owned(), vec![Some(10), Some(10)])]);
        let acked = [
            AckedWrite {
                key: "k".into(),
                version: 1,
                value: 10,
            },
            AckedWrite {
                key: "k".into(),
                version: 3,
                value: 30,
            },
        ];
        let p = lost_or_doubled(&lists, &acked);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("version 3 was acknowledged with value 30"),
            "{p:?}"
        );
        assert!(p[1].contains("value 10 was applied twice"), "{p:?}");
    }
}
