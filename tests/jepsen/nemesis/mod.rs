//! Jepsen harness (test code): nemeses, the faults injected while the workload runs. Process
//! signals (SIGKILL, SIGSTOP/SIGCONT, [`process`]), network faults through the fault proxy
//! ([`network`]), membership changes and wiped data directories ([`membership`]), and HTTP
//! (`sys/leader`, `sys/step-down`, `remove-peer`). Bounded: at most `max_faults` faults, none
//! started after the deadline, each held for `hold`; [`heal`] undoes whatever is still in
//! effect.

mod membership;
mod network;
mod process;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Scenario;
use super::history::History;
use super::proxy::FaultNet;
use super::rng::Rng;
use crate::common::cluster::Cluster;

pub use membership::voters;
pub use network::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nemesis {
    /// No faults (a baseline).
    None,
    /// SIGKILL the leader, restart it after `hold`.
    KillLeader,
    /// SIGKILL a random node, restart it after `hold`.
    KillRandom,
    /// SIGSTOP the leader for `hold` (longer than an election), then SIGCONT.
    PauseLeader,
    /// Three `sys/step-down`s on whoever leads, `hold / 3` apart.
    StepDownStorm,
    /// Each round one [`Shape`] of network fault for `hold`, then heal.
    Partition,
    /// Remove a non-leader voter (`remove-peer` on the leader); after `hold`, add it back
    /// (it restarts with a wiped data directory and joins again by `retry_join`).
    Membership,
    /// SIGKILL a node (the leader, then a random one, in turn), wipe its raft directory,
    /// restart it after `hold`: it joins again by `retry_join` and catches up.
    Wipe,
    /// Each round one of the above at random.
    Mixed,
}

impl Nemesis {
    pub const NAMES: &str = "none, kill-leader, kill-random, pause-leader, step-down, partition, membership, wipe, mixed";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "kill-leader" => Self::KillLeader,
            "kill-random" => Self::KillRandom,
            "pause-leader" => Self::PauseLeader,
            "step-down" => Self::StepDownStorm,
            "partition" => Self::Partition,
            "membership" => Self::Membership,
            "wipe" => Self::Wipe,
            "mixed" => Self::Mixed,
            _ => return None,
        })
    }

    /// The kind of fault one round of `self` injects (`Mixed` picks one).
    fn round(self, rng: &mut Rng) -> Self {
        const ALL: [Nemesis; 7] = [
            Nemesis::KillLeader,
            Nemesis::KillRandom,
            Nemesis::PauseLeader,
            Nemesis::StepDownStorm,
            Nemesis::Partition,
            Nemesis::Membership,
            Nemesis::Wipe,
        ];
        match self {
            Self::Mixed => ALL[rng.below(ALL.len() as u64) as usize],
            k => k,
        }
    }
}

/// When faults happen.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Healthy time before each fault.
    pub quiet: Duration,
    /// How long a fault lasts.
    pub hold: Duration,
    pub max_faults: usize,
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// kill, pause, step-down, partition, bridge, one-way, slow, remove, rejoin, wipe.
    pub kind: &'static str,
    /// The node it targets (for network faults, the leader when it began).
    pub node: usize,
    /// What exactly (a partition's sides), or empty.
    pub detail: String,
    /// Nanoseconds since the history began.
    pub at: u64,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = Duration::from_nanos(self.at);
        write!(
            f,
            "{} node-{} at {:.2}s",
            self.kind,
            self.node,
            at.as_secs_f64()
        )?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// What every nemesis works on.
pub struct Env<'a> {
    pub c: &'a mut Cluster,
    pub net: &'a FaultNet,
    pub token: &'a str,
    pub s: &'a Scenario,
    pub history: &'a Arc<History>,
    pub rng: Rng,
    pub faults: Vec<Fault>,
}

impl Env<'_> {
    /// Records a fault of `kind` on `node` now.
    fn fault(&mut self, kind: &'static str, node: usize, detail: String) {
        self.faults.push(Fault {
            kind,
            node,
            detail,
            at: self.history.now(),
        });
    }
}

fn quick() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .expect("client")
}

