//! HA benchmark (real processes on loopback): a three-node `storage "raft"` cluster of release
//! `sealkeep server` processes, auto-unsealed through moto's KMS (the harness of
//! `tests/server_raft_cluster.rs`), measured from the client side in one run:
//!
//! 1. idle RSS of each raft node, 3 s after the cluster formed (three voters);
//! 2. KV v2 throughput and p50/p99 with 1 KiB values and 1 and 16 keep-alive clients, through
//!    the raft leader and through one `storage "file"` node (shamir seal), each raft phase
//!    right after the file phase it is compared with;
//! 3. planned `sys/step-down` under four writers (one per node, following redirects, retrying
//!    on 503/307/connection errors): the longest gap between acknowledged writes;
//! 4. SIGKILL of the leader while a client writes through a survivor (retrying every
//!    20-50 ms): kill → first acknowledged write, with when raft elected the new leader and
//!    when it became the active node (from its log); the killed node then restarts and the
//!    round ends once three voters are unsealed.
//!
//! Every acknowledged write of 3 and 4 is read back through the leader at the end (asserted);
//! no step-down write may fail after retrying for 10 s (asserted). Figures are printed next to
//! the targets and the Vault 1.21.1 anchors of issue 12; nothing about time is asserted.
//!
//! `cargo bench --bench ha [-- --quick]` (`--quick`: 3 kills, 2 step-downs, 1.5 s phases, for
//! CI; full: 20 kills, 10 step-downs, 6 s phases; `--throughput-only`: idle RSS and the
//! throughput phases alone, for profiling). Needs moto (`SEALKEEP_MOTO_SERVER` or the
//! CI venv, or `SEALKEEP_TEST_MOTO_URL`). `SEALKEEP_BENCH_HA_LOGS=DIR` keeps the nodes' logs of
//! every kill round (with openraft's info lines) in DIR.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "ha/failover.rs"]
mod failover;
#[path = "ha/load.rs"]
mod load;
#[path = "ha/report.rs"]
mod report;
#[path = "ha/throughput.rs"]
mod throughput;
#[path = "kv/workers.rs"]
mod workers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Moto, create_kms_key};
use failover::{StepDown, kill_round, step_down_round};
use load::Kv;
use throughput::{Figures, MANY, Target, file_node};

/// Cluster formation and recovery limits (autopilot promotes a learner after 10 s stable).
const FORM: Duration = Duration::from_secs(90);
const IDLE: Duration = Duration::from_secs(3);

/// VmRSS of `pid` in KiB, from `/proc/PID/status`.
fn vm_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // Any other argument (cargo passes `--bench`) is ignored.
    let quick = std::env::args().any(|a| a == "--quick");
    // Only the idle RSS and the throughput phases (for profiling the write and read paths).
    let throughput_only = std::env::args().any(|a| a == "--throughput-only");
    let (kills, steps, budget) = match (quick, throughput_only) {
        (_, true) => (0, 0, Duration::from_secs(if quick { 2 } else { 6 })),
        (true, false) => (3, 2, Duration::from_millis(1500)),
        (false, false) => (20, 10, Duration::from_secs(6)),
    };
    println!(
        "HA benchmark ({} mode: {kills} leader kills, {steps} step-downs, {:.1} s per throughput phase, {} cores)",
        if quick { "quick" } else { "full" },
        budget.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    let run = Instant::now();
    let moto = Moto::start();
    create_kms_key(&moto.url, "sealkeep-bench-ha").await;
    let mut c = Cluster::new(3, &moto.url, "sealkeep-bench-ha");
    for node in &mut c.nodes {
        // openraft's info lines say when a (pre-)vote is refused under the leader lease.
        node.extra_env
            .push(("RUST_LOG".into(), "sealkeep=debug,openraft=info".into()));
    }
    c.start_all();
    let token = c.init(0).await;
    c.wait_unsealed(FORM).await;
    c.wait_voters(&token, 3, FORM).await;
    println!(
        "cluster formed (3 voters, all unsealed) {:.1} s after start",
        run.elapsed().as_secs_f64()
    );

    tokio::time::sleep(IDLE).await;
    let rss: Vec<u64> = (0..3).map(|i| vm_rss_kib(c.pid(i))).collect();

    // Throughput: each raft phase right after the file phase it is compared with.
    let file_dir = tempfile::tempdir().expect("tempdir");
    let (file_proc, file_token) = file_node(file_dir.path()).await;
    let file_t =
        Arc::new(Target::new(&file_proc.addr, &file_token, vec![file_proc.child.id()]).await);
    let leader = c.wait_leader(&token, FORM).await;
    let pids: Vec<u32> = (0..3).map(|i| c.pid(i).unsigned_abs()).collect();
    let raft_t = Arc::new(Target::new(&c.addr(leader), &token, pids).await);
    let mut file: Vec<Figures> = Vec::new();
    let mut raft: Vec<Figures> = Vec::new();
    for (workers, write) in [(1, true), (MANY, true), (1, false), (MANY, false)] {
        for (t, out) in [(&file_t, &mut file), (&raft_t, &mut raft)] {
            out.push(if write {
                t.writes(workers, budget).await
            } else {
                t.reads(workers, budget).await
            });
        }
    }
    drop((file_t, raft_t, file_proc));
    println!(
        "throughput phases done at {:.1} s",
        run.elapsed().as_secs_f64()
    );

    let mut acked = Vec::new();
    let mut step_rounds = Vec::new();
    let mut step_missing = None;
    for r in 0..steps {
        match step_down_round(&c, &token, r, FORM, &mut acked).await {
            StepDown::Done(s) => {
                report::step_progress(r, steps, &s);
                step_rounds.push(s);
            }
            StepDown::Unavailable(status) => {
                step_missing = Some(status);
                break;
            }
        }
    }

    let mut kill_rounds = Vec::new();
    for r in 0..kills {
        let k = kill_round(&mut c, &token, r, FORM, &mut acked).await;
        report::kill_progress(r, kills, &k);
        kill_rounds.push(k);
    }

    // Every acknowledged write reads back through the (current) leader.
    let leader = c.wait_leader(&token, FORM).await;
    let kv = Kv::new(&token, Duration::from_secs(10));
    for (key, n) in &acked {
        assert_eq!(
            kv.read_n(&c.addr(leader), key).await,
            Ok(*n),
            "acknowledged write {key} must read back through the leader (node {leader})"
        );
    }
    println!(
        "read back all {} acknowledged step-down and failover writes through the leader; run took {:.1} s",
        acked.len(),
        run.elapsed().as_secs_f64()
    );
    println!();

    report::failover(&kill_rounds);
    report::step_down(&step_rounds, step_missing);
    report::throughput(&file, &raft);
    report::rss(&rss);
    drop(c);
    drop(moto);
}
