//! HTTP layer: requests that reach a standby (an unsealed raft node that is not the leader).
//! Runs right after the front door, before routing: a standby answers only the few `sys/`
//! paths that describe the node itself, and sends everything else to the active node with a
//! **307** to the leader's `api_addr` (path and query kept), as Vault does when it does not
//! forward; with no leader known, **503**.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::path::RequestPath;
use super::{ApiError, AppState};

/// What a standby answers itself: the node's own state, and unsealing it.
const LOCAL_ON_STANDBY: &[&str] = &[
    "sys/health",
    "sys/seal-status",
    "sys/leader",
    "sys/init",
    "sys/unseal",
    "sys/seal-backend-status",
    "sys/metrics",
    "sys/storage/raft/join",
];

fn served_locally(path: &str) -> bool {
    LOCAL_ON_STANDBY.contains(&path)
}

pub(super) async fn redirect_to_active(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    // The common case (not raft, or the leader) costs one flag read.
    let standby = state.core.raft().is_some_and(|r| !r.is_leader());
    if !standby {
        return next.run(req).await;
    }
    let local = req
        .extensions()
        .get::<RequestPath>()
        .is_none_or(|p| served_locally(p.as_str()));
    // A sealed node answers as any sealed node does (503 from the handlers).
    if local || state.core.seal_status().await.sealed {
        return next.run(req).await;
    }
    let ha = state.core.ha_status();
    if ha.is_self {
        // Became the leader in between.
        return next.run(req).await;
    }
    if ha.leader_address.is_empty() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is a standby and no active node is known (an election is under way, or the cluster lost its quorum); retry shortly",
        )
        .into_response();
    }
    let target = format!(
        "{}{}",
        ha.leader_address.trim_end_matches('/'),
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    match HeaderValue::from_str(&target) {
        Ok(location) => {
            let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
            resp.headers_mut().insert(header::LOCATION, location);
            resp
        }
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the active node's api_addr {:?} is not a valid URL; fix api_addr in its config",
                ha.leader_address
            ),
        )
        .into_response(),
    }
}
