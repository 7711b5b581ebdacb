//! Router tests of the HA and raft administration endpoints: a one-node raft core in a
//! temporary directory (shamir seal), and an in-memory core for the "raft not in use" answers.
//! Bad input for every endpoint; snapshot save and restore, and sudo, in [`snapshot`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

use super::{MAX_BODY, TestServer, key};
use crate::server::core::{Core, SealBackend};
use crate::server::http::{AppState, router};
use crate::server::physical::{NodeInfo, Physical, RaftBackend, RaftTiming};
use crate::telemetry::ServerMetrics;

const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/v1/sys/ha-status"),
    ("PUT", "/v1/sys/step-down"),
    ("GET", "/v1/sys/storage/raft/configuration"),
    ("POST", "/v1/sys/storage/raft/remove-peer"),
    ("GET", "/v1/sys/storage/raft/snapshot"),
    ("POST", "/v1/sys/storage/raft/snapshot"),
    ("POST", "/v1/sys/storage/raft/snapshot-force"),
    ("GET", "/v1/sys/storage/raft/autopilot/state"),
    ("GET", "/v1/sys/storage/raft/autopilot/configuration"),
    ("POST", "/v1/sys/storage/raft/autopilot/configuration"),
];

/// A raft-backed test server, unsealed, with its root token and unseal key.
pub(super) async fn raft_server() -> (TestServer, String, String, TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let timing = RaftTiming {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(300),
        election_max: Duration::from_millis(600),
    };
    let node = NodeInfo {
        name: "sealkeep-0".into(),
        api_addr: "http://127.0.0.1:8200".into(),
        cluster_addr: "https://127.0.0.1:8201".into(),
    };
    let raft = RaftBackend::open(dir.path(), None, node, timing)
        .await
        .expect("open raft");
    let physical: Arc<dyn Physical> = Arc::new(raft.clone());
    let core = Core::new_raft(
        raft,
        Vec::new(),
        SealBackend::Shamir,
        ServerMetrics::new(),
        None,
    )
    .await
    .expect("core");
    let app = router(AppState {
        core: Arc::clone(&core),
        max_body: MAX_BODY,
        body_timeout: Duration::from_secs(30),
        unauthenticated_metrics: false,
        forwarder: Arc::default(),
    });
    let s = TestServer {
        app,
        core,
        physical,
    };
    let init = s.init(1, 1).await;
    let unseal_key = key(&init, 0);
    let (st, v) = s.unseal(&unseal_key).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let root = init["root_token"].as_str().expect("root").to_owned();
    (s, root, unseal_key, dir)
}

/// A request with a raw (binary) body; returns the status and the raw response body.
pub(super) async fn raw(
    s: &TestServer,
    method: &str,
    uri: &str,
    token: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("X-Vault-Token", token)
        .body(Body::from(body))
        .expect("request");
    let resp = s.app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, bytes.to_vec())
}

fn error_text(v: &Value) -> String {
    v["errors"].to_string()
}

