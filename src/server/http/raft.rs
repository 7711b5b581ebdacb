//! HTTP layer: Vault's HA and integrated-storage administration endpoints: `sys/ha-status`,
//! `sys/step-down`, `sys/storage/raft/configuration`, `remove-peer`, `snapshot`,
//! `snapshot-force`, `autopilot/state` and `autopilot/configuration`. Every handler takes a
//! [`Caller`] (token and ACL, `sudo` where [`super::SUDO_PATHS`] says); the work is in
//! `core::raft_admin` and the raft backend. On storage other than raft each one answers 400
//! "raft storage is not in use". No I/O of its own.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, AppState, Caller, Envelope, only_get, only_write, read_json};
use crate::server::core::VERSION;
use crate::server::core::autopilot::{AutopilotConfig, go_duration};
use crate::server::physical::{RaftClusterState, RaftServerState};

/// The host:port of a `cluster_addr` URL (Vault's configuration `address`).
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `sys/ha-status`: every member with its addresses; `last_echo` is when the active node last
/// heard from it (null for the active node itself, as in Vault).
pub(super) async fn ha_status(
    State(state): State<AppState>,
    _caller: Caller,
    method: Method,
) -> Result<Response, ApiError> {
    only_get(&method)?;
    let raft = state.core.raft_storage()?;
    let cluster = raft.cluster_state();
    let now = SystemTime::now();
    let nodes: Vec<Value> = cluster
        .servers
        .iter()
        .map(|s| {
            let last_echo = match (s.leader, s.last_contact) {
                (false, Some(d)) => json!(rfc3339(now - d)),
                _ => Value::Null,
            };
            json!({
                "hostname": s.node.name,
                "api_address": s.node.api_addr,
                "cluster_address": s.node.cluster_addr,
                "active_node": s.leader,
                "last_echo": last_echo,
                // Only this node's own version is known (no echo protocol carries it yet).
                "version": if s.id == cluster.node_id { VERSION } else { "" },
            })
        })
        .collect();
    Ok(Envelope::new(json!({ "nodes": nodes }))
        .inject_data()
        .into_response())
}

