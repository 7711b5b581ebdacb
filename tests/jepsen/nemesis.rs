//! Jepsen harness (test code): nemeses, the faults injected while the workload runs. Process
//! signals (SIGKILL, SIGSTOP/SIGCONT) on the nodes and HTTP (`sys/leader`, `sys/step-down`).
//! Bounded: at most `max_faults` faults, none started after the deadline, each held for
//! `hold`; [`heal`] undoes whatever is still in effect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Scenario;
use super::history::{Event, History, Kind, Op};
use super::rng::Rng;
use super::workload::{self, Call, Outcome};
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
        write!(
            f,
            "{} node-{} at {:.2}s",
            self.kind,
            self.node,
            at.as_secs_f64()
        )
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
    s: &Scenario,
    history: &Arc<History>,
    deadline: Instant,
) -> Vec<Fault> {
    let (nemesis, sched, w) = (s.nemesis, s.schedule, &s.workload);
    let mut rng = Rng::new(s.seed ^ 0x006e_656d_6573_6973);
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
                let resume = Instant::now() + sched.hold;
                let addrs: Vec<String> = (0..n).map(|i| c.addr(i)).collect();
                let keys: Vec<String> = (0..w.keys)
                    .map(|i| workload::key_name(w, history.elapsed(), i))
                    .collect();
                let probe = probe_paused(history, &addrs, token, node, &keys, &mut rng, resume);
                tokio::join!(probe, tokio::time::sleep_until(resume.into()));
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
                    if let Ok(r) = r
                        && r.status().as_u16() != 204
                    {
                        eprintln!("nemesis: step-down on node {leader}: {}", r.status());
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

/// While `paused` (the old leader) is stopped: writes each key through the other nodes until
/// one is acknowledged (the new leader serves), then sends a read of it to the paused node,
/// with a timeout past `resume`. Those reads begin after the writes completed, so a deposed
/// leader that answers from its own state on SIGCONT is caught by the checker. Recorded in the
/// history like any operation; the reads complete on their own after SIGCONT.
async fn probe_paused(
    history: &Arc<History>,
    addrs: &[String],
    token: &str,
    paused: usize,
    keys: &[String],
    rng: &mut Rng,
    resume: Instant,
) {
    static PROBE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let next = || 800_000_000 + PROBE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let others: Vec<usize> = (0..addrs.len()).filter(|i| *i != paused).collect();
    let quick = workload::http_client(Duration::from_millis(700));
    for key in keys {
        let mut written = false;
        while !written && Instant::now() + Duration::from_millis(800) < resume {
            let node = others[rng.below(others.len() as u64) as usize];
            let process = next();
            let value = i64::try_from(process).unwrap_or(0);
            let mut ev = op_event(process, Op::Write, key, node);
            ev.value = Some(value);
            history.record(ev.clone());
            ev.value = None;
            let call = Call {
                node,
                f: Op::Write,
                key,
                value,
                expect: 0,
            };
            match workload::execute(&quick, addrs, token, call).await {
                Outcome::Ok { version, .. } => {
                    ev.kind = Kind::Ok;
                    ev.version = Some(version);
                    written = true;
                }
                Outcome::Fail { error, .. } => {
                    ev.kind = Kind::Fail;
                    ev.error = Some(error);
                }
                Outcome::Info { error, .. } => {
                    ev.kind = Kind::Info;
                    ev.error = Some(error);
                }
            }
            history.record(ev);
            if !written {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if !written {
            continue;
        }
        let history = Arc::clone(history);
        let addrs = addrs.to_vec();
        let token = token.to_owned();
        let key = key.clone();
        let process = next();
        let patience = resume.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        history.record(op_event(process, Op::Read, &key, paused));
        tokio::spawn(async move {
            let http = workload::http_client(patience);
            let mut ev = op_event(process, Op::Read, &key, paused);
            match workload::execute(&http, &addrs, &token, Call::read(paused, &key)).await {
                Outcome::Ok { value, version, .. } => {
                    ev.kind = Kind::Ok;
                    ev.value = value;
                    ev.version = Some(version);
                }
                Outcome::Fail { error, .. } | Outcome::Info { error, .. } => {
                    ev.kind = Kind::Fail;
                    ev.error = Some(error);
                }
            }
            history.record(ev);
        });
    }
}

fn op_event(process: u64, f: Op, key: &str, node: usize) -> Event {
    Event {
        process,
        kind: Kind::Invoke,
        f,
        key: key.to_owned(),
        value: None,
        expect: None,
        version: None,
        matched: None,
        time: 0,
        node,
        error: None,
        late: None,
    }
}
