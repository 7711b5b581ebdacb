//! The operator on testenv (real control plane, process kubelet, moto): how fast a burst of
//! awskms SecretServers becomes Ready, how much of that is the operator's own share (Ready
//! observed minus the pod first answering `sealed=false`), and what 50 Ready servers cost in
//! steady state (API requests, reconciles, RSS, CPU). The operator runs as a host process with
//! the chart's RBAC (tests/common/operator.rs). Prints figures; asserts nothing.
//! `cargo bench --bench operator [-- --quick] [--window-secs N] [--limit-secs N]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::k8s::*;
use common::operator::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use sealkeep::operator::build::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use sealkeep::operator::crd::{SecretServer, SecretServerStatus};
use sealkeep::operator::observe::pod_addr;

const NS: &str = "bench-op";
const POLL: Duration = Duration::from_millis(50);

/// What the bench saw of one SecretServer, as instants of first observation.
#[derive(Default)]
struct Track {
    ip: Option<String>,
    ip_at: Option<Instant>,
    unsealed_at: Option<Instant>,
    /// The pod's Ready condition (the kubelet's readiness probe) first True.
    pod_ready_at: Option<Instant>,
    ready_at: Option<Instant>,
    status: Option<SecretServerStatus>,
}

type Tracks = Arc<Mutex<HashMap<String, Track>>>;

struct Args {
    first: usize,
    total: usize,
    window: u64,
    limit: Duration,
}

fn parse_args() -> Args {
    // cargo bench passes `--bench`; anything unknown is ignored.
    let a: Vec<String> = std::env::args().skip(1).collect();
    let quick = a.iter().any(|x| x == "--quick");
    let window = a
        .iter()
        .position(|x| x == "--window-secs")
        .and_then(|i| a.get(i + 1)?.parse().ok())
        .unwrap_or(if quick { 20 } else { 60 });
    let (first, total) = if quick { (5, 10) } else { (20, 50) };
    Args {
        first,
        total,
        window,
        // Bound of each wait for a burst to be Ready.
        limit: Duration::from_secs(
            a.iter()
                .position(|x| x == "--limit-secs")
                .and_then(|i| a.get(i + 1)?.parse().ok())
                .unwrap_or(300),
        ),
    }
}