/// `sys/leader` of node `i` (no answer: `None`).
pub async fn leader_status(addr: &str, token: &str) -> Option<Value> {
    get_json(&format!("{addr}/v1/sys/leader"), token).await
}

/// The JSON body of a 200 answer to a GET of `url` with `token`; `None` for anything else.
pub async fn get_json(url: &str, token: &str) -> Option<Value> {
    let r = quick()
        .get(url)
        .header("X-Vault-Token", token)
        .send()
        .await
        .ok()?;
    if r.status().as_u16() != 200 {
        return None;
    }
    r.json().await.ok()
}

/// The running node that says it leads, in the highest term; waits up to `limit`.
pub async fn find_leader(c: &Cluster, token: &str, limit: Duration) -> Option<usize> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let running: Vec<usize> = (0..c.nodes.len())
            .filter(|i| c.procs[*i].is_some())
            .collect();
        let answers = futures::future::join_all(
            running
                .iter()
                .map(|i| async move { (*i, leader_status(&c.addr(*i), token).await) }),
        )
        .await;
        let best = answers
            .into_iter()
            .filter_map(|(i, v)| {
                let v = v?;
                (v["is_self"] == true).then(|| (v["raft_term"].as_u64().unwrap_or(0), i))
            })
            .max();
        if let Some((_, i)) = best {
            return Some(i);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Runs the scenario's nemesis until `deadline`; returns the faults injected. Leaves every
/// node running, a member, and every link healed.
pub async fn run(
    c: &mut Cluster,
    net: &FaultNet,
    token: &str,
    s: &Scenario,
    history: &Arc<History>,
    deadline: Instant,
) -> Vec<Fault> {
    let sched = s.schedule;
    let mut env = Env {
        c,
        net,
        token,
        s,
        history,
        rng: Rng::new(s.seed ^ 0x006e_656d_6573_6973),
        faults: Vec::new(),
    };
    let n = env.c.nodes.len();
    // Network shapes go round in turn (from a seeded start), so a short run meets them all.
    let mut shapes = env.rng.below(Shape::ALL.len() as u64) as usize;
    let mut wipes = 0usize;
    while env.faults.len() < sched.max_faults {
        tokio::time::sleep(sched.quiet).await;
        if Instant::now() + sched.hold >= deadline || s.nemesis == Nemesis::None {
            break;
        }
        let kind = s.nemesis.round(&mut env.rng);
        let leader = find_leader(env.c, token, Duration::from_secs(5)).await;
        let target = match kind {
            Nemesis::KillRandom => Some(env.rng.below(n as u64) as usize),
            // Every other wipe is the leader's, so a short run wipes a leader too.
            Nemesis::Wipe => {
                wipes += 1;
                if wipes % 2 == 1 {
                    leader
                } else {
                    Some(env.rng.below(n as u64) as usize)
                }
            }
            _ => leader,
        };
        let Some(node) = target else {
            eprintln!("nemesis: no leader found to fault; skipping this round");
            continue;
        };
        match kind {
            Nemesis::KillLeader | Nemesis::KillRandom => process::kill(&mut env, node).await,
            Nemesis::PauseLeader => process::pause(&mut env, node).await,
            Nemesis::StepDownStorm => process::step_down_storm(&mut env).await,
            Nemesis::Partition => {
                let shape = Shape::ALL[shapes % Shape::ALL.len()];
                shapes += 1;
                network::partition(&mut env, shape, node).await;
            }
            Nemesis::Membership => membership::remove_and_rejoin(&mut env, node).await,
            Nemesis::Wipe => membership::wipe(&mut env, node).await,
            Nemesis::None | Nemesis::Mixed => {}
        }
    }
    let faults = std::mem::take(&mut env.faults);
    heal(env.c, net);
    faults
}

/// Starts node `i` again (blocking: it waits for the listener).
pub fn restart(c: &mut Cluster, i: usize) {
    tokio::task::block_in_place(|| c.start(i));
}

/// Every link healed, every node running and not paused.
pub fn heal(c: &mut Cluster, net: &FaultNet) {
    net.heal();
    for i in 0..c.nodes.len() {
        if c.procs[i].is_some() {
            // Harmless on a running process; undoes a pause a failed step left behind.
            c.signal(i, "CONT");
        } else {
            restart(c, i);
        }
    }
}
