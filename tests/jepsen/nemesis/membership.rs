//! Jepsen harness (test code): membership nemeses. Removes a voter through the leader
//! (`sys/storage/raft/remove-peer`) and adds it back, and restarts a node with a wiped raft
//! directory. A removed node cannot join again with its old data (`this node is already part of
//! a raft cluster`), so both come back the same way: SIGKILL, wipe `raft/`, restart; the node's
//! `retry_join` joins it as a learner (replacing an old raft id under its name) and autopilot
//! promotes it. HTTP, signals and file I/O.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Env, find_leader, get_json, quick, restart};
use crate::common::cluster::Cluster;

/// How long a node may take to be a voter again after it restarts with a wiped directory.
const REJOIN: Duration = Duration::from_secs(60);

/// Removes a random voter other than `leader` through `leader`; after `hold`, wipes and
/// restarts it so it joins again, and waits until it is a voter.
pub async fn remove_and_rejoin(env: &mut Env<'_>, leader: usize) {
    let n = env.c.nodes.len();
    let others: Vec<usize> = (0..n).filter(|i| *i != leader).collect();
    let node = others[env.rng.below(others.len() as u64) as usize];
    let name = env.c.nodes[node].name.clone();
    env.fault("remove", node, format!("through node {leader}"));
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/sys/storage/raft/remove-peer",
            env.c.addr(leader)
        ))
        .header("X-Vault-Token", env.token)
        .json(&json!({ "server_id": name }))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match r {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => eprintln!(
            "nemesis: remove-peer {name} on node {leader}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ),
        Err(e) => eprintln!("nemesis: remove-peer {name} on node {leader}: {e}"),
    }
    tokio::time::sleep(env.s.schedule.hold).await;
    env.fault("rejoin", node, String::new());
    env.c.kill(node);
    wipe_raft_dir(env.c, node);
    restart(env.c, node);
    wait_member(env, node).await;
}

/// SIGKILL `node`, wipe its raft directory, restart it after `hold`; waits until it is a
/// voter again.
pub async fn wipe(env: &mut Env<'_>, node: usize) {
    env.fault("wipe", node, String::new());
    env.c.kill(node);
    wipe_raft_dir(env.c, node);
    tokio::time::sleep(env.s.schedule.hold).await;
    restart(env.c, node);
    wait_member(env, node).await;
}

fn wipe_raft_dir(c: &Cluster, node: usize) {
    let dir = c.nodes[node].dir.join("raft");
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        panic!("cannot wipe {}: {e}", dir.display());
    }
}

/// Waits (at most [`REJOIN`]) until `node` serves again (it joined and unsealed) and every
/// node is a voter, so the next fault does not meet a cluster still short of one; says so
/// when it is not. The order matters: until the wiped node joins, the leader still lists its
/// old raft id as a voter, and the configuration alone looks whole (the 30-min soak with
/// seed 12 then wiped a second node of three, and the cluster lost its quorum for good).
async fn wait_member(env: &Env<'_>, node: usize) {
    let start = Instant::now();
    let n = env.c.nodes.len();
    while start.elapsed() < REJOIN {
        if serves(env.c, node).await && voters(env.c, env.token).await == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("nemesis: node {node} is not a voter again {REJOIN:?} after it rejoined");
}

/// Whether `node` is initialized and unsealed, active or standby (`sys/health` 200 with
/// `standbyok`): a wiped node is so only once it joined the cluster again.
async fn serves(c: &Cluster, node: usize) -> bool {
    quick()
        .get(format!("{}/v1/sys/health?standbyok=true", c.addr(node)))
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// The number of members in the leader's configuration once it is whole: every member a
/// voter and every name there once; `None` while not (a learner not promoted yet, or a wiped
/// node's old raft id still listed beside its new one: counting voters alone, that old id
/// passed for the node, and the next fault then left a quorum of one voter out of two).
pub async fn voters(c: &Cluster, token: &str) -> Option<usize> {
    let leader = find_leader(c, token, Duration::from_secs(2)).await?;
    let url = format!("{}/v1/sys/storage/raft/configuration", c.addr(leader));
    let v = get_json(&url, token).await?;
    let servers = v["data"]["config"]["servers"].as_array()?;
    let mut names: Vec<&str> = servers
        .iter()
        .filter_map(|s| s["node_id"].as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let whole = names.len() == servers.len() && servers.iter().all(|s| s["voter"] == true);
    whole.then_some(servers.len())
}