fn is_ready(s: &SecretServerStatus) -> bool {
    s.conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn lock(t: &Tracks) -> std::sync::MutexGuard<'_, HashMap<String, Track>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records when each SecretServer's status first showed Ready=True.
async fn watch_servers(
    api: Api<SecretServer>,
    tracks: Tracks,
    synced: tokio::sync::watch::Sender<bool>,
) {
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let now = Instant::now();
        match ev {
            Ok(watcher::Event::Apply(ss) | watcher::Event::InitApply(ss)) => {
                let Some(name) = ss.metadata.name.clone() else {
                    continue;
                };
                let mut m = lock(&tracks);
                let t = m.entry(name).or_default();
                if t.ready_at.is_none() && ss.status.as_ref().is_some_and(is_ready) {
                    t.ready_at = Some(now);
                }
                t.status = ss.status;
            }
            Ok(watcher::Event::InitDone) => {
                let _ = synced.send(true);
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("SecretServer watch: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Keeps each server pod's IP (pod `<name>-0`, label app.kubernetes.io/instance=<name>).
async fn watch_pods(api: Api<Pod>, tracks: Tracks, synced: tokio::sync::watch::Sender<bool>) {
    let cfg = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    let mut stream = watcher(api, cfg).boxed();
    while let Some(ev) = stream.next().await {
        let now = Instant::now();
        match ev {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                let name = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_INSTANCE));
                let status = pod.status.as_ref();
                let ip = status.and_then(|s| s.pod_ip.clone());
                let ready = status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if let (Some(name), Some(ip)) = (name, ip) {
                    let mut m = lock(&tracks);
                    let t = m.entry(name.clone()).or_default();
                    t.ip_at.get_or_insert(now);
                    t.ip = Some(ip);
                    if ready {
                        t.pod_ready_at.get_or_insert(now);
                    }
                }
            }
            Ok(watcher::Event::InitDone) => {
                let _ = synced.send(true);
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("Pod watch: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Asks the pod's server for seal-status every 50 ms until it first reports sealed=false.
async fn poll_unseal(name: String, tracks: Tracks, http: reqwest::Client, deadline: Instant) {
    while Instant::now() < deadline {
        let ip = {
            let m = lock(&tracks);
            let t = m.get(&name);
            if t.is_some_and(|t| t.unsealed_at.is_some()) {
                return;
            }
            t.and_then(|t| t.ip.clone())
        };
        if let Some(ip) = ip {
            let url = format!("{}/v1/sys/seal-status", pod_addr("http", &ip));
            if let Ok(r) = http.get(url).send().await {
                let now = Instant::now();
                if let Ok(v) = r.json::<serde_json::Value>().await
                    && v["sealed"] == false
                {
                    lock(&tracks).entry(name).or_default().unsealed_at = Some(now);
                    return;
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn line(label: &str, mut v: Vec<f64>, note: &str) {
    v.sort_by(f64::total_cmp);
    println!(
        "  {label:<22} p50 {:>6.2} s  p90 {:>6.2} s  max {:>6.2} s  (n={}){note}",
        pct(&v, 50.0),
        pct(&v, 90.0),
        pct(&v, 100.0),
        v.len()
    );
}

/// Applies `names` in one `kubectl apply`, waits until all are Ready, prints the figures.
fn burst(
    rt: &tokio::runtime::Runtime,
    tracks: &Tracks,
    http: &reqwest::Client,
    names: &[String],
    limit: Duration,
) -> Result<(), String> {
    let yaml: Vec<String> = names
        .iter()
        .map(|n| awskms_server(NS, n, &kms_alias(), &moto_url()))
        .collect();
    let deadline = Instant::now() + limit;
    for n in names {
        rt.spawn(poll_unseal(
            n.clone(),
            tracks.clone(),
            http.clone(),
            deadline,
        ));
    }
    let t0 = Instant::now();
    let out = apply_output(&yaml.join("---\n"));
    if !out.status.success() {
        return Err(format!(
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let applied = t0.elapsed();
    loop {
        let ready = {
            let m = lock(tracks);
            names
                .iter()
                .filter(|n| m.get(*n).is_some_and(|t| t.ready_at.is_some()))
                .count()
        };
        if ready == names.len() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {ready}/{} Ready within {limit:?}",
                names.len()
            ));
        }
        std::thread::sleep(POLL);
    }
    std::thread::sleep(Duration::from_millis(200)); // the last pollers record their instant
    let m = lock(tracks);
    let secs = |i: Option<Instant>, from: Instant| i.map(|i| i.duration_since(from).as_secs_f64());
    // Signed seconds from `a` to `b`: the 50 ms poll can see an unseal after the status did.
    let diff = |b: Instant, a: Instant| {
        if b >= a {
            b.duration_since(a).as_secs_f64()
        } else {
            -a.duration_since(b).as_secs_f64()
        }
    };
    let (mut ready, mut ip, mut unsealed, mut pod_ready) = (vec![], vec![], vec![], vec![]);
    let (mut share, mut reaction) = (vec![], vec![]);
    for n in names {
        let Some(t) = m.get(n) else { continue };
        ready.extend(secs(t.ready_at, t0));
        ip.extend(secs(t.ip_at, t0));
        unsealed.extend(secs(t.unsealed_at, t0));
        pod_ready.extend(secs(t.pod_ready_at, t0));
        if let (Some(r), Some(u)) = (t.ready_at, t.unsealed_at) {
            share.push(diff(r, u));
            if let Some(p) = t.pod_ready_at {
                reaction.push(diff(r, u.max(p)));
            }
        }
    }
    let all = ready.iter().copied().fold(0.0, f64::max);
    println!(
        "  all {} Ready after      {all:>6.2} s  (kubectl apply took {:.2} s)",
        names.len(),
        applied.as_secs_f64()
    );
    line("time to Ready", ready, "");
    line("pod IP assigned", ip, "  (kubelet started the pod)");
    line(
        "pod first unsealed",
        unsealed,
        "  (bench polls seal-status every 50 ms; the operator auto-inits)",
    );
    line(
        "pod Ready condition",
        pod_ready,
        "  (kubelet readiness probe, period 2 s)",
    );
    line(
        "operator share",
        share,
        "  (Ready - pod unsealed; target p50 under 2 s)",
    );
    line(
        "operator reaction",
        reaction,
        "  (Ready - later of pod unsealed and pod Ready)",
    );
    Ok(())
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn proc_status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn steady(op: &Operator, servers: usize, window: u64) -> Result<(), String> {
    let settle = Duration::from_secs(10);
    std::thread::sleep(settle);
    let read = || {
        op.get("/metrics")
            .filter(|(c, _)| *c == 200)
            .map(|(_, b)| b)
    };
    let pid = op.pid();
    let (m0, c0, t0) = (read().ok_or("no /metrics")?, cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(window));
    let (m1, c1, el) = (
        read().ok_or("no /metrics")?,
        cpu_ticks(pid),
        t0.elapsed().as_secs_f64(),
    );
    let per_min = |p: &str| (metric(&m1, p) - metric(&m0, p)) * 60.0 / el;
    const API: &str = "sealkeep_operator_api_requests_total{";
    const WRITES: &str = "sealkeep_operator_api_requests_total{kind=\"write\"}";
    const RECONCILES: &str = "sealkeep_operator_reconciles_total{";
    let cpu = match (c0, c1) {
        (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / clk_tck() / el * 100.0,
        _ => f64::NAN,
    };
    println!(
        "steady state with {servers} Ready SecretServers ({el:.0} s window, after {} s settling):",
        settle.as_secs()
    );
    println!(
        "  API writes             {:>8.1} /min  (target 0)",
        per_min(WRITES)
    );
    println!(
        "  API requests           {:>8.1} /min  (reads + writes)",
        per_min(API)
    );
    println!(
        "  reconciles             {:>8.1} /min  (errors: {:.0} in the window)",
        per_min(RECONCILES),
        metric(&m1, "sealkeep_operator_reconcile_errors_total{")
            - metric(&m0, "sealkeep_operator_reconcile_errors_total{")
    );
    println!(
        "  operator RSS           {:>8.1} MiB   (target under 64 MiB; peak {:.1} MiB)",
        proc_status_kib(pid, "VmRSS:") / 1024.0,
        proc_status_kib(pid, "VmHWM:") / 1024.0
    );
    println!("  operator CPU           {cpu:>8.2} %     of one core");
    println!(
        "  server pods unsealed   {:>8.0}        (operator gauge)",
        metric(&m1, "sealkeep_operator_server_pods{state=\"unsealed\"}")
    );
    Ok(())
}

/// The operator logs with colours; drop the escape sequences for a readable tail.
fn strip_ansi(l: &str) -> String {
    let mut out = String::with_capacity(l.len());
    let mut chars = l.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn print_statuses(tracks: &Tracks) {
    let m = lock(tracks);
    let mut names: Vec<&String> = m.keys().collect();
    names.sort();
    eprintln!("--- last SecretServer statuses (not Ready) ---");
    for n in names {
        let t = &m[n];
        if t.ready_at.is_some() {
            continue;
        }
        let s = t.status.as_ref();
        let cond = |ty: &str| {
            s.and_then(|s| s.conditions.iter().find(|c| c.type_ == ty))
                .map_or("-".to_owned(), |c| {
                    format!("{} {}: {}", c.status, c.reason, c.message)
                })
        };
        let pods: Vec<String> = s
            .map(|s| &s.pods[..])
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let err = p.last_unseal_error.as_deref().unwrap_or("-");
                format!("{} sealed={:?} error={err}", p.name, p.sealed)
            })
            .collect();
        eprintln!(
            "{n}: ready {} | Ready={} | SealHealthy={} | pod ip {:?}, bench saw unsealed: {} | pods {pods:?}",
            s.and_then(|s| s.ready.as_deref()).unwrap_or("-"),
            cond("Ready"),
            cond("SealHealthy"),
            t.ip,
            t.unsealed_at.is_some(),
        );
    }
}

fn run(
    rt: &tokio::runtime::Runtime,
    op: &Operator,
    tracks: &Tracks,
    args: &Args,
) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(500))
        .build()
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = (0..args.total).map(|i| format!("s{i:02}")).collect();
    println!(
        "operator on testenv: {} awskms SecretServers applied at once (one kubectl apply):",
        args.first
    );
    burst(rt, tracks, &http, &names[..args.first], args.limit)?;
    println!(
        "then {} more in one apply (total {}):",
        args.total - args.first,
        args.total
    );
    burst(rt, tracks, &http, &names[args.first..], args.limit)?;
    steady(op, args.total, args.window)
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = parse_args();
    let kubeconfig = testenv()
        .get("KUBECONFIG")
        .cloned()
        .expect("testenv exports KUBECONFIG");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    namespace(NS);
    let mut op = Operator::start_with(NS, "bench-op", &[]);
    let client = rt
        .block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            Ok::<_, Box<dyn std::error::Error>>(kube::Client::try_from(cfg)?)
        })
        .expect("admin client from the testenv kubeconfig");
    let tracks = Tracks::default();
    let (ss_tx, mut ss_rx) = tokio::sync::watch::channel(false);
    let (pod_tx, mut pod_rx) = tokio::sync::watch::channel(false);
    rt.spawn(watch_servers(
        Api::namespaced(client.clone(), NS),
        tracks.clone(),
        ss_tx,
    ));
    rt.spawn(watch_pods(
        Api::namespaced(client, NS),
        tracks.clone(),
        pod_tx,
    ));
    let synced = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let _ = ss_rx.wait_for(|s| *s).await;
            let _ = pod_rx.wait_for(|s| *s).await;
        })
        .await
    });
    let result = match synced {
        Ok(()) => run(&rt, &op, &tracks, &args),
        Err(_) => Err("watches did not sync within 30 s".into()),
    };
    if let Err(e) = &result {
        eprintln!("operator benchmark failed: {e}");
        print_statuses(&tracks);
        eprintln!("--- operator log tail ({}) ---", op.log_path().display());
        let log = op.log_text();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        for l in tail.into_iter().rev() {
            eprintln!("{}", strip_ansi(l));
        }
    }
    let _ = kubectl(&["delete", "namespace", NS, "--wait=false"]);
    if !op.terminate() {
        eprintln!("the operator did not exit cleanly on SIGTERM");
    }
    drop(op);
    rt.shutdown_timeout(Duration::from_secs(1));
    if result.is_err() {
        std::process::exit(1);
    }
}
