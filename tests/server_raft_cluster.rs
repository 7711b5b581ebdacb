//! Integrated raft HA with real processes: three `sealkeep server` nodes on 127.0.0.1, sealed
//! by moto's KMS through IRSA-style credentials. One is initialized, the others join by
//! `retry_join` (proving the seal), all auto-unseal; then the leader is killed or paused, and
//! every acknowledged write must still read back, with no stale read from a deposed leader.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, read, write};
use common::*;
use serde_json::json;

const FORM: Duration = Duration::from_secs(60);

/// Starts moto with a key, three nodes, initializes node 0 and waits for three voters.
async fn three_nodes(alias: &str) -> (Moto, Cluster, String) {
    let moto = Moto::start();
    create_kms_key(&moto.url, alias).await;
    let mut c = Cluster::new(3, &moto.url, alias);
    c.start_all();
    let token = c.init(0).await;
    c.wait_unsealed(FORM).await;
    c.wait_voters(&token, 3, FORM).await;
    (moto, c, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_join_unseal_replicate_and_survive_a_leader_kill() {
    let (_moto, mut c, token) = three_nodes("sealkeep-ha-kill").await;

    // sys/init on a joined node is refused.
    let (st, v) = put(
        &c.addr(1),
        "/v1/sys/init",
        None,
        &json!({"recovery_shares": 1, "recovery_threshold": 1}),
    )
    .await;
    assert_eq!(st, 400, "{v}");

    // The same cluster everywhere, and writes through any node read back through every node.
    let ids: Vec<_> = futures_ids(&c).await;
    assert!(ids.iter().all(|id| id == &ids[0]), "cluster ids: {ids:?}");
    for i in 0..3 {
        assert_eq!(
            write(&c.addr(i), &token, &format!("via{i}"), json!({"n": i})).await,
            200
        );
    }
    for i in 0..3 {
        for j in 0..3 {
            let (st, data) = read(&c.addr(i), &token, &format!("via{j}")).await;
            assert_eq!(
                (st, data),
                (200, json!({"n": j})),
                "read via{j} through node {i}"
            );
        }
    }

    // A standby forwards over the cluster port (one answer, no redirect), and redirects when
    // the client opts out of forwarding.
    let leader = c.wait_leader(&token, FORM).await;
    let standby = (leader + 1) % 3;
    let http = no_redirect();
    let resp = http
        .put(format!("{}/v1/secret/data/forwarded", c.addr(standby)))
        .header("X-Vault-Token", &token)
        .json(&json!({"data": {"n": 7}}))
        .send()
        .await
        .expect("forwarded write");
    assert_eq!(resp.status().as_u16(), 200, "a standby forwards the write");
    let resp = http
        .get(format!("{}/v1/secret/data/forwarded", c.addr(standby)))
        .header("X-Vault-Token", &token)
        .header("X-Vault-No-Request-Forwarding", "true")
        .send()
        .await
        .expect("redirected read");
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(
        resp.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or(""),
        format!("{}/v1/secret/data/forwarded", c.addr(leader))
    );

    // A writer runs through the survivors while the leader is SIGKILLed.
    let survivors: Vec<String> = (0..3).filter(|i| *i != leader).map(|i| c.addr(i)).collect();
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let killed_at = Instant::now();
    c.kill(leader);
    let mut first_ack_after_kill = None;
    for n in 0..400u64 {
        let key = format!("during/k{n}");
        let addr = &survivors[usize::try_from(n % 2).unwrap_or(0)];
        if write(addr, &token, &key, json!({"n": n})).await == 200 {
            first_ack_after_kill.get_or_insert_with(|| killed_at.elapsed());
            acked.insert(key, n);
            if acked.len() >= 30 {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        acked.len() >= 30,
        "writes through the survivors must succeed after the leader is killed (acknowledged: {})",
        acked.len()
    );
    eprintln!("first acknowledged write after the kill: {first_ack_after_kill:?}");

    // The killed node restarts, auto-unseals from its replica and catches up.
    c.start(leader);
    c.wait_unsealed(FORM).await;
    c.wait_voters(&token, 3, FORM).await;
    for (key, n) in &acked {
        for i in 0..3 {
            let (st, data) = read(&c.addr(i), &token, key).await;
            assert_eq!((st, data), (200, json!({"n": n})), "{key} through node {i}");
        }
    }
    for j in 0..3 {
        let (st, data) = read(&c.addr(leader), &token, &format!("via{j}")).await;
        assert_eq!((st, data), (200, json!({"n": j})));
    }

    // SIGTERM on the leader: it hands leadership over before it exits, and writes go on.
    let leader = c.wait_leader(&token, FORM).await;
    c.signal(leader, "TERM");
    let other = c.addr((leader + 1) % 3);
    let start = Instant::now();
    let mut ok = false;
    while start.elapsed() < FORM && !ok {
        ok = write(&other, &token, "after-sigterm", json!({"n": 1})).await == 200;
        if !ok {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(ok, "writes must go on after the leader's SIGTERM");
    for _ in 0..100 {
        if c.log(leader)
            .contains("handed leadership over before stopping")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.log(leader)
            .contains("handed leadership over before stopping"),
        "{}",
        c.log(leader)
    );
}

async fn futures_ids(c: &Cluster) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, v) = get(&c.addr(i), "/v1/sys/seal-status").await;
        ids.push(v["cluster_id"].as_str().unwrap_or("").to_owned());
    }
    ids
}

/// A client that does not follow redirects: what the node itself answers.
fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_leader_steps_down_and_never_serves_a_stale_read() {
    let (_moto, c, token) = three_nodes("sealkeep-ha-pause").await;
    let old = c.wait_leader(&token, FORM).await;
    assert_eq!(
        write(&c.addr(old), &token, "pause/k", json!({"v": "old"})).await,
        200
    );

    c.signal(old, "STOP");
    // Write the new value through the others once they elect a new leader.
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let start = Instant::now();
    let mut written = false;
    while start.elapsed() < FORM && !written {
        for i in &others {
            if write(&c.addr(*i), &token, "pause/k", json!({"v": "new"})).await == 200 {
                written = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        written,
        "the majority must accept the write while the leader is paused"
    );
    c.signal(old, "CONT");

    // Every read through the old leader, from the first moment after SIGCONT: never "old".
    let http = no_redirect();
    for _ in 0..50 {
        let resp = http
            .get(format!("{}/v1/secret/data/pause/k", c.addr(old)))
            .header("X-Vault-Token", &token)
            .send()
            .await;
        if let Ok(r) = resp {
            let st = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            assert_ne!(
                v["data"]["data"]["v"], "old",
                "a deposed leader served a stale read (status {st})"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, data) = read(&c.addr(old), &token, "pause/k").await;
    assert_eq!((st, data), (200, json!({"v": "new"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_node_never_forms_a_cluster_and_a_joiner_without_the_key_cannot_join() {
    let moto = Moto::start();
    create_kms_key(&moto.url, "sealkeep-ha-lonely").await;
    // One node alone, its retry_join targets dead: it stays uninitialized and says why.
    let mut lonely = Cluster::new(3, &moto.url, "sealkeep-ha-lonely");
    lonely.start(0);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, v) = get(&lonely.addr(0), "/v1/sys/seal-status").await;
    assert_eq!(v["initialized"], false, "{v}");
    let log = lonely.log(0);
    assert!(log.contains("failed to join the raft cluster"), "{log}");

    // A cluster whose key the joiner cannot use: its region has no such key.
    let mut c = Cluster::new(2, &moto.url, "sealkeep-ha-lonely");
    c.nodes[1].region = "eu-west-1".into();
    c.start_all();
    let _token = c.init(0).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, v) = get(&c.addr(1), "/v1/sys/seal-status").await;
    assert_eq!(v["initialized"], false, "{v}");
    let log = c.log(1);
    assert!(
        log.contains("cannot decrypt the join challenge with this node's seal"),
        "the joiner must say why it cannot join: {log}"
    );
}

/// Writes through `addr` as a Vault client does: on 307 (followed by the client) or 503 it
/// retries, for at most `patience`; true once acknowledged.
async fn write_retrying(addr: &str, token: &str, key: &str, n: u64, patience: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < patience {
        if write(addr, token, key, json!({ "n": n })).await == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn step_down_moves_leadership_without_a_failed_write_and_remove_peer_shrinks_the_cluster() {
    let (_moto, c, token) = three_nodes("sealkeep-ha-stepdown").await;
    let old = c.wait_leader(&token, FORM).await;
    let client_node = (old + 1) % 3;

    // A writer keeps writing through a standby while the leader steps down.
    let writer = {
        let addr = c.addr(client_node);
        let token = token.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..60u64 {
                let key = format!("stepdown/k{n}");
                assert!(
                    write_retrying(&addr, &token, &key, n, Duration::from_secs(1)).await,
                    "write {n} failed for more than 1 s around the step-down"
                );
                acked.push((key, n));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, body) = put(&c.addr(old), "/v1/sys/step-down", Some(&token), &json!({})).await;
    assert_eq!(st, 204, "step-down: {body}");
    let acked = writer.await.expect("writer");
    let new = c.wait_leader(&token, FORM).await;
    assert_ne!(new, old, "leadership must move");
    for (key, n) in &acked {
        let (st, data) = read(&c.addr(old), &token, key).await;
        assert_eq!((st, data), (200, json!({ "n": n })), "{key}");
    }

    // remove-peer: the old leader leaves; two voters keep working.
    let (st, body) = put(
        &c.addr(new),
        "/v1/sys/storage/raft/remove-peer",
        Some(&token),
        &json!({ "server_id": format!("node-{old}") }),
    )
    .await;
    assert!(st == 200 || st == 204, "remove-peer: {st} {body}");
    c.wait_voters(&token, 2, FORM).await;
    let survivor = (0..3).find(|i| *i != old && *i != new).expect("third node");
    assert!(write_retrying(&c.addr(survivor), &token, "after-remove", 1, FORM).await);
    let (st, data) = read(&c.addr(new), &token, "after-remove").await;
    assert_eq!((st, data), (200, json!({ "n": 1 })));
}
