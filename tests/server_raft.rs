//! Integrated raft storage on one node, through the real `sealkeep server` binary: it behaves
//! as a `file` server does (init, unseal, KV, restart), reports HA facts in `sys/leader`, and a
//! node with empty raft state never forms a cluster on its own.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn leader(addr: &str, token: &str) -> Value {
    let (status, body) = get_auth(addr, "/v1/sys/leader", token).await;
    assert_eq!(status, 200, "sys/leader: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_node_raft_server_behaves_like_a_file_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = raft_spec(dir.path(), "solo-0");
    let mut server = ServerProc::start(&spec);
    let addr = server.addr.clone();

    let status = wait_status(&addr, Duration::from_secs(10), |_| true).await;
    assert_eq!(status["initialized"], false, "{status}");
    assert_eq!(status["storage_type"], "raft", "{status}");

    let (st, init) = put(
        &addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(st, 200, "init: {init}");
    let key = init["keys"][0].as_str().expect("key").to_owned();
    let token = init["root_token"].as_str().expect("token").to_owned();
    unseal(&addr, &key).await;

    let ha = leader(&addr, &token).await;
    assert_eq!(ha["ha_enabled"], true, "{ha}");
    assert_eq!(ha["is_self"], true, "{ha}");
    assert_eq!(ha["leader_address"], addr.as_str(), "{ha}");
    let applied = ha["raft_applied_index"].as_u64().expect("applied index");
    assert!(applied > 0, "{ha}");
    assert!(ha["raft_committed_index"].as_u64() >= Some(applied), "{ha}");

    for i in 0..20 {
        let (st, body) = put(
            &addr,
            &format!("/v1/secret/data/raft/k{i}"),
            Some(&token),
            &json!({"data": {"n": i}}),
        )
        .await;
        assert_eq!(st, 200, "write {i}: {body}");
    }
    let after = leader(&addr, &token).await;
    assert!(
        after["raft_applied_index"].as_u64().expect("applied") >= applied + 20,
        "every write is one raft entry at least: {ha} then {after}"
    );

    // A second init is refused, as on any initialized server.
    let (st, body) = put(
        &addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(st, 400, "{body}");

    // Restart: sealed, same storage, and every write reads back once unsealed.
    server.kill();
    let server = ServerProc::start(&spec);
    let status = wait_status(&addr, Duration::from_secs(30), |_| true).await;
    assert_eq!(status["initialized"], true, "{status}");
    assert_eq!(status["sealed"], true, "{status}");
    unseal(&addr, &key).await;
    for i in 0..20 {
        let (st, body) = get_auth(&addr, &format!("/v1/secret/data/raft/k{i}"), &token).await;
        assert_eq!(st, 200, "read {i}: {body}");
        assert_eq!(body["data"]["data"]["n"], i, "{body}");
    }
    assert!(
        !server.log_text().contains("panicked"),
        "{}",
        server.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_empty_raft_state_never_forms_a_cluster_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = raft_spec(dir.path(), "lonely-0");
    // Join targets that do not answer: the node must wait, not bootstrap.
    spec.extra_hcl = spec.extra_hcl.replace(
        "node_id",
        "retry_join { leader_api_addr = \"http://127.0.0.1:9\" }\n  node_id",
    );
    let mut server = ServerProc::start(&spec);
    let addr = server.addr.clone();
    // Longer than three of the slowest election timeouts (1 s each at multiplier 1).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let status = wait_status(&addr, Duration::from_secs(5), |_| true).await;
    assert_eq!(status["initialized"], false, "{status}");
    // And the same after a restart.
    server.kill();
    let server = ServerProc::start(&spec);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = wait_status(&addr, Duration::from_secs(5), |_| true).await;
    assert_eq!(status["initialized"], false, "{status}");
    // KV is unavailable until it is initialized (sealed: 503), never served from empty state.
    let (st, _) = get_auth(&addr, "/v1/secret/data/x", "s.none").await;
    assert_eq!(st, 503);
    drop(server);
}

/// A raft node on `api` and `cluster` ports, Shamir seal, with optional `retry_join` targets.
fn shamir_node<'a>(
    dir: &'a Path,
    name: &str,
    api: u16,
    cluster: u16,
    joins: &[String],
) -> ServerSpec<'a> {
    let retry: String = joins
        .iter()
        .map(|a| format!("  retry_join {{ leader_api_addr = \"{a}\" }}\n"))
        .collect();
    let mut spec = ServerSpec::plain(dir);
    spec.port = api;
    spec.extra_hcl = format!(
        "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"{name}\"\n{retry}}}\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = 1\n}}\n\
         api_addr = \"http://127.0.0.1:{api}\"\ncluster_addr = \"https://127.0.0.1:{cluster}\"\n",
        dir.join("raft").display()
    );
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shamir_joiner_joins_then_waits_for_its_unseal_keys() {
    let (d0, d1) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a0, c0, a1, c1) = (free_port(), free_port(), free_port(), free_port());
    let first = ServerProc::start(&shamir_node(d0.path(), "shamir-0", a0, c0, &[]));
    let (st, init) = put(
        &first.addr,
        "/v1/sys/init",
        None,
        &json!({"secret_shares": 3, "secret_threshold": 2}),
    )
    .await;
    assert_eq!(st, 200, "init: {init}");
    let keys: Vec<String> = init["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("key").to_owned())
        .collect();
    let token = init["root_token"].as_str().expect("token").to_owned();
    for k in &keys[..2] {
        put(&first.addr, "/v1/sys/unseal", None, &json!({ "key": k })).await;
    }
    let (st, body) = put(
        &first.addr,
        "/v1/secret/data/before-join",
        Some(&token),
        &json!({"data": {"v": 1}}),
    )
    .await;
    assert_eq!(st, 200, "{body}");

    // The joiner fetches the challenge and then shows the cluster's seal: sealed, t of n.
    let joiner = ServerProc::start(&shamir_node(
        d1.path(),
        "shamir-1",
        a1,
        c1,
        std::slice::from_ref(&first.addr),
    ));
    let status = wait_status(&joiner.addr, Duration::from_secs(30), |v| {
        v["initialized"] == true
    })
    .await;
    assert_eq!(
        (
            status["sealed"].clone(),
            status["t"].clone(),
            status["n"].clone()
        ),
        (json!(true), json!(2), json!(3)),
        "{status}"
    );
    // A wrong share set does not join.
    let bad = "00".repeat(33);
    put(
        &joiner.addr,
        "/v1/sys/unseal",
        None,
        &json!({ "key": keys[0] }),
    )
    .await;
    let (st, body) = put(&joiner.addr, "/v1/sys/unseal", None, &json!({ "key": bad })).await;
    assert_eq!(st, 400, "{body}");
    // The right shares: it answers the challenge, joins, replicates and unseals.
    put(
        &joiner.addr,
        "/v1/sys/unseal",
        None,
        &json!({ "key": keys[1] }),
    )
    .await;
    let (st, body) = put(
        &joiner.addr,
        "/v1/sys/unseal",
        None,
        &json!({ "key": keys[2] }),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["sealed"], false, "{body}");
    let (st, body) = get_auth(&joiner.addr, "/v1/sys/leader", &token).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["is_self"], false, "{body}");
    // Reads through the joiner reach the leader's data (redirect to the active node).
    let (st, body) = get_auth(&joiner.addr, "/v1/secret/data/before-join", &token).await;
    assert_eq!(
        (st, body["data"]["data"]["v"].clone()),
        (200, json!(1)),
        "{body}"
    );
}
