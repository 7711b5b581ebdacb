//! Durability under SIGKILL: the real `sealkeep` binary (file storage, Shamir seal) is killed
//! while clients write, restarted and unsealed, in a bounded loop; every write that got a 2xx
//! must be readable afterwards with its exact value.
//!
//! Two kinds of writes run at once, over HTTP with keep-alive:
//! - `DISTINCT_WRITERS` tasks write one new key each time (`secret/data/crash/k<n>`), so every
//!   acknowledged write has its own record to check, whatever KV v2 prunes;
//! - one task writes new versions of a single key (`secret/data/crash/versioned`, with
//!   `max_versions` raised so nothing is pruned), which exercises the read-modify-write of the
//!   key's metadata: an acknowledged version must never be lost or handed out twice.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

const ROUNDS: u32 = 20;
/// No new round starts after this; the whole test stays well under two minutes of killing.
const TIME_LIMIT: Duration = Duration::from_secs(120);
const DISTINCT_WRITERS: usize = 3;
const VERSIONED_KEY: &str = "crash/versioned";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One write that got a 2xx.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    value: String,
    /// The version the server reported.
    version: u64,
    round: u32,
}

/// What one writer task saw in a round.
#[derive(Debug, Default)]
struct WriterReport {
    acked: Vec<Ack>,
    /// Writes whose outcome is unknown: the connection died (the kill) before the response.
    in_flight: Vec<(String, String)>,
    /// Non-2xx answers: the server answered, and refused. Never expected.
    refused: Vec<(String, u16, String)>,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client")
}

/// Round r's kill delay, spread over 20..=200 ms (53 is coprime with 181, so the delays differ).
fn kill_delay(round: u32) -> Duration {
    Duration::from_millis(20 + u64::from(round * 53 % 181))
}

/// Every fourth round counts its delay from the round's first acknowledged write rather than
/// from the start of writing, so that a slow machine still kills mid-stream in some rounds.
fn counts_from_first_ack(round: u32) -> bool {
    round % 4 == 3
}

