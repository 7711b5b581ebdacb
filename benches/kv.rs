//! KV v2 throughput and latency over HTTP against the raw storage engine, in one run.
//!
//! Starts the real `sealkeep server` (release build, `storage "file"` in a tempdir, shamir seal,
//! a free loopback port), initializes and unseals it over HTTP, then drives it with keep-alive
//! clients (one `reqwest::Client` per worker; worker `i` uses the keys `bench/c<i>/k<j>`) with
//! 1 KiB values: writes, then reads, with 1 and with 16 concurrent clients. In the same run it
//! measures the storage engine alone: `FileBackend` through the `Physical` trait (no HTTP, no
//! barrier; every put is a durable commit, as the server's writes are) with 1 and 16 writers
//! and readers, and, as a fixed reference, redb itself with one `Durability::Immediate` commit
//! per put (what any backend pays without batching). Each raw phase runs right before the HTTP
//! phase it is compared with, so both see the same disk. For HTTP phases the server's own CPU
//! time per operation is shown too (from `/proc`), since the clients share the machine. Prints
//! figures and ratios next to the targets of issue 6; asserts nothing about time.
//!
//! `cargo bench --bench kv [-- --quick] [-- --no-cache]` (`--quick`: short phases, for CI;
//! `--no-cache`: the server runs with `disable_cache = true`, to measure the read cache).

#[path = "kv/http.rs"]
mod http;
#[path = "kv/raw.rs"]
mod raw;
#[path = "kv/workers.rs"]
mod workers;

use std::future::Future;
use std::time::{Duration, Instant};

use http::HttpBench;
use raw::{RawBench, redb_reference};
use workers::{VALUE_LEN, value_text};

const MANY: usize = 16;

/// What one timed phase measured.
struct Figures {
    ops: u64,
    secs: f64,
    /// Operations completed by each worker (reads cycle over the keys each worker wrote).
    per_worker: Vec<u64>,
    latencies: Vec<Duration>,
    /// CPU time the server process used during the phase (HTTP phases only).
    server_cpu: Option<Duration>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn percentile(&self, p: usize) -> Duration {
        let i = (self.latencies.len() * p / 100).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).copied().unwrap_or_default()
    }

    fn print(&self, label: &str) {
        let cpu = self.server_cpu.map_or(String::new(), |cpu| {
            format!(
                "   server CPU {:>5.0} us/op",
                cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64
            )
        });
        println!(
            "  {label:<34} {:>8} ops {:>10.0} ops/s   p50 {:>8.3} ms   p99 {:>8.3} ms{cpu}",
            self.ops,
            self.rate(),
            self.percentile(50).as_secs_f64() * 1e3,
            self.percentile(99).as_secs_f64() * 1e3,
        );
    }
}

/// Runs `workers` concurrent loops of `op(worker, j)` for `budget` (each worker's `j` counts
/// from 0) and collects every operation's latency.
async fn phase<F, Fut>(workers: usize, budget: Duration, op: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let deadline = start + budget;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut j = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                op(w, j).await;
                lat.push(t0.elapsed());
                j += 1;
            }
            lat
        }));
    }
    let mut per_worker = Vec::with_capacity(workers);
    let mut latencies = Vec::new();
    for t in tasks {
        let lat = t.await.expect("bench worker panicked");
        per_worker.push(lat.len() as u64);
        latencies.extend(lat);
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Figures {
        ops: latencies.len() as u64,
        secs,
        per_worker,
        latencies,
        server_cpu: None,
    }
}

/// A 1 KiB printable value (JSON-safe, so the stored secret is exactly 1 KiB of data).
fn ratio(label: &str, num: &Figures, den: &Figures, target: &str) {
    println!(
        "  {label:<44} {:>7.1}%{target}",
        num.rate() / den.rate() * 100.0
    );
}

#[tokio::main]
async fn main() {
    // Any other argument (cargo passes `--bench`) is ignored.
    let quick = std::env::args().any(|a| a == "--quick");
    let cache = !std::env::args().any(|a| a == "--no-cache");
    let budget = if quick {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(6)
    };
    println!(
        "KV v2 benchmark ({} mode: {:.1} s per phase, 1 KiB values, {} cores, read cache {})",
        if quick { "quick" } else { "full" },
        budget.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, usize::from),
        if cache { "on" } else { "off" },
    );

    // Each raw phase runs right before the HTTP phase it is compared with, so both see the
    // same disk (fsync latency drifts when other work shares the machine).
    let mut http = HttpBench::start(cache).await;
    let mut raw = RawBench::open();
    let (put1, batch1) = raw.puts(1, budget).await;
    let write1 = http.writes(1, budget).await;
    let (put16, batch16) = raw.puts(MANY, budget).await;
    let write16 = http.writes(MANY, budget).await;
    let get1 = raw.gets(1, budget).await;
    let read1 = http.reads(1, budget).await;
    let get16 = raw.gets(MANY, budget).await;
    let read16 = http.reads(MANY, budget).await;
    drop(http);
    let reference = redb_reference(budget);

    println!("HTTP, KV v2 on secret/ (keep-alive, storage \"file\", shamir seal, root token):");
    write1.print("write, 1 client");
    write16.print(&format!("write, {MANY} clients"));
    read1.print("read, 1 client");
    read16.print(&format!("read, {MANY} clients"));
    println!("raw FileBackend via Physical (no HTTP, no barrier; each put durable):");
    put1.print("put, 1 writer");
    put16.print(&format!("put, {MANY} writers"));
    println!(
        "  {:<34} {batch1:.1} with 1 writer, {batch16:.1} with {MANY} writers",
        "mean puts per durable commit"
    );
    get1.print("get, 1 reader");
    get16.print(&format!("get, {MANY} readers"));
    println!("reference: redb, one Immediate commit per put, 1 thread:");
    reference.print("put, 1 thread");

    println!("ratios (HTTP / raw, same concurrency):");
    ratio("write, 1 client / raw put, 1 writer", &write1, &put1, "");
    ratio(
        &format!("write, {MANY} clients / raw put, {MANY} writers"),
        &write16,
        &put16,
        "  (target: at least 50%)",
    );
    ratio("read, 1 client / raw get, 1 reader", &read1, &get1, "");
    ratio(
        &format!("read, {MANY} clients / raw get, {MANY} readers"),
        &read16,
        &get16,
        "",
    );
    ratio(
        &format!("write, {MANY} clients / redb one commit per put"),
        &write16,
        &reference,
        "",
    );
    println!(
        "  read, {MANY} clients: {:.0} ops/s (target: at least 20000 ops/s)",
        read16.rate()
    );
    if let Some(cpu) = read16.server_cpu.filter(|c| !c.is_zero()) {
        println!(
            "  read, {MANY} clients, server CPU only: {:.0} ops/s per fully used core (the bench's clients share these cores)",
            read16.ops as f64 / cpu.as_secs_f64()
        );
    }
}
