//! HA benchmark, leader changes (process and HTTP I/O on loopback): SIGKILL of the leader while
//! a client writes through a survivor, and planned `sys/step-down` under four writers. Every
//! write is a fresh key; the acknowledged ones are returned so the caller reads them back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::common::cluster::Cluster;
use super::load::{Kv, Outcome, backoff};

/// Longest we wait for any one thing in a round (a new leader, an acknowledgement).
const PATIENCE: Duration = Duration::from_secs(30);
/// Bounds of one writer loop.
const WRITER_MAX_ATTEMPTS: u64 = 50_000;
const WRITER_MAX_TIME: Duration = Duration::from_secs(60);
/// How long a step-down writer retries one key before it counts it as failed.
const RETRY_LIMIT: Duration = Duration::from_secs(10);
const MAX_RETRIES: u32 = 500;
const STEP_DOWN_WRITERS: usize = 4;

/// A write the cluster acknowledged: key and value, to read back at the end.
pub type Acked = (String, u64);

/// One SIGKILL of the leader.
pub struct KillRound {
    pub killed: usize,
    /// Kill → first acknowledged write sent after the kill.
    pub to_ack: Duration,
    /// Kill → a survivor's `sys/leader` says `is_self` (raft elected it).
    pub to_elected: Option<(usize, Duration)>,
    /// Kill → "became the active node" in the new leader's log.
    pub to_active: Option<Duration>,
    /// "HA: unsealed state not reloaded yet" lines in the new leader's log since the kill.
    pub reload_retries: usize,
    /// (Pre-)votes the survivors refused since the kill because their leader lease (openraft:
    /// `election_timeout_max` since the last word from the leader) had not run out.
    pub lease_refusals: usize,
    /// Failed attempts between the kill and the first acknowledgement, by outcome.
    pub failures: BTreeMap<Outcome, u32>,
}

struct Attempt {
    start: Instant,
    end: Instant,
    outcome: Outcome,
    key: String,
    n: u64,
}

fn prefix_of(round: usize) -> String {
    format!("failover/r{round}")
}

/// Polls `f` every `every` until it holds or `limit` passes; whether it held.
async fn wait_for(limit: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    f()
}