async fn write(
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    key: &str,
    value: &str,
) -> Result<(u16, Value), reqwest::Error> {
    let resp = client
        .put(format!("{addr}/v1/secret/data/{key}"))
        .header("X-Vault-Token", token)
        .json(&json!({ "data": { "value": value } }))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Writes until `stop`, or until the server stops answering. `next_key` gives the key of each
/// write (a new one each time, or always the same).
async fn writer(
    client: reqwest::Client,
    addr: String,
    token: String,
    round: u32,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
    next_key: impl Fn() -> (String, u64),
) -> WriterReport {
    let mut report = WriterReport::default();
    while !stop.load(Ordering::SeqCst) {
        let (key, n) = next_key();
        let value = format!("value-{n}-round-{round}-{}", "x".repeat(64));
        match write(&client, &addr, &token, &key, &value).await {
            Ok((status, body)) if (200..300).contains(&status) => {
                match body["data"]["version"].as_u64() {
                    Some(version) => {
                        acks.fetch_add(1, Ordering::SeqCst);
                        report.acked.push(Ack {
                            key,
                            value,
                            version,
                            round,
                        });
                    }
                    // The kill cut the response after its status line: counted as unknown.
                    None => {
                        report.in_flight.push((key, value));
                        break;
                    }
                }
            }
            Ok((status, body)) => report.refused.push((key, status, body.to_string())),
            Err(_) => {
                report.in_flight.push((key, value));
                break;
            }
        }
    }
    report
}

async fn unseal(addr: &str, key: &str) {
    wait_status(addr, Duration::from_secs(30), |v| v["initialized"] == true).await;
    let (status, body) = put(addr, "/v1/sys/unseal", None, &json!({ "key": key })).await;
    assert_eq!(status, 200, "unseal: {body}");
    wait_status(addr, Duration::from_secs(30), |v| v["sealed"] == false).await;
}

/// Reads `key` (at `version` if given): `Some(value)` when it is there, `None` on 404.
async fn read(
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    key: &str,
    version: Option<u64>,
) -> Option<String> {
    let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
    let resp = client
        .get(format!("{addr}/v1/secret/data/{key}{query}"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .expect("read after restart");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match status {
        200 => Some(
            body["data"]["data"]["value"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        ),
        404 => None,
        other => panic!("read {key}{query}: HTTP {other}: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill_and_restart() {
    crash_rounds(None, ROUNDS).await;
}

/// The same on integrated raft storage (one node): the same durability as `storage "file"`.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill_and_restart_on_raft() {
    crash_rounds(Some("raft"), ROUNDS / 2).await;
}

async fn crash_rounds(storage: Option<&str>, rounds: u32) {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = if storage == Some("raft") {
        raft_spec(dir.path(), "crash-0")
    } else {
        ServerSpec::plain(dir.path())
    };
    let mut server = ServerProc::start(&spec);
    let addr = server.addr.clone();
    let (status, init) = put(
        &addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(status, 200, "init: {init}");
    let unseal_key = init["keys"][0].as_str().expect("unseal key").to_owned();
    let token = init["root_token"].as_str().expect("root token").to_owned();
    unseal(&addr, &unseal_key).await;
    // Keep every version of the versioned key, so each acknowledged one can be read back.
    let (status, body) = put(
        &addr,
        &format!("/v1/secret/metadata/{VERSIONED_KEY}"),
        Some(&token),
        &json!({ "max_versions": 100_000 }),
    )
    .await;
    assert!((200..300).contains(&status), "metadata: {status} {body}");

    let counter = Arc::new(AtomicU64::new(0));
    let mut acked: Vec<Ack> = Vec::new();
    let mut in_flight: Vec<(String, String)> = Vec::new();
    let mut refused = Vec::new();
    let mut kills = 0u32;
    for round in 0..rounds {
        if started.elapsed() > TIME_LIMIT {
            println!("time limit reached after {round} rounds");
            break;
        }
        if round > 0 {
            server = ServerProc::start(&spec);
            unseal(&addr, &unseal_key).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        // Built before the clock starts (building a TLS-capable client takes a while); a new one
        // each round, so no connection to the killed server is reused.
        let client = http();
        let mut tasks = Vec::new();
        for _ in 0..DISTINCT_WRITERS {
            let counter = counter.clone();
            tasks.push(tokio::spawn(writer(
                client.clone(),
                addr.clone(),
                token.clone(),
                round,
                stop.clone(),
                acks.clone(),
                move || {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    (format!("crash/k{n}"), n)
                },
            )));
        }
        let counter_v = counter.clone();
        tasks.push(tokio::spawn(writer(
            client.clone(),
            addr.clone(),
            token.clone(),
            round,
            stop.clone(),
            acks.clone(),
            move || {
                (
                    VERSIONED_KEY.to_owned(),
                    counter_v.fetch_add(1, Ordering::SeqCst),
                )
            },
        )));

        let delay = kill_delay(round);
        if counts_from_first_ack(round) {
            let waited = Instant::now();
            while acks.load(Ordering::SeqCst) == 0 && waited.elapsed() < REQUEST_TIMEOUT {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        tokio::time::sleep(delay).await;
        server.kill(); // SIGKILL, then reaped
        kills += 1;
        stop.store(true, Ordering::SeqCst);
        let mut round_acks = 0;
        for task in tasks {
            let report = tokio::time::timeout(REQUEST_TIMEOUT * 2, task)
                .await
                .expect("writer stops after the kill")
                .expect("writer task");
            round_acks += report.acked.len();
            acked.extend(report.acked);
            in_flight.extend(report.in_flight);
            refused.extend(report.refused);
        }
        println!(
            "round {round:2}: killed {:3} ms after the {}, {round_acks:4} writes acknowledged",
            delay.as_millis(),
            if counts_from_first_ack(round) {
                "first ack"
            } else {
                "start"
            }
        );
    }
    assert!(refused.is_empty(), "the server refused writes: {refused:?}");

    // Restart once more and check everything.
    server = ServerProc::start(&spec);
    unseal(&addr, &unseal_key).await;
    let verify_started = Instant::now();
    let client = http();
    let results: Vec<(Ack, Option<String>)> = futures::stream::iter(acked.iter().cloned())
        .map(|ack| {
            let (client, addr, token) = (&client, &addr, &token);
            async move {
                let version = (ack.key == VERSIONED_KEY).then_some(ack.version);
                let got = read(client, addr, token, &ack.key, version).await;
                (ack, got)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let lost: Vec<String> = results
        .iter()
        .filter(|(ack, got)| got.as_deref() != Some(ack.value.as_str()))
        .map(|(ack, got)| {
            format!(
                "{} v{} (round {}): expected {:?}, read {got:?}",
                ack.key, ack.version, ack.round, ack.value
            )
        })
        .collect();

    // Versions of the versioned key: each acknowledged version was handed out once, and the
    // key's current version is at least the last acknowledged one.
    let versions: Vec<u64> = acked
        .iter()
        .filter(|a| a.key == VERSIONED_KEY)
        .map(|a| a.version)
        .collect();
    let unique: HashSet<u64> = versions.iter().copied().collect();
    assert_eq!(
        unique.len(),
        versions.len(),
        "a version was acknowledged twice: {versions:?}"
    );
    let (status, meta) = get_auth(
        &addr,
        &format!("/v1/secret/metadata/{VERSIONED_KEY}"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{meta}");
    let current = meta["data"]["current_version"].as_u64().unwrap_or(0);
    let max_acked = versions.iter().copied().max().unwrap_or(0);
    assert!(
        current >= max_acked,
        "current_version {current} < acknowledged version {max_acked}"
    );

    // Writes cut off by a kill may or may not have landed, but never as anything else.
    let mut landed = 0;
    for (key, value) in &in_flight {
        if key == VERSIONED_KEY {
            continue;
        }
        match read(&client, &addr, &token, key, None).await {
            Some(v) if &v == value => landed += 1,
            Some(v) => panic!("{key} holds {v:?}, but the only write to it was {value:?}"),
            None => {}
        }
    }

    let mut per_round: BTreeMap<u32, usize> = BTreeMap::new();
    for a in &acked {
        *per_round.entry(a.round).or_default() += 1;
    }
    println!(
        "crash test: {kills} kills, {} writes acknowledged ({} distinct keys, {} versions of one key), {} lost; {} cut off by a kill ({landed} of {} new keys landed); verified in {:.1?}; total {:.1?}",
        acked.len(),
        acked.len() - versions.len(),
        versions.len(),
        lost.len(),
        in_flight.len(),
        in_flight.iter().filter(|(k, _)| k != VERSIONED_KEY).count(),
        verify_started.elapsed(),
        started.elapsed(),
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost:\n{}\nserver log:\n{}",
        lost.len(),
        lost.join("\n"),
        server.log_text()
    );
    assert!(kills >= 3, "only {kills} kills within {TIME_LIMIT:?}");
    assert!(
        per_round.len() >= 2,
        "too few rounds with acknowledged writes to mean anything: {per_round:?}"
    );
    assert!(started.elapsed() < TIME_LIMIT + Duration::from_secs(60));
}
