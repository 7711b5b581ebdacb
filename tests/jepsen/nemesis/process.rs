//! Jepsen harness (test code): process nemeses (SIGKILL and restart, SIGSTOP/SIGCONT,
//! `sys/step-down` storms), and the probe that reads from a cut-off old leader. Signals and
//! HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Env, find_leader, quick, restart};
use crate::jepsen::history::{History, Op};
use crate::jepsen::ops::{self, Call, Outcome};
use crate::jepsen::rng::Rng;
use crate::jepsen::workload;

/// SIGKILL `node`, restart it after `hold`.
pub async fn kill(env: &mut Env<'_>, node: usize) {
    env.fault("kill", node, String::new());
    env.c.kill(node);
    tokio::time::sleep(env.s.schedule.hold).await;
    restart(env.c, node);
}

/// SIGSTOP `node` (the leader) for `hold`, probing it meanwhile ([`probe_cut_off`]).
pub async fn pause(env: &mut Env<'_>, node: usize) {
    env.fault("pause", node, String::new());
    env.c.signal(node, "STOP");
    let resume = Instant::now() + env.s.schedule.hold;
    let probe = probe_cut_off(env, node, resume);
    tokio::join!(probe, tokio::time::sleep_until(resume.into()));
    env.c.signal(node, "CONT");
}

/// Three `sys/step-down`s on whoever leads, `hold / 3` apart.
pub async fn step_down_storm(env: &mut Env<'_>) {
    for _ in 0..3 {
        let Some(leader) = find_leader(env.c, env.token, Duration::from_secs(5)).await else {
            continue;
        };
        env.fault("step-down", leader, String::new());
        let r = quick()
            .put(format!("{}/v1/sys/step-down", env.c.addr(leader)))
            .header("X-Vault-Token", env.token)
            .json(&json!({}))
            .send()
            .await;
        if let Ok(r) = r
            && r.status().as_u16() != 204
        {
            eprintln!("nemesis: step-down on node {leader}: {}", r.status());
        }
        tokio::time::sleep(env.s.schedule.hold / 3).await;
    }
}

/// While `old` (the leader when the fault began) is cut off until `resume` (paused, or on
/// the minority side of a partition): writes each key through the other nodes until one is
/// acknowledged (a new leader serves), then sends a read of it to `old`, with a timeout past
/// `resume`. Those reads begin after the writes completed, so an old leader that answers from
/// its own state is caught by the checker. Recorded in the history like any operation; the
/// reads complete on their own, after `resume` for a paused node.
pub async fn probe_cut_off(env: &mut Env<'_>, old: usize, resume: Instant) {
    let w = &env.s.workload;
    let n = env.c.nodes.len();
    let addrs: Vec<String> = (0..n).map(|i| env.c.addr(i)).collect();
    let keys: Vec<String> = (0..w.keys)
        .map(|i| workload::key_name(w, env.history.elapsed(), i))
        .collect();
    probe(
        env.history,
        &addrs,
        env.token,
        old,
        &keys,
        &mut env.rng,
        resume,
    )
    .await;
}

async fn probe(
    history: &Arc<History>,
    addrs: &[String],
    token: &str,
    old: usize,
    keys: &[String],
    rng: &mut Rng,
    resume: Instant,
) {
    static PROBE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let next = || 800_000_000 + PROBE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let others: Vec<usize> = (0..addrs.len()).filter(|i| *i != old).collect();
    let quick = ops::http_client(Duration::from_millis(700));
    for key in keys {
        let mut written = false;
        while !written && Instant::now() + Duration::from_millis(800) < resume {
            let node = others[rng.below(others.len() as u64) as usize];
            let process = next();
            let call = Call {
                value: i64::try_from(process).unwrap_or(0),
                ..Call::new(node, Op::Write, key)
            };
            let outcome = ops::perform(history, &quick, addrs, token, process, call).await;
            written = matches!(outcome, Outcome::Ok { .. });
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
        tokio::spawn(async move {
            let http = ops::http_client(patience);
            ops::perform(
                &history,
                &http,
                &addrs,
                &token,
                process,
                Call::read(old, &key),
            )
            .await;
        });
    }
}