/// Kills the leader under a writer that writes through a survivor, measures, then restarts the
/// killed node and waits for three unsealed voters. `acked` gets every acknowledged write.
pub async fn kill_round(
    c: &mut Cluster,
    token: &str,
    round: usize,
    form: Duration,
    acked: &mut Vec<Acked>,
) -> KillRound {
    let leader = c.wait_leader(token, form).await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let via = c.addr(survivors[round % survivors.len()]);
    let kv = Arc::new(Kv::new(token, Duration::from_secs(2)));

    let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (kv, attempts, stop, prefix) = (
            Arc::clone(&kv),
            Arc::clone(&attempts),
            Arc::clone(&stop),
            prefix_of(round),
        );
        tokio::spawn(async move {
            let deadline = Instant::now() + WRITER_MAX_TIME;
            for n in 0..WRITER_MAX_ATTEMPTS {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let key = format!("{prefix}/n{n}");
                let start = Instant::now();
                let outcome = kv.write(&via, &key, n).await;
                let end = Instant::now();
                attempts.lock().expect("attempts").push(Attempt {
                    start,
                    end,
                    outcome,
                    key,
                    n,
                });
                if outcome != Outcome::Acked {
                    tokio::time::sleep(backoff(n)).await;
                }
            }
        })
    };
    let acks = |after: Instant| {
        attempts
            .lock()
            .expect("attempts")
            .iter()
            .filter(|a| a.outcome == Outcome::Acked && a.start >= after)
            .count()
    };
    let warm = Instant::now();
    assert!(
        wait_for(PATIENCE, Duration::from_millis(10), || acks(warm) >= 5).await,
        "failover round {round}: the writer never got going through {}",
        c.addr(survivors[round % 2])
    );

    let wall = SystemTime::now();
    let killed_at = Instant::now();
    c.kill(leader);
    let elected = {
        let (kv, addrs) = (
            Arc::clone(&kv),
            survivors
                .iter()
                .map(|i| (*i, c.addr(*i)))
                .collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            while killed_at.elapsed() < PATIENCE {
                for (i, addr) in &addrs {
                    if kv.is_self_leader(addr).await {
                        return Some((*i, killed_at.elapsed()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None
        })
    };
    let recovered = wait_for(PATIENCE, Duration::from_millis(5), || acks(killed_at) >= 1).await;
    // A few more acknowledged writes after the first, then stop the writer.
    let _ = wait_for(Duration::from_secs(5), Duration::from_millis(10), || {
        acks(killed_at) >= 5
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer task");
    let to_elected = elected.await.expect("election observer");
    let attempts = std::mem::take(&mut *attempts.lock().expect("attempts"));
    assert!(
        recovered,
        "failover round {round}: no write acknowledged within {PATIENCE:?} of killing node {leader}"
    );

    let first = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Acked && a.start >= killed_at)
        .map(|a| a.end)
        .min()
        .expect("an acknowledged write after the kill");
    let mut failures = BTreeMap::new();
    for a in attempts
        .iter()
        .filter(|a| a.outcome != Outcome::Acked && a.end >= killed_at && a.end <= first)
    {
        *failures.entry(a.outcome).or_insert(0) += 1;
    }
    acked.extend(
        attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Acked)
            .map(|a| (a.key.clone(), a.n)),
    );
    let (to_active, reload_retries) = match to_elected {
        Some((i, _)) => active_in_log(&c.log(i), wall),
        None => (None, 0),
    };
    if let Some(dir) = std::env::var_os("SEALKEEP_BENCH_HA_LOGS") {
        // Keep every node's log of this round for a closer look (the cluster's tempdir goes).
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        for i in 0..3 {
            let _ = std::fs::write(dir.join(format!("kill{round}-node{i}.log")), c.log(i));
        }
    }
    let lease_refusals = survivors
        .iter()
        .map(|i| lines_since(&c.log(*i), wall, "lease has not yet expired"))
        .sum();

    c.start(leader);
    c.wait_unsealed(form).await;
    c.wait_voters(token, 3, form).await;
    KillRound {
        killed: leader,
        to_ack: first - killed_at,
        to_elected,
        to_active,
        reload_retries,
        lease_refusals,
        failures,
    }
}

/// From a node's log: the first "became the active node" after `since` (as an offset from
/// it), and how many "not reloaded yet" retries it logged since then.
fn active_in_log(log: &str, since: SystemTime) -> (Option<Duration>, usize) {
    let mut active = None;
    let mut retries = 0;
    for line in log.lines() {
        let clean = strip_ansi(line);
        let Some(at) = clean
            .split_whitespace()
            .next()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        else {
            continue;
        };
        let Ok(offset) = at.duration_since(since) else {
            continue;
        };
        if active.is_none() && clean.contains("HA: unsealed state not reloaded yet") {
            retries += 1;
        }
        if active.is_none() && clean.contains("became the active node") {
            active = Some(offset);
        }
    }
    (active, retries)
}

/// Lines of `log` stamped at or after `since` that contain `needle`.
fn lines_since(log: &str, since: SystemTime, needle: &str) -> usize {
    log.lines()
        .map(strip_ansi)
        .filter(|l| l.contains(needle))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .is_some_and(|at| at >= since)
        })
        .count()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_escape = false;
    for ch in s.chars() {
        match (in_escape, ch) {
            (false, '\u{1b}') => in_escape = true,
            (false, c) => out.push(c),
            (true, c) if c.is_ascii_alphabetic() => in_escape = false,
            (true, _) => {}
        }
    }
    out
}

/// One planned step-down.
pub struct StepRound {
    /// The longest pause between consecutive acknowledged writes (any writer) from just
    /// before the call until the writers stop.
    pub max_gap: Duration,
    /// The same before the call: the background noise of this machine.
    pub baseline_gap: Duration,
    /// Call → another node's `sys/leader` says `is_self`.
    pub to_new_leader: Option<Duration>,
    pub call: Duration,
    /// Attempts that had to be retried (each key is retried until acknowledged), by outcome.
    pub retries: BTreeMap<Outcome, u32>,
    pub writes: usize,
}

pub enum StepDown {
    Done(StepRound),
    /// The endpoint answered this status (it is not in this build).
    Unavailable(u16),
}

/// Four writers (writer `w` through node `w % 3`, following redirects; each key retried on
/// 503, 307 and connection errors until acknowledged) while the leader is asked to step down.
pub async fn step_down_round(
    c: &Cluster,
    token: &str,
    round: usize,
    form: Duration,
    acked: &mut Vec<Acked>,
) -> StepDown {
    let leader = c.wait_leader(token, form).await;
    let acks: Arc<Mutex<Vec<(Instant, Acked)>>> = Arc::default();
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let retries: Arc<Mutex<BTreeMap<Outcome, u32>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..STEP_DOWN_WRITERS {
        let (acks, failed, retries, stop) = (
            Arc::clone(&acks),
            Arc::clone(&failed),
            Arc::clone(&retries),
            Arc::clone(&stop),
        );
        let kv = Kv::new(token, Duration::from_secs(2));
        let addr = c.addr(w % 3);
        writers.push(tokio::spawn(async move {
            let deadline = Instant::now() + WRITER_MAX_TIME;
            for n in 0..WRITER_MAX_ATTEMPTS {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let key = format!("stepdown/r{round}/w{w}/n{n}");
                let first = Instant::now();
                let mut last = Outcome::TimedOut;
                for attempt in 0..MAX_RETRIES {
                    last = kv.write(&addr, &key, n).await;
                    if last == Outcome::Acked || !last.retryable() || first.elapsed() > RETRY_LIMIT
                    {
                        break;
                    }
                    *retries.lock().expect("retries").entry(last).or_insert(0) += 1;
                    tokio::time::sleep(backoff(n + u64::from(attempt))).await;
                }
                if last == Outcome::Acked {
                    acks.lock().expect("acks").push((Instant::now(), (key, n)));
                } else {
                    failed
                        .lock()
                        .expect("failed")
                        .push(format!("{key}: {}", last.label()));
                }
            }
        }));
    }
    let count = || acks.lock().expect("acks").len();
    let began = Instant::now();
    assert!(
        wait_for(PATIENCE, Duration::from_millis(10), || count() >= 40).await,
        "step-down round {round}: the writers never got going"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let kv = Kv::new(token, Duration::from_secs(10));
    let called = Instant::now();
    let status = step_down(&c.addr(leader), token).await;
    let call = called.elapsed();
    let mut to_new_leader = None;
    if status == 204 || status == 200 {
        while called.elapsed() < PATIENCE && to_new_leader.is_none() {
            for i in (0..3).filter(|i| *i != leader) {
                if kv.is_self_leader(&c.addr(i)).await {
                    to_new_leader = Some(called.elapsed());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Let the writers run on under the new leader.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("step-down writer");
    }
    let failed = std::mem::take(&mut *failed.lock().expect("failed"));
    assert!(
        failed.is_empty(),
        "step-down round {round}: writes failed after retrying for {RETRY_LIMIT:?}: {failed:?}"
    );
    let mut acks = std::mem::take(&mut *acks.lock().expect("acks"));
    acks.sort_by_key(|(at, _)| *at);
    let writes = acks.len();
    let times: Vec<Instant> = acks.iter().map(|(at, _)| *at).collect();
    acked.extend(acks.into_iter().map(|(_, a)| a));
    if !(status == 204 || status == 200) {
        return StepDown::Unavailable(status);
    }
    let gap = |from: Instant, to: Instant| {
        times
            .windows(2)
            .filter(|w| w[1] >= from && w[0] <= to)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    };
    let window = called
        .checked_sub(Duration::from_millis(100))
        .unwrap_or(called);
    StepDown::Done(StepRound {
        max_gap: gap(window, Instant::now()),
        baseline_gap: gap(began, window),
        to_new_leader,
        call,
        retries: std::mem::take(&mut *retries.lock().expect("retries")),
        writes,
    })
}

/// `PUT sys/step-down` on `addr` with the root token; the status (0: no answer).
async fn step_down(addr: &str, token: &str) -> u16 {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    client
        .put(format!("{addr}/v1/sys/step-down"))
        .header("X-Vault-Token", token)
        .json(&json!({}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}
