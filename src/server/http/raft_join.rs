//! HTTP layer: joining a raft cluster. `sys/storage/raft/join` (on the joiner) and
//! `sys/storage/raft/bootstrap/challenge` and `.../answer` (on the active node; a standby
//! forwards them). Unauthenticated, as in Vault: a joiner has no token yet; the seal proves
//! it (see [`crate::server::core`]'s join module).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, only_write, read_json};
use crate::server::core::{AnswerRequest, JoinRequest};

#[derive(Debug, Default, Deserialize)]
struct JoinBody {
    #[serde(default)]
    leader_api_addr: String,
    #[serde(default)]
    leader_ca_cert: Option<String>,
    #[serde(default)]
    retry: bool,
    #[serde(default)]
    non_voter: bool,
}

/// `sys/storage/raft/join` on the joining node: `{"joined": true}` once the leader accepted
/// it (with `retry`, once a background loop is trying).
pub(super) async fn join(
    State(state): State<AppState>,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    only_write(&method)?;
    let b: JoinBody = read_json(&state, body).await?;
    if b.leader_api_addr.is_empty() {
        return Err(ApiError::bad_request(
            "leader_api_addr is required (for example https://sealkeep-0.sealkeep-internal:8200); auto_join is not supported",
        ));
    }
    let req = JoinRequest {
        leader_api_addr: b.leader_api_addr,
        leader_ca_cert: b.leader_ca_cert,
        retry: b.retry,
        non_voter: b.non_voter,
    };
    if req.retry {
        let core = std::sync::Arc::clone(&state.core);
        tokio::spawn(async move {
            for _ in 0..crate::server::core::JOIN_RETRY_ROUNDS {
                match core.raft_join(&req).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, leader = %req.leader_api_addr, "join failed; retrying")
                    }
                }
                tokio::time::sleep(crate::server::core::JOIN_RETRY_INTERVAL).await;
            }
        });
    } else {
        state.core.raft_join(&req).await?;
    }
    Ok(Json(json!({ "joined": true })).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ChallengeBody {
    #[serde(default)]
    server_id: String,
}

/// `sys/storage/raft/bootstrap/challenge` on the active node.
pub(super) async fn challenge(
    State(state): State<AppState>,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    only_write(&method)?;
    let b: ChallengeBody = read_json(&state, body).await?;
    let resp = state.core.raft_challenge(&b.server_id).await?;
    Ok(Json(resp).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct AnswerBody {
    #[serde(default)]
    server_id: String,
    #[serde(default)]
    answer: String,
    #[serde(default)]
    cluster_addr: String,
    #[serde(default)]
    non_voter: bool,
    #[serde(default)]
    raft_node_id: Option<u64>,
    #[serde(default)]
    api_addr: String,
}

/// `sys/storage/raft/bootstrap/answer` on the active node.
pub(super) async fn answer(
    State(state): State<AppState>,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    only_write(&method)?;
    let b: AnswerBody = read_json(&state, body).await?;
    let Some(raft_node_id) = b.raft_node_id else {
        return Err(ApiError::bad_request(
            "raft_node_id is required: this endpoint is for Sealkeep nodes joining a Sealkeep cluster",
        ));
    };
    if b.server_id.is_empty() || b.answer.is_empty() || b.cluster_addr.is_empty() {
        return Err(ApiError::bad_request(
            "server_id, answer and cluster_addr are required",
        ));
    }
    let req = AnswerRequest {
        server_id: b.server_id,
        answer: b.answer,
        cluster_addr: b.cluster_addr,
        non_voter: b.non_voter,
        raft_node_id,
        api_addr: b.api_addr,
    };
    let resp = state.core.raft_answer(&req).await?;
    Ok(Json(resp).into_response())
}
