//! The HA and raft administration API on one real raft server process (shamir seal):
//! `sys/storage/raft/configuration`, `sys/ha-status`, autopilot configuration round trip and
//! state, snapshot save → more writes → restore → the old data back (after the node seals
//! itself to reload and is unsealed), and `sealkeep status`'s HA lines.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn write(addr: &str, token: &str, path: &str, n: i64) {
    let (st, body) = put(addr, path, Some(token), &json!({"data": {"n": n}})).await;
    assert_eq!(st, 200, "write {path}: {body}");
}

async fn read_n(addr: &str, token: &str, path: &str) -> Option<i64> {
    let (st, body) = get_auth(addr, path, token).await;
    match st {
        200 => body["data"]["data"]["n"].as_i64(),
        404 => None,
        other => panic!("read {path}: {other} {body}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raft_admin_endpoints_on_one_real_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = raft_spec(dir.path(), "admin-0");
    let server = ServerProc::start(&spec);
    let addr = server.addr.clone();
    wait_status(&addr, Duration::from_secs(10), |_| true).await;
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

    // Configuration: one voter, the leader, named by node_id.
    let (st, cfg) = get_auth(&addr, "/v1/sys/storage/raft/configuration", &token).await;
    assert_eq!(st, 200, "{cfg}");
    let servers = cfg["data"]["config"]["servers"]
        .as_array()
        .expect("servers");
    assert_eq!(servers.len(), 1, "{cfg}");
    assert_eq!(servers[0]["node_id"], "admin-0", "{cfg}");
    assert_eq!(servers[0]["leader"], true, "{cfg}");
    assert_eq!(servers[0]["voter"], true, "{cfg}");
    assert_eq!(servers[0]["protocol_version"], "3", "{cfg}");
    let address = servers[0]["address"].as_str().expect("address");
    assert!(
        address.starts_with("127.0.0.1:") && !address.contains("://"),
        "{cfg}"
    );

    // ha-status: this node, active, at its api_addr.
    let (st, ha) = get_auth(&addr, "/v1/sys/ha-status", &token).await;
    assert_eq!(st, 200, "{ha}");
    let nodes = ha["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{ha}");
    assert_eq!(nodes[0]["hostname"], "admin-0", "{ha}");
    assert_eq!(nodes[0]["active_node"], true, "{ha}");
    assert_eq!(nodes[0]["api_address"], addr.as_str(), "{ha}");

    // Autopilot configuration round trip, then its state.
    let ap = "/v1/sys/storage/raft/autopilot/configuration";
    let (st, body) = put(
        &addr,
        ap,
        Some(&token),
        &json!({"max_trailing_logs": 250, "server_stabilization_time": "30s"}),
    )
    .await;
    assert_eq!(st, 204, "{body}");
    let (st, body) = put(&addr, ap, Some(&token), &json!({"min_quorum": "x"})).await;
    assert_eq!(st, 400, "{body}");
    let (st, conf) = get_auth(&addr, ap, &token).await;
    assert_eq!(st, 200, "{conf}");
    assert_eq!(conf["data"]["max_trailing_logs"], 250, "{conf}");
    assert_eq!(conf["data"]["server_stabilization_time"], "30s", "{conf}");
    assert_eq!(conf["data"]["cleanup_dead_servers"], false, "{conf}");
    let (st, state) = get_auth(&addr, "/v1/sys/storage/raft/autopilot/state", &token).await;
    assert_eq!(st, 200, "{state}");
    assert_eq!(state["data"]["healthy"], true, "{state}");
    assert_eq!(state["data"]["leader"], "admin-0", "{state}");
    assert_eq!(
        state["data"]["servers"]["admin-0"]["status"], "leader",
        "{state}"
    );

    // Step-down on a lone voter: 204 and still active.
    let (st, body) = put(&addr, "/v1/sys/step-down", Some(&token), &json!({})).await;
    assert_eq!(st, 204, "{body}");

    // Snapshot save → more writes → restore → the old data back.
    for i in 0..5 {
        write(&addr, &token, &format!("/v1/secret/data/snap/k{i}"), i).await;
    }
    let resp = client()
        .get(format!("{addr}/v1/sys/storage/raft/snapshot"))
        .header("X-Vault-Token", &token)
        .send()
        .await
        .expect("GET snapshot");
    assert_eq!(resp.status().as_u16(), 200);
    let archive = resp.bytes().await.expect("snapshot body").to_vec();
    assert_eq!(&archive[..8], b"SKRAFTSN");
    for i in 0..5 {
        write(
            &addr,
            &token,
            &format!("/v1/secret/data/snap/k{i}"),
            100 + i,
        )
        .await;
    }
    write(&addr, &token, "/v1/secret/data/snap/late", 7).await;

    let resp = client()
        .post(format!("{addr}/v1/sys/storage/raft/snapshot"))
        .header("X-Vault-Token", &token)
        .body(archive)
        .send()
        .await
        .expect("POST snapshot");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 204, "restore: {text}");
    let sealed = wait_status(&addr, Duration::from_secs(5), |v| v["sealed"] == true).await;
    assert_eq!(sealed["initialized"], true, "{sealed}");
    unseal(&addr, &key).await;
    for i in 0..5 {
        assert_eq!(
            read_n(&addr, &token, &format!("/v1/secret/data/snap/k{i}")).await,
            Some(i),
            "k{i} is back to its value at the snapshot"
        );
    }
    assert_eq!(
        read_n(&addr, &token, "/v1/secret/data/snap/late").await,
        None
    );
    // The autopilot configuration was part of the snapshot too.
    let (_, conf) = get_auth(&addr, ap, &token).await;
    assert_eq!(conf["data"]["max_trailing_logs"], 250, "{conf}");

    // `sealkeep status` prints Vault's HA lines.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealkeep"))
        .arg("status")
        .env("SEALKEEP_ADDR", &addr)
        .output()
        .expect("sealkeep status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let has = |words: &[&str]| {
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == words)
    };
    assert!(has(&["HA", "Enabled", "true"]), "{text}");
    assert!(has(&["HA", "Mode", "active"]), "{text}");
    assert!(text.contains("Raft Committed Index"), "{text}");
    assert!(text.contains("Raft Applied Index"), "{text}");
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// With the awskms seal a restore needs no operator: the node seals to reload and the
/// auto-unseal loop, woken at once, unseals it from the restored root key.
#[tokio::test(flavor = "multi_thread")]
async fn awskms_node_unseals_by_itself_after_a_restore() {
    let moto = Moto::start();
    create_kms_key(&moto.url, "sealkeep-raft-admin").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = raft_spec(dir.path(), "kms-0");
    spec.extra_hcl.push_str(&format!(
        "seal \"awskms\" {{\n  region = \"us-east-1\"\n  kms_key_id = \"alias/sealkeep-raft-admin\"\n  endpoint = \"{}\"\n  max_backoff = \"2s\"\n}}\n",
        moto.url
    ));
    spec.env = static_creds();
    let server = ServerProc::start(&spec);
    let addr = server.addr.clone();
    wait_status(&addr, Duration::from_secs(10), |_| true).await;
    let (st, init) = put(
        &addr,
        "/v1/sys/init",
        None,
        &json!({"recovery_shares": 1, "recovery_threshold": 1}),
    )
    .await;
    assert_eq!(st, 200, "init: {init}");
    let token = init["root_token"].as_str().expect("token").to_owned();
    wait_status(&addr, Duration::from_secs(30), |v| v["sealed"] == false).await;

    write(&addr, &token, "/v1/secret/data/kms/a", 1).await;
    let archive = client()
        .get(format!("{addr}/v1/sys/storage/raft/snapshot"))
        .header("X-Vault-Token", &token)
        .send()
        .await
        .expect("GET snapshot")
        .bytes()
        .await
        .expect("body")
        .to_vec();
    write(&addr, &token, "/v1/secret/data/kms/a", 2).await;
    let resp = client()
        .post(format!("{addr}/v1/sys/storage/raft/snapshot"))
        .header("X-Vault-Token", &token)
        .body(archive)
        .send()
        .await
        .expect("POST snapshot");
    assert_eq!(resp.status().as_u16(), 204, "{:?}", resp.text().await);
    wait_status(&addr, Duration::from_secs(30), |v| v["sealed"] == false).await;
    assert_eq!(
        read_n(&addr, &token, "/v1/secret/data/kms/a").await,
        Some(1)
    );
    let log = server.log_text();
    assert!(
        log.contains("sealed after a raft snapshot restore"),
        "{log}"
    );
    assert_eq!(
        log.matches("auto-unsealed with AWS KMS").count(),
        1,
        "the loop unsealed it after the restore (init unseals without it): {log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
