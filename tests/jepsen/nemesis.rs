//! Jepsen harness (test code): nemeses, the faults injected while the workload runs. Process
//! signals (SIGKILL, SIGSTOP/SIGCONT) on the nodes and HTTP (`sys/leader`, `sys/step-down`).
//! Bounded: at most `max_faults` faults, none started after the deadline, each held for
//! `hold`; [`heal`] undoes whatever is still in effect.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::history::History;
use super::rng::Rng;
use crate::common::cluster::Cluster;

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
    /// Each round one of the above at random.
    Mixed,
}

impl Nemesis {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "kill-leader" => Self::KillLeader,
            "kill-random" => Self::KillRandom,
            "pause-leader" => Self::PauseLeader,
            "step-down" => Self::StepDownStorm,
            "mixed" => Self::Mixed,
            _ => return None,
        })
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
    pub kind: &'static str,
    pub node: usize,
    /// Nanoseconds since the history began.
    pub at: u64,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = Duration::from_nanos(self.at);
        write!(f, "{} node-{} at {:.2}s", self.kind, self.node, at.as_secs_f64())
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
    let r = quick()
        .get(format!("{addr}/v1/sys/leader"))
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

/// Runs `nemesis` until `deadline`; returns the faults injected. Leaves every node running.
pub async fn run(
    c: &mut Cluster,
    token: &str,
    nemesis: Nemesis,
    sched: Schedule,
    history: &History,
    seed: u64,
    deadline: Instant,
) -> Vec<Fault> {
    let mut rng = Rng::new(seed ^ 0x6e65_6d65_7369_73);
    let mut faults = Vec::new();
    let n = c.nodes.len();
    while faults.len() < sched.max_faults {
        tokio::time::sleep(sched.quiet).await;
        if Instant::now() + sched.hold >= deadline || nemesis == Nemesis::None {
            break;
        }
        let kind = match nemesis {
            Nemesis::Mixed => match rng.below(4) {
                0 => Nemesis::KillLeader,
                1 => Nemesis::KillRandom,
                2 => Nemesis::PauseLeader,
                _ => Nemesis::StepDownStorm,
            },
            k => k,
        };
        let target = match kind {
            Nemesis::KillRandom => Some(rng.below(n as u64) as usize),
            _ => find_leader(c, token, Duration::from_secs(5)).await,
        };
        let Some(node) = target else {
            eprintln!("nemesis: no leader found to fault; skipping this round");
            continue;
        };
        match kind {
            Nemesis::KillLeader | Nemesis::KillRandom => {
                faults.push(Fault {
                    kind: "kill",
                    node,
                    at: history.now(),
                });
                c.kill(node);
                tokio::time::sleep(sched.hold).await;
                restart(c, node);
            }
            Nemesis::PauseLeader => {
                faults.push(Fault {
                    kind: "pause",
                    node,
                    at: history.now(),
                });
                c.signal(node, "STOP");
                tokio::time::sleep(sched.hold).await;
                c.signal(node, "CONT");
            }
            Nemesis::StepDownStorm => {
                for _ in 0..3 {
                    let Some(leader) = find_leader(c, token, Duration::from_secs(5)).await else {
                        continue;
                    };
                    faults.push(Fault {
                        kind: "step-down",
                        node: leader,
                        at: history.now(),
                    });
                    let r = quick()
                        .put(format!("{}/v1/sys/step-down", c.addr(leader)))
                        .header("X-Vault-Token", token)
                        .json(&json!({}))
                        .send()
                        .await;
                    if let Ok(r) = r {
                        if r.status().as_u16() != 204 {
                            eprintln!("nemesis: step-down on node {leader}: {}", r.status());
                        }
                    }
                    tokio::time::sleep(sched.hold / 3).await;
                }
            }
            Nemesis::None | Nemesis::Mixed => {}
        }
    }
    heal(c);
    faults
}

/// Starts node `i` again (blocking: it waits for the listener).
pub fn restart(c: &mut Cluster, i: usize) {
    tokio::task::block_in_place(|| c.start(i));
}

/// Every node running and not paused.
pub fn heal(c: &mut Cluster) {
    for i in 0..c.nodes.len() {
        if c.procs[i].is_some() {
            // Harmless on a running process; undoes a pause a failed step left behind.
            c.signal(i, "CONT");
        } else {
            restart(c, i);
        }
    }
}