/// `sys/step-down` (`update` and `sudo`): 204 once leadership moved, or at once on a lone voter.
pub(super) async fn step_down(
    State(state): State<AppState>,
    _caller: Caller,
    method: Method,
) -> Result<Response, ApiError> {
    only_write(&method)?;
    state.core.step_down().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `sys/storage/raft/configuration`.
pub(super) async fn configuration(
    State(state): State<AppState>,
    _caller: Caller,
    method: Method,
) -> Result<Response, ApiError> {
    only_get(&method)?;
    let raft = state.core.raft_storage()?;
    let cluster = raft.cluster_state();
    let servers: Vec<Value> = cluster
        .servers
        .iter()
        .map(|s| {
            json!({
                "node_id": s.node.name,
                "address": host_port(&s.node.cluster_addr),
                "leader": s.leader,
                "protocol_version": "3",
                "voter": s.voter,
            })
        })
        .collect();
    let data = json!({
        "config": { "index": cluster.membership_index, "servers": servers }
    });
    Ok(Envelope::new(data).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemovePeer {
    server_id: Option<String>,
    /// Vault's `dr_operation_token` (DR replication only); accepted and ignored.
    #[allow(dead_code)]
    dr_operation_token: Option<String>,
}

/// `sys/storage/raft/remove-peer {server_id}` (`update` and `sudo`).
pub(super) async fn remove_peer(
    State(state): State<AppState>,
    _caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    only_write(&method)?;
    state.core.raft_storage()?;
    let req: RemovePeer = read_json(&state, body).await?;
    let id = req.server_id.unwrap_or_default();
    if id.trim().is_empty() {
        return Err(ApiError::bad_request(
            "missing server_id: send {\"server_id\": \"<node_id from sys/storage/raft/configuration>\"}",
        ));
    }
    state.core.remove_raft_peer(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET sys/storage/raft/snapshot` (`read` and `sudo`) streams the archive;
/// `POST` restores one (`update` and `sudo`), with the keyring check.
pub(super) async fn snapshot(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    if method == Method::GET {
        let bytes = state.core.raft_snapshot().await?;
        return Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"sealkeep-raft.snap\"",
                ),
            ],
            bytes,
        )
            .into_response());
    }
    restore(&state, &caller, &method, body, false).await
}

/// `POST sys/storage/raft/snapshot-force` (`update` and `sudo`): restore without the check.
pub(super) async fn snapshot_force(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    restore(&state, &caller, &method, body, true).await
}

async fn restore(
    state: &AppState,
    caller: &Caller,
    method: &Method,
    body: Body,
    force: bool,
) -> Result<Response, ApiError> {
    only_write(method)?;
    state.core.raft_storage()?;
    let bytes = axum::body::to_bytes(body, state.max_body)
        .await
        .map_err(|_| super::too_large(state))?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send the snapshot file saved from GET sys/storage/raft/snapshot as the body",
        ));
    }
    state
        .core
        .restore_raft_snapshot(&caller.unsealed, &bytes, force)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One server of autopilot's state.
fn server_state(
    s: &RaftServerState,
    cluster: &RaftClusterState,
    config: &AutopilotConfig,
    stable_since: SystemTime,
) -> (bool, Value) {
    let alive = s
        .last_contact
        .is_some_and(|d| d <= config.dead_server_last_contact_threshold);
    let trailing = s
        .matched
        .map(|(index, _)| cluster.last_log_index.saturating_sub(index));
    let healthy = s
        .last_contact
        .is_some_and(|d| d <= config.last_contact_threshold)
        && trailing.is_some_and(|t| t <= config.max_trailing_logs);
    let status = if s.leader {
        "leader"
    } else if s.voter {
        "voter"
    } else {
        "non-voter"
    };
    let (last_index, last_term) = s.matched.unwrap_or((0, 0));
    let v = json!({
        "id": s.node.name,
        "name": s.node.name,
        "address": host_port(&s.node.cluster_addr),
        "node_status": if alive { "alive" } else { "failed" },
        "last_contact": go_duration(s.last_contact.unwrap_or(Duration::ZERO)),
        "last_term": last_term,
        "last_index": last_index,
        "healthy": healthy,
        "stable_since": rfc3339(stable_since),
        "status": status,
        "node_type": if s.voter { "voter" } else { "non-voter" },
        "version": if s.id == cluster.node_id { VERSION } else { "" },
        "meta": Value::Null,
    });
    (healthy, v)
}

/// `sys/storage/raft/autopilot/state`, computed on the active node from raft's replication
/// progress and the stored autopilot configuration.
pub(super) async fn autopilot_state(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
) -> Result<Response, ApiError> {
    only_get(&method)?;
    let raft = state.core.raft_storage()?;
    let config = AutopilotConfig::load(&caller.unsealed.barrier).await?;
    let cluster = raft.cluster_state();
    // Per-server stability is not tracked yet (the promotion loop will); report when this
    // node became active as the earliest time anything is known to be stable.
    let since = caller.unsealed.unsealed_at;
    let mut servers = Map::new();
    let (mut voters, mut non_voters) = (Vec::new(), Vec::new());
    let mut healthy_voters = 0usize;
    let mut all_healthy = true;
    let mut leader = String::new();
    for s in &cluster.servers {
        let (healthy, v) = server_state(s, &cluster, &config, since);
        all_healthy &= healthy;
        if s.voter {
            voters.push(s.node.name.clone());
            healthy_voters += usize::from(healthy);
        } else {
            non_voters.push(s.node.name.clone());
        }
        if s.leader {
            leader = s.node.name.clone();
        }
        servers.insert(s.node.name.clone(), v);
    }
    let quorum = voters.len() / 2 + 1;
    let data = json!({
        "healthy": all_healthy && cluster.is_leader,
        "failure_tolerance": healthy_voters.saturating_sub(quorum),
        "leader": leader,
        "voters": voters,
        "non_voters": if non_voters.is_empty() { Value::Null } else { json!(non_voters) },
        "servers": servers,
    });
    Ok(Envelope::new(data).into_response())
}

/// `sys/storage/raft/autopilot/configuration`: GET reads, POST/PUT changes the given fields.
pub(super) async fn autopilot_configuration(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    state.core.raft_storage()?;
    let barrier = &caller.unsealed.barrier;
    if method == Method::GET {
        let config = AutopilotConfig::load(barrier).await?;
        return Ok(Envelope::new(config.to_json()).into_response());
    }
    only_write(&method)?;
    let update: Option<Map<String, Value>> = read_json(&state, body).await?;
    let current = AutopilotConfig::load(barrier).await?;
    let next = current
        .updated(&update.unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    next.save(barrier).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn cluster_addresses_become_host_port() {
        assert_eq!(host_port("https://10.0.0.1:8201"), "10.0.0.1:8201");
        assert_eq!(host_port("https://vault-0.x:8201/"), "vault-0.x:8201");
        assert_eq!(host_port("10.0.0.1:8201"), "10.0.0.1:8201");
    }
}
