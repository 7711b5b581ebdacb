//! Jepsen harness (test code): the workload. N clients do KV v2 reads, writes, cas writes and
//! deletes on a small key set, and token creates and lookups, each operation through a
//! randomly chosen node, and record every operation in the [`History`]. Network I/O (HTTP to
//! the nodes, through [`ops`]). Like a Vault client, a client follows a 307 and retries a 503,
//! and each retry is a new recorded operation. Bounded: each client stops at the deadline or
//! after `max_ops` operations.
//!
//! Tokens: a create names its token by a key of its own (`tok-<client>-<n>`); once it is
//! acknowledged, the token joins a pool that every client looks tokens up from, so a token
//! acknowledged as created must be found by every later lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::history::{History, Op};
use super::ops::{self, Call, Outcome};
use super::rng::Rng;

/// The workload's shape.
#[derive(Debug, Clone)]
pub struct Workload {
    pub clients: usize,
    pub keys: usize,
    /// A request with no answer after this is recorded as `info`.
    pub op_timeout: Duration,
    pub max_ops_per_client: usize,
    /// Key names change every `key_epoch` (soaks: bounds each key's history for the checker).
    pub key_epoch: Option<Duration>,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            clients: 8,
            keys: 4,
            op_timeout: Duration::from_secs(5),
            max_ops_per_client: 5_000,
            key_epoch: None,
        }
    }
}

/// A write the cluster acknowledged: it must survive every fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedWrite {
    pub key: String,
    pub version: i64,
    pub value: i64,
}

/// What the clients share.
pub struct Shared {
    pub history: Arc<History>,
    pub addrs: Vec<String>,
    /// The root token the clients authenticate with.
    pub token: String,
    /// Tokens acknowledged as created: (history key, token).
    pub tokens: Mutex<Vec<(String, String)>>,
}

impl Shared {
    pub fn tokens(&self) -> Vec<(String, String)> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn pick_token(&self, rng: &mut Rng) -> Option<(String, String)> {
        let t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        t.get(rng.below(t.len() as u64) as usize).cloned()
    }
}

/// The key set at time `elapsed`.
pub fn key_name(w: &Workload, elapsed: Duration, i: usize) -> String {
    match w.key_epoch {
        Some(e) if !e.is_zero() => {
            format!("e{}k{i}", elapsed.as_millis() / e.as_millis().max(1))
        }
        _ => format!("k{i}"),
    }
}

/// Runs client `id` until `deadline`; returns the KV writes it saw acknowledged.
pub async fn client(
    id: u64,
    w: Workload,
    shared: Arc<Shared>,
    seed: u64,
    deadline: Instant,
) -> Vec<AckedWrite> {
    let http = ops::http_client(w.op_timeout);
    let history = &shared.history;
    let mut rng = Rng::new(seed ^ (id.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut generation = 0u64;
    let mut counter = 0i64;
    let mut versions: HashMap<String, i64> = HashMap::new();
    let mut acked = Vec::new();
    // A 307's target, or a retry after a 503, is the next operation's node.
    let mut next_node: Option<usize> = None;
    for _ in 0..w.max_ops_per_client {
        if Instant::now() >= deadline {
            break;
        }
        let process = id * 1_000_000 + generation;
        counter += 1;
        let node = next_node
            .take()
            .unwrap_or_else(|| rng.below(shared.addrs.len() as u64) as usize);
        let mut key = key_name(&w, history.elapsed(), rng.below(w.keys as u64) as usize);
        let mut looked_up = String::new();
        let f = match rng.below(100) {
            0..35 => Op::Read,
            35..65 => Op::Write,
            65..85 => Op::Cas,
            85..90 => Op::Delete,
            90..95 => {
                key = format!("tok-{id}-{counter}");
                Op::TokenCreate
            }
            _ => match shared.pick_token(&mut rng) {
                Some((k, t)) => {
                    (key, looked_up) = (k, t);
                    Op::TokenLookup
                }
                None => Op::Read,
            },
        };
        let value = i64::try_from(id + 1).unwrap_or(0) * 10_000_000 + counter;
        let call = Call {
            value,
            expect: *versions.get(&key).unwrap_or(&0),
            token: &looked_up,
            ..Call::new(node, f, &key)
        };
        let outcome =
            ops::perform(history, &http, &shared.addrs, &shared.token, process, call).await;
        let info = matches!(outcome, Outcome::Info { .. });
        match outcome {
            Outcome::Ok {
                version,
                matched,
                token,
                ..
            } => {
                if matches!(f, Op::Read | Op::Write | Op::Cas) && matched != Some(false) {
                    versions.insert(key.clone(), version);
                }
                if matches!(f, Op::Write | Op::Cas) && matched != Some(false) {
                    acked.push(AckedWrite {
                        key: key.clone(),
                        version,
                        value,
                    });
                }
                if let Some(token) = token {
                    let mut pool = shared.tokens.lock().unwrap_or_else(|p| p.into_inner());
                    pool.push((key, token));
                }
            }
            Outcome::Fail { redirect, .. } | Outcome::Info { redirect, .. } => {
                if info {
                    // The operation may still be in flight: this process is done; a new one
                    // goes on.
                    generation += 1;
                }
                if redirect.is_some() {
                    next_node = redirect;
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    acked
}
