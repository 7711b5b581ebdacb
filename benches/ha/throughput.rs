//! HA benchmark, KV v2 throughput (process and HTTP I/O on loopback): one `storage "file"`
//! node and the three-node raft cluster's leader, driven alike by keep-alive clients with
//! 1 KiB values; the servers' CPU time comes from `/proc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{ServerProc, ServerSpec, put};
use super::workers::Workers;

pub const MANY: usize = 16;
/// Upper bound of operations per worker and phase (phases are bounded by time first).
const MAX_OPS_PER_WORKER: u64 = 2_000_000;

/// What one timed phase measured.
pub struct Figures {
    pub ops: u64,
    pub secs: f64,
    pub latencies: Vec<Duration>,
    /// CPU time the server process(es) used during the phase.
    pub server_cpu: Duration,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    pub fn percentile(&self, p: usize) -> Duration {
        let i = (self.latencies.len() * p / 100).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).copied().unwrap_or_default()
    }

    pub fn print(&self, label: &str) {
        println!(
            "  {label:<30} {:>8} ops {:>8.0} ops/s   p50 {:>7.3} ms   p99 {:>7.3} ms   server CPU {:>5.0} us/op",
            self.ops,
            self.rate(),
            self.percentile(50).as_secs_f64() * 1e3,
            self.percentile(99).as_secs_f64() * 1e3,
            self.server_cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64,
        );
    }
}

/// User plus system CPU time of process `pid` so far, from `/proc` (USER_HZ = 100 ticks/s).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter().map(|p| cpu_time(*p)).sum()
}

/// Keep-alive clients (one per worker) against one address, and the keys written so far.
pub struct Target {
    workers: Workers,
    pids: Vec<u32>,
    /// Keys written so far by each worker (`k0..k<n>`).
    written: std::sync::Mutex<Vec<u64>>,
}

impl Target {
    /// Clients for `addr`; `pids` are the server processes whose CPU time is counted.
    pub async fn new(addr: &str, token: &str, pids: Vec<u32>) -> Self {
        let t = Self {
            workers: Workers::new(MANY, addr, token),
            pids,
            written: std::sync::Mutex::new(vec![1; MANY]),
        };
        // Warm-up outside the clock: every connection, and key 0 of every worker.
        for w in 0..MANY {
            t.workers.write(w, 0).await;
        }
        t
    }

    /// `workers` clients write new keys for `budget`.
    pub async fn writes(self: &Arc<Self>, workers: usize, budget: Duration) -> Figures {
        self.phase(workers, budget, true).await
    }

    /// `workers` clients read back their own keys in turn for `budget`.
    pub async fn reads(self: &Arc<Self>, workers: usize, budget: Duration) -> Figures {
        self.phase(workers, budget, false).await
    }

    async fn phase(self: &Arc<Self>, workers: usize, budget: Duration, write: bool) -> Figures {
        let base = self.written.lock().expect("written").clone();
        let cpu = cpu_of(&self.pids);
        let start = Instant::now();
        let deadline = start + budget;
        let mut tasks = Vec::with_capacity(workers);
        for w in 0..workers {
            let t = Arc::clone(self);
            let base = base[w];
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for j in 0..MAX_OPS_PER_WORKER {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let t0 = Instant::now();
                    if write {
                        t.workers.write(w, base + j).await;
                    } else {
                        t.workers.read(w, j % base).await;
                    }
                    lat.push(t0.elapsed());
                }
                lat
            }));
        }
        let mut latencies = Vec::new();
        for (w, task) in tasks.into_iter().enumerate() {
            let lat = task.await.expect("bench worker panicked");
            if write {
                self.written.lock().expect("written")[w] += lat.len() as u64;
            }
            latencies.extend(lat);
        }
        let secs = start.elapsed().as_secs_f64();
        latencies.sort_unstable();
        Figures {
            ops: latencies.len() as u64,
            secs,
            latencies,
            server_cpu: cpu_of(&self.pids).saturating_sub(cpu),
        }
    }
}

/// A one-node `storage "file"` server with the shamir seal (one share), initialized and
/// unsealed; the process and its root token.
pub async fn file_node(dir: &std::path::Path) -> (ServerProc, String) {
    let spec = ServerSpec {
        extra_hcl: "seal \"shamir\" {}\n".into(),
        ..ServerSpec::plain(dir)
    };
    let proc = ServerProc::start(&spec);
    let (st, init) = put(
        &proc.addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(st, 200, "file node init: {init}");
    let key = init["keys_base64"][0].as_str().expect("unseal key");
    let (st, unseal): (u16, Value) =
        put(&proc.addr, "/v1/sys/unseal", None, &json!({ "key": key })).await;
    assert_eq!((st, &unseal["sealed"]), (200, &json!(false)), "{unseal}");
    let token = init["root_token"].as_str().expect("root token").to_owned();
    (proc, token)
}
