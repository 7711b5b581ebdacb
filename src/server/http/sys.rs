//! HTTP layer: `sys/init`, `sys/seal-status`, `sys/unseal`, `sys/seal`, `sys/leader`,
//! `sys/rotate`, `sys/key-status`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Caller, is_write, read_json};
use crate::server::core::{InitRequest, SealStatus, VERSION};

pub const BUILD_DATE: &str = env!("SEALKEEP_BUILD_DATE");

pub(super) fn seal_status_json(st: &SealStatus) -> Value {
    let mut v = json!({
        "type": st.seal_type.as_str(),
        "initialized": st.initialized,
        "sealed": st.sealed,
        "t": st.t,
        "n": st.n,
        "progress": st.progress,
        "nonce": st.nonce,
        "version": VERSION,
        "build_date": BUILD_DATE,
        "migration": false,
        "recovery_seal": st.recovery_seal,
        "storage_type": st.storage_type,
        "removed_from_cluster": false,
    });
    if let Some(c) = &st.cluster {
        v["cluster_name"] = json!(c.cluster_name);
        v["cluster_id"] = json!(c.cluster_id);
    }
    v
}

pub(super) async fn init(
    State(state): State<AppState>,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    if method == Method::GET {
        let st = state.core.seal_status().await;
        return Ok(Json(json!({ "initialized": st.initialized })).into_response());
    }
    if !is_write(&method) {
        return Err(ApiError::method_not_allowed());
    }
    let req: InitRequest = read_json(&state, body).await?;
    let resp = state.core.initialize(req).await?;
    Ok(Json(&resp).into_response())
}

pub(super) async fn seal_status(
    State(state): State<AppState>,
    method: Method,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let st = state.core.seal_status().await;
    Ok(Json(seal_status_json(&st)).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct UnsealRequest {
    key: Option<String>,
    #[serde(default)]
    reset: bool,
    #[serde(default)]
    migrate: bool,
}

pub(super) async fn unseal(
    State(state): State<AppState>,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_write(&method) {
        return Err(ApiError::method_not_allowed());
    }
    let req: UnsealRequest = read_json(&state, body).await?;
    if req.migrate {
        return Err(ApiError::bad_request(
            "seal migration is not supported by Sealkeep",
        ));
    }
    let st = state
        .core
        .unseal_share(req.key.as_deref(), req.reset)
        .await?;
    Ok(Json(seal_status_json(&st)).into_response())
}

/// `sys/seal`: the caller needs `update` and `sudo` on `sys/seal` (checked by the [`Caller`]).
pub(super) async fn seal(
    State(state): State<AppState>,
    _caller: Caller,
    method: Method,
) -> Result<Response, ApiError> {
    if !is_write(&method) {
        return Err(ApiError::method_not_allowed());
    }
    state.core.seal().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn leader(
    State(state): State<AppState>,
    method: Method,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    if state.core.seal_status().await.sealed {
        return Err(ApiError::sealed());
    }
    let ha = state.core.ha_status();
    let mut body = json!({
        "ha_enabled": ha.ha_enabled,
        "is_self": ha.is_self,
        "active_time": "0001-01-01T00:00:00Z",
        "leader_address": ha.leader_address,
        "leader_cluster_address": ha.leader_cluster_address,
        "performance_standby": false,
        "performance_standby_last_remote_wal": 0,
    });
    // As Vault: the raft indexes only with integrated storage.
    if ha.ha_enabled {
        body["raft_committed_index"] = json!(ha.raft_committed_index);
        body["raft_applied_index"] = json!(ha.raft_applied_index);
        // Not in Vault's answer: the term this node is in, for tests/jepsen's leader check.
        body["raft_term"] = json!(ha.raft_term);
    }
    Ok(Json(body).into_response())
}

/// `sys/rotate`: `update` and `sudo` (checked by the [`Caller`]).
pub(super) async fn rotate(
    State(state): State<AppState>,
    _caller: Caller,
    method: Method,
) -> Result<Response, ApiError> {
    if !is_write(&method) {
        return Err(ApiError::method_not_allowed());
    }
    state.core.rotate().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `sys/key-status`: `read` and `sudo` (checked by the [`Caller`]).
pub(super) async fn key_status(caller: Caller, method: Method) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let ring = caller.unsealed.barrier.keyring();
    let installed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ring.install_time());
    let body = json!({
        "term": ring.active_term(),
        "install_time": humantime::format_rfc3339_seconds(installed).to_string(),
        "encryptions": ring.encryptions(),
    });
    Ok(Json(json!({
        "term": body["term"],
        "install_time": body["install_time"],
        "encryptions": body["encryptions"],
        "data": body,
    }))
    .into_response())
}
