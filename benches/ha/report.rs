//! HA benchmark, printing (pure formatting, stdout only): per-round progress lines, then one
//! table per measurement with its target and the Vault 1.21.1 anchors of issue 12 as ratios.

use std::time::Duration;

use super::failover::{KillRound, StepRound};
use super::throughput::{Figures, MANY};

/// Nearest-rank percentile of `xs` (sorted here): with 20 samples p99 is the maximum.
fn pct(xs: &[Duration], p: usize) -> Duration {
    let mut v = xs.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = (v.len() * p).div_ceil(100).max(1);
    v[rank - 1]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), secs)
}

/// How many times shorter `ours` is than Vault's `anchor_s` seconds.
fn faster(ours: Duration, anchor_s: f64) -> String {
    format!(
        "{:.2}x faster than Vault's {anchor_s:.2} s",
        anchor_s / ours.as_secs_f64().max(1e-9)
    )
}

pub fn kill_progress(r: usize, of: usize, k: &KillRound) {
    println!(
        "  kill {}/{of}: node {} SIGKILLed; elected {} ({}; {} lease refusals), active {} ({} reload retries), first ack {}; failed attempts: {}",
        r + 1,
        k.killed,
        opt_secs(k.to_elected.map(|e| e.1)),
        k.to_elected
            .map_or_else(|| "no leader seen".into(), |e| format!("node {}", e.0)),
        k.lease_refusals,
        opt_secs(k.to_active),
        k.reload_retries,
        secs(k.to_ack),
        outcomes(&k.failures),
    );
}

fn outcomes(m: &std::collections::BTreeMap<super::load::Outcome, u32>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(o, n)| format!("{n} {}", o.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn step_progress(r: usize, of: usize, s: &StepRound) {
    println!(
        "  step-down {}/{of}: call {}, new leader after {}, longest write gap {} (before the call: {}), {} writes; retried attempts: {}",
        r + 1,
        secs(s.call),
        opt_secs(s.to_new_leader),
        secs(s.max_gap),
        secs(s.baseline_gap),
        s.writes,
        outcomes(&s.retries),
    );
}

pub fn failover(rounds: &[KillRound]) {
    println!(
        "Failover: SIGKILL of the leader -> first acknowledged write through a survivor ({} kills)",
        rounds.len()
    );
    if rounds.is_empty() {
        return;
    }
    let ack: Vec<Duration> = rounds.iter().map(|k| k.to_ack).collect();
    let elected: Vec<Duration> = rounds
        .iter()
        .filter_map(|k| k.to_elected.map(|e| e.1))
        .collect();
    let active: Vec<Duration> = rounds.iter().filter_map(|k| k.to_active).collect();
    let row = |label: &str, xs: &[Duration]| {
        println!(
            "  {label:<34} p50 {}   p99 {}   max {}   ({} samples)",
            secs(pct(xs, 50)),
            secs(pct(xs, 99)),
            secs(pct(xs, 100)),
            xs.len()
        );
    };
    row("kill -> new leader elected", &elected);
    row("kill -> active (its log)", &active);
    row("kill -> first acknowledged write", &ack);
    let (p50, p99) = (pct(&ack, 50), pct(&ack, 99));
    println!("  targets: p50 <= 1.500 s, p99 <= 2.500 s");
    println!(
        "  vs Vault performance_multiplier=1 (p50 2.39 s, p99 2.89 s): p50 {}, p99 {}",
        faster(p50, 2.39),
        faster(p99, 2.89)
    );
    println!(
        "  vs Vault default timings (p50 13.9 s, p99 19.1 s):          p50 {}, p99 {}",
        faster(p50, 13.9),
        faster(p99, 19.1)
    );
    println!();
}

pub fn step_down(rounds: &[StepRound], missing: Option<u16>) {
    println!("Planned step-down: longest gap between acknowledged writes (4 writers)");
    if let Some(status) = missing {
        if status == 404 || status == 405 {
            println!("  skipped: sys/step-down not available (it answered {status})");
        } else {
            println!("  skipped: sys/step-down answered {status} (expected 204)");
        }
        println!();
        return;
    }
    if rounds.is_empty() {
        return;
    }
    let gaps: Vec<Duration> = rounds.iter().map(|s| s.max_gap).collect();
    let base: Vec<Duration> = rounds.iter().map(|s| s.baseline_gap).collect();
    let leader: Vec<Duration> = rounds.iter().filter_map(|s| s.to_new_leader).collect();
    println!(
        "  longest gap around a step-down: p99 {}   max {}   ({} step-downs)",
        secs(pct(&gaps, 99)),
        secs(pct(&gaps, 100)),
        gaps.len()
    );
    println!(
        "  longest gap with no step-down:  max {} (this machine's noise)",
        secs(pct(&base, 100))
    );
    println!(
        "  call -> new leader:             p50 {}   max {}",
        secs(pct(&leader, 50)),
        secs(pct(&leader, 100))
    );
    println!(
        "  target: p99 <= 0.200 s; vs Vault's 0.55 s: {}",
        faster(pct(&gaps, 99), 0.55)
    );
    println!();
}

pub fn throughput(file: &[Figures], raft: &[Figures]) {
    let labels = [
        "write, 1 client".to_owned(),
        format!("write, {MANY} clients"),
        "read, 1 client".to_owned(),
        format!("read, {MANY} clients"),
    ];
    println!("KV v2 throughput, 1 KiB values, keep-alive clients (server CPU: all nodes' sum)");
    println!("  one storage \"file\" node (shamir):");
    for (f, l) in file.iter().zip(&labels) {
        f.print(l);
    }
    println!("  three raft nodes, through the leader:");
    for (f, l) in raft.iter().zip(&labels) {
        f.print(l);
    }
    if file.len() < 4 || raft.len() < 4 {
        return;
    }
    println!("  raft / file:");
    let targets = ["", "  (target: >= 50%)", "", "  (target: >= 70%)"];
    for ((l, (f, r)), t) in labels.iter().zip(file.iter().zip(raft)).zip(targets) {
        println!("    {l:<28} {:>6.1}%{t}", r.rate() / f.rate() * 100.0);
    }
    println!("  raft vs Vault 1.21.1 raft (target: >= 4x):");
    for (i, anchor) in [(1, 546.0), (0, 140.0), (3, 5300.0)] {
        println!(
            "    {:<28} {:>8.0} ops/s vs {anchor:>5.0}: {:.1}x",
            labels[i],
            raft[i].rate(),
            raft[i].rate() / anchor
        );
    }
    println!(
        "    {:<28} p50 {:.3} ms vs 6.4 ms",
        labels[0],
        raft[0].percentile(50).as_secs_f64() * 1e3
    );
    println!();
}

pub fn rss(kib: &[u64]) {
    println!("Idle RSS of each raft node (VmRSS, 3 s after the cluster formed):");
    for (i, k) in kib.iter().enumerate() {
        println!(
            "  node-{i}: {:.1} MiB   (target < 30 MiB; Vault ~160 MiB: {:.1}x less)",
            *k as f64 / 1024.0,
            160.0 * 1024.0 / (*k).max(1) as f64
        );
    }
}