#[tokio::test]
async fn every_endpoint_says_raft_is_not_in_use_on_other_storage() {
    let (s, root) = TestServer::unsealed().await;
    for (method, uri) in ENDPOINTS {
        let (st, v) = s.call(method, uri, Some(&root), Some("{}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{method} {uri}: {v}");
        assert!(
            error_text(&v).contains("raft storage is not in use"),
            "{method} {uri}: {v}"
        );
        // Without a token: refused before anything else.
        let (st, _) = s.call(method, uri, None, Some("{}")).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_and_missing_tokens_are_refused() {
    let (s, root, _, _dir) = raft_server().await;
    for (method, uri) in ENDPOINTS {
        let (st, _) = s.call(method, uri, None, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {uri}");
    }
    for (method, uri) in [
        ("DELETE", "/v1/sys/ha-status"),
        ("GET", "/v1/sys/step-down"),
        ("POST", "/v1/sys/storage/raft/configuration"),
        ("GET", "/v1/sys/storage/raft/remove-peer"),
        ("DELETE", "/v1/sys/storage/raft/snapshot"),
        ("GET", "/v1/sys/storage/raft/snapshot-force"),
        ("POST", "/v1/sys/storage/raft/autopilot/state"),
        ("DELETE", "/v1/sys/storage/raft/autopilot/configuration"),
    ] {
        let (st, v) = s.call(method, uri, Some(&root), None).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_ha_status_step_down_and_autopilot_state_on_one_node() {
    let (s, root, _, _dir) = raft_server().await;
    let (st, v) = s
        .call(
            "GET",
            "/v1/sys/storage/raft/configuration",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let servers = v["data"]["config"]["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 1, "{v}");
    assert_eq!(
        servers[0],
        json!({"node_id": "sealkeep-0", "address": "127.0.0.1:8201", "leader": true,
               "protocol_version": "3", "voter": true})
    );
    assert!(v["data"]["config"]["index"].is_u64(), "{v}");

    let (st, v) = s.call("GET", "/v1/sys/ha-status", Some(&root), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["nodes"], v["data"]["nodes"], "{v}");
    let n = &v["data"]["nodes"][0];
    assert_eq!(n["hostname"], "sealkeep-0", "{v}");
    assert_eq!(n["api_address"], "http://127.0.0.1:8200", "{v}");
    assert_eq!(n["cluster_address"], "https://127.0.0.1:8201", "{v}");
    assert_eq!(n["active_node"], true, "{v}");
    assert_eq!(n["last_echo"], Value::Null, "{v}");

    // A lone voter stays active, as Vault's single node does.
    let (st, v) = s.call("PUT", "/v1/sys/step-down", Some(&root), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    assert!(s.core.ha_status().is_self);

    let (st, v) = s
        .call(
            "GET",
            "/v1/sys/storage/raft/autopilot/state",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let d = &v["data"];
    assert_eq!(d["healthy"], true, "{v}");
    assert_eq!(d["failure_tolerance"], 0, "{v}");
    assert_eq!(d["leader"], "sealkeep-0", "{v}");
    assert_eq!(d["voters"], json!(["sealkeep-0"]), "{v}");
    let me = &d["servers"]["sealkeep-0"];
    assert_eq!(me["status"], "leader", "{v}");
    assert_eq!(me["node_status"], "alive", "{v}");
    assert_eq!(me["last_contact"], "0s", "{v}");
    assert!(me["last_index"].as_u64() > Some(0), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_peer_bad_input() {
    let (s, root, _, _dir) = raft_server().await;
    let uri = "/v1/sys/storage/raft/remove-peer";
    for (body, needle) in [
        ("", "missing server_id"),
        ("{}", "missing server_id"),
        ("{\"server_id\": \"  \"}", "missing server_id"),
        ("{\"server_id\": 5}", "failed to parse JSON"),
        ("{\"server\": \"x\"}", "failed to parse JSON"),
        ("not json", "failed to parse JSON"),
        (
            "{\"server_id\": \"nobody\"}",
            "no raft peer has server_id \\\"nobody\\\"",
        ),
        ("{\"server_id\": \"sealkeep-0\"}", "cannot remove itself"),
    ] {
        let (st, v) = s.call("POST", uri, Some(&root), Some(body)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(error_text(&v).contains(needle), "{body}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autopilot_configuration_round_trip_and_bad_input() {
    let (s, root, _, _dir) = raft_server().await;
    let uri = "/v1/sys/storage/raft/autopilot/configuration";
    let (st, v) = s.call("GET", uri, Some(&root), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["cleanup_dead_servers"], false, "{v}");
    assert_eq!(
        v["data"]["dead_server_last_contact_threshold"], "24h0m0s",
        "{v}"
    );
    for (body, needle) in [
        ("[1]", "failed to parse JSON"),
        ("{\"cleanup_dead_servers\": true}", "min_quorum"),
        ("{\"max_trailing_logs\": \"many\"}", "max_trailing_logs"),
        (
            "{\"server_stabilization_time\": \"later\"}",
            "server_stabilization_time",
        ),
        ("{\"nope\": 1}", "unknown autopilot configuration field"),
    ] {
        let (st, v) = s.call("POST", uri, Some(&root), Some(body)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(error_text(&v).contains(needle), "{body}: {v}");
    }
    let body =
        json!({"cleanup_dead_servers": true, "min_quorum": 3, "last_contact_threshold": "5s"});
    let (st, v) = s
        .call("POST", uri, Some(&root), Some(&body.to_string()))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (_, v) = s.call("GET", uri, Some(&root), None).await;
    assert_eq!(v["data"]["cleanup_dead_servers"], true, "{v}");
    assert_eq!(v["data"]["min_quorum"], 3, "{v}");
    assert_eq!(v["data"]["last_contact_threshold"], "5s", "{v}");
    assert_eq!(v["data"]["server_stabilization_time"], "10s", "kept: {v}");
    // Stored behind the barrier: the physical value is not JSON.
    let stored = s
        .physical
        .get("core/raft/autopilot")
        .await
        .expect("get")
        .expect("stored");
    assert!(serde_json::from_slice::<Value>(&stored).is_err());
}

mod snapshot;

/// A leader whose term of office changed (it lost office and won it back) serves nothing from
/// the state it loaded in the earlier term until the HA loop has reloaded it: another leader
/// may have changed the mount table, policies or audit devices in between. (A one-node leader
/// cannot be made to lose office here, so the state is marked as loaded in an earlier term.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_loaded_in_an_earlier_term_serves_nothing_until_reloaded() {
    let (s, root, _key, _dir) = raft_server().await;
    let body = json!({"data": {"v": 1}}).to_string();
    let (st, v) = s
        .call("POST", "/v1/secret/data/k", Some(&root), Some(&body))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let now = s.core.raft().expect("raft").leadership().expect("leads");
    let earlier = crate::server::physical::Leadership {
        term: now.term - 1,
        ..now
    };
    assert!(s.core.mark_loaded_under(earlier).await, "a serving state");

    // No HA loop runs in this test server yet: the state must not serve.
    let (st, v) = s.call("GET", "/v1/secret/data/k", Some(&root), None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");

    // The HA loop reloads it under the current term, and it serves again.
    let ha = s.core.spawn_ha().expect("raft has an HA loop");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (st, v) = s.call("GET", "/v1/secret/data/k", Some(&root), None).await;
        if st == StatusCode::OK {
            assert_eq!(v["data"]["data"]["v"], 1, "{v}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not serving again: {st} {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ha.abort();
}
