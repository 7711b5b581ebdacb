//! Jepsen harness (test code): the workload. N clients do KV v2 reads, writes and cas writes on
//! a small key set, each operation through a randomly chosen node, and record every operation
//! in the [`History`]. Network I/O (HTTP to the nodes). Like a Vault client, a client follows a
//! 307 and retries a 503, and each retry is a new recorded operation. Bounded: each client
//! stops at the deadline or after `max_ops` operations.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::history::{Event, History, Kind, Op};
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

/// What one request's answer means for the history.
#[derive(Debug)]
pub enum Outcome {
    /// Completed: (value, version, matched).
    Ok {
        value: Option<i64>,
        version: i64,
        matched: Option<bool>,
    },
    /// Certainly not applied; `redirect` is the node a 307 pointed to.
    Fail {
        error: String,
        redirect: Option<usize>,
    },
    /// May or may not have been applied; `redirect` as for `Fail`.
    Info {
        error: String,
        redirect: Option<usize>,
    },
}

pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("http client")
}

/// One operation to send.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub node: usize,
    pub f: Op,
    pub key: &'a str,
    /// The value a write or cas writes.
    pub value: i64,
    /// The version a cas expects.
    pub expect: i64,
}

impl<'a> Call<'a> {
    pub fn read(node: usize, key: &'a str) -> Self {
        Self {
            node,
            f: Op::Read,
            key,
            value: 0,
            expect: 0,
        }
    }
}

/// One KV v2 operation through `addrs[call.node]`.
pub async fn execute(
    http: &reqwest::Client,
    addrs: &[String],
    token: &str,
    call: Call<'_>,
) -> Outcome {
    let Call {
        node,
        f,
        key,
        value,
        expect,
    } = call;
    let url = format!("{}/v1/secret/data/{key}", addrs[node]);
    let req = match f {
        Op::Read => http.get(&url),
        Op::Write => http.put(&url).json(&json!({"data": {"v": value}})),
        Op::Cas => http
            .put(&url)
            .json(&json!({"options": {"cas": expect}, "data": {"v": value}})),
    };
    let resp = match req.header("X-Vault-Token", token).send().await {
        Ok(r) => r,
        // Never reached the node: certainly not applied.
        Err(e) if e.is_connect() => {
            return Outcome::Fail {
                error: format!("connect: {e}"),
                redirect: None,
            };
        }
        Err(e) if f == Op::Read => {
            return Outcome::Fail {
                error: format!("read: {e}"),
                redirect: None,
            };
        }
        Err(e) => {
            return Outcome::Info {
                error: format!("no answer: {e}"),
                redirect: None,
            };
        }
    };
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let redirect = location
        .as_deref()
        .and_then(|l| addrs.iter().position(|a| l.starts_with(a.as_str())));
    match (f, status) {
        (Op::Read, 307) => Outcome::Fail {
            error: format!("307 to {location:?}"),
            redirect,
        },
        // A standby also answers 307 when a forward broke after the leader may have handled
        // it (src/server/http/standby.rs): for a write, indeterminate.
        (_, 307) => Outcome::Info {
            error: format!("307 to {location:?}"),
            redirect,
        },
        (Op::Read, 200) => Outcome::Ok {
            value: body["data"]["data"]["v"].as_i64(),
            version: body["data"]["metadata"]["version"].as_i64().unwrap_or(-1),
            matched: None,
        },
        // Never written (there are no deletes in this workload).
        (Op::Read, 404) if body["errors"].as_array().is_some_and(Vec::is_empty) => Outcome::Ok {
            value: None,
            version: 0,
            matched: None,
        },
        (Op::Write | Op::Cas, 200) => Outcome::Ok {
            value: None,
            version: body["data"]["version"].as_i64().unwrap_or(-1),
            matched: (f == Op::Cas).then_some(true),
        },
        (Op::Cas, 400)
            if body
                .to_string()
                .contains("check-and-set parameter did not match") =>
        {
            Outcome::Ok {
                value: None,
                version: 0,
                matched: Some(false),
            }
        }
        // Reads have no effect: any other answer is a failure. A write refused before it
        // reached raft answers 4xx; a 5xx may come after the entry was proposed.
        (Op::Read, _) | (_, 400..=499) => Outcome::Fail {
            error: format!("{status}: {body}"),
            redirect: None,
        },
        _ => Outcome::Info {
            error: format!("{status}: {body}"),
            redirect: None,
        },
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

/// Runs client `id` until `deadline`; returns the writes it saw acknowledged.
pub async fn client(
    id: u64,
    w: Workload,
    history: Arc<History>,
    addrs: Arc<Vec<String>>,
    token: Arc<String>,
    seed: u64,
    deadline: Instant,
) -> Vec<AckedWrite> {
    let http = http_client(w.op_timeout);
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
        let key = key_name(&w, history.elapsed(), rng.below(w.keys as u64) as usize);
        let f = match rng.below(100) {
            0..40 => Op::Read,
            40..75 => Op::Write,
            _ => Op::Cas,
        };
        counter += 1;
        let value = i64::try_from(id + 1).unwrap_or(0) * 10_000_000 + counter;
        let expect = *versions.get(&key).unwrap_or(&0);
        let node = next_node
            .take()
            .unwrap_or_else(|| rng.below(addrs.len() as u64) as usize);
        let mut ev = Event {
            process,
            kind: Kind::Invoke,
            f,
            key: key.clone(),
            value: (f != Op::Read).then_some(value),
            expect: (f == Op::Cas).then_some(expect),
            version: None,
            matched: None,
            time: 0,
            node,
            error: None,
            late: None,
        };
        history.record(ev.clone());
        ev.value = None;
        ev.expect = None;
        let call = Call {
            node,
            f,
            key: &key,
            value,
            expect,
        };
        match execute(&http, &addrs, &token, call).await {
            Outcome::Ok {
                value: read,
                version,
                matched,
            } => {
                if f == Op::Read {
                    ev.value = read;
                }
                if matched != Some(false) {
                    ev.version = Some(version);
                    versions.insert(key.clone(), version);
                }
                if f != Op::Read && matched != Some(false) {
                    acked.push(AckedWrite {
                        key,
                        version,
                        value,
                    });
                }
                ev.matched = matched;
                ev.kind = Kind::Ok;
                history.record(ev);
            }
            Outcome::Fail { error, redirect } => {
                ev.kind = Kind::Fail;
                ev.error = Some(error);
                history.record(ev);
                if redirect.is_some() {
                    next_node = redirect;
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Outcome::Info { error, redirect } => {
                ev.kind = Kind::Info;
                ev.error = Some(error);
                history.record(ev);
                // The operation may still be in flight: this process is done; a new one goes on.
                generation += 1;
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
