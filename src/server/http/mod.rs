//! HTTP layer: the axum router for Vault's API (`/v1/sys/*`, `/v1/secret/*`). Network I/O only
//! through axum; all state lives in the core.

mod audit;
mod auth_kubernetes;
mod caller;
mod complete;
mod envelope;
mod error;
mod health;
mod kv;
mod mounts;
pub mod path;
mod policy;
mod raft;
mod raft_join;
mod standby;
mod sys;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::de::DeserializeOwned;

pub use caller::{Authenticated, Caller, SUDO_PATHS, needs_sudo};
pub(crate) use envelope::Envelope;
pub use error::ApiError;
pub use path::RequestPath;

use crate::server::cluster::Forwarder;
use crate::server::core::Core;
use crate::server::physical::ReadFence;
use crate::telemetry::HttpLabels;

#[derive(Clone, Debug)]
pub struct AppState {
    pub core: Arc<Core>,
    /// Largest accepted request body (listener `max_request_size`).
    pub max_body: usize,
    /// Time to receive a request body (listener `http_read_timeout`); then 408 and close.
    pub body_timeout: std::time::Duration,
    /// Listener `telemetry { unauthenticated_metrics_access = true }`: metrics need no token.
    pub unauthenticated_metrics: bool,
    /// Forwards requests that reach a standby to the active node (one per server, shared by
    /// every listener).
    pub forwarder: Arc<Forwarder>,
}

/// The API: the front door ([`front_door`]: one decode of the path, then routing on
/// it), the routes, and the layers every request passes (trace, body read, metrics, the read
/// fence, audit).
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/v1/sys/init", any(sys::init))
        .route("/v1/sys/storage/raft/join", any(raft_join::join))
        .route(
            "/v1/sys/storage/raft/bootstrap/challenge",
            any(raft_join::challenge),
        )
        .route(
            "/v1/sys/storage/raft/bootstrap/answer",
            any(raft_join::answer),
        )
        .route("/v1/sys/seal-status", any(sys::seal_status))
        .route("/v1/sys/unseal", any(sys::unseal))
        .route("/v1/sys/seal", any(sys::seal))
        .route("/v1/sys/leader", any(sys::leader))
        .route("/v1/sys/rotate", any(sys::rotate))
        .route("/v1/sys/key-status", any(sys::key_status))
        .route("/v1/sys/ha-status", any(raft::ha_status))
        .route("/v1/sys/step-down", any(raft::step_down))
        .route(
            "/v1/sys/storage/raft/configuration",
            any(raft::configuration),
        )
        .route("/v1/sys/storage/raft/remove-peer", any(raft::remove_peer))
        .route("/v1/sys/storage/raft/snapshot", any(raft::snapshot))
        .route(
            "/v1/sys/storage/raft/snapshot-force",
            any(raft::snapshot_force),
        )
        .route(
            "/v1/sys/storage/raft/autopilot/state",
            any(raft::autopilot_state),
        )
        .route(
            "/v1/sys/storage/raft/autopilot/configuration",
            any(raft::autopilot_configuration),
        )
        .route("/v1/sys/health", any(health::health))
        .route(
            "/v1/sys/seal-backend-status",
            any(health::seal_backend_status),
        )
        .route("/v1/sys/metrics", any(health::metrics))
        .route("/metrics", any(health::metrics))
        .route("/v1/sys/mounts", any(mounts::list))
        .route("/v1/sys/mounts/{*path}", any(mounts::mount_path))
        .route("/v1/sys/internal/ui/mounts/{*path}", any(mounts::ui_mount))
        .route("/v1/{*path}", any(kv::logical))
        .route("/v1/sys/policies/acl", any(policy::acl_list))
        .route("/v1/sys/policies/acl/", any(policy::acl_list))
        .route("/v1/sys/policies/acl/{name}", any(policy::acl_policy))
        .route("/v1/sys/policy", any(policy::legacy_list))
        .route("/v1/sys/policy/", any(policy::legacy_list))
        .route("/v1/sys/policy/{name}", any(policy::legacy_policy))
        .route("/v1/sys/capabilities-self", any(policy::capabilities_self))
        .route("/v1/auth/token/{*op}", any(token::route))
        .route("/v1/sys/auth", any(auth_kubernetes::list_methods))
        .route("/v1/sys/auth/{*path}", any(auth_kubernetes::method))
        .route("/v1/auth/kubernetes/config", any(auth_kubernetes::config))
        .route("/v1/auth/kubernetes/role", any(auth_kubernetes::roles))
        .route("/v1/auth/kubernetes/role/", any(auth_kubernetes::roles))
        .route(
            "/v1/auth/kubernetes/role/{name}",
            any(auth_kubernetes::role),
        )
        .route("/v1/auth/kubernetes/login", any(auth_kubernetes::login))
        .route("/v1/sys/audit", any(audit::list))
        .route("/v1/sys/audit/{*path}", any(audit::device))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::middleware,
        ))
        .with_state(state.clone());
    let front_door = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(state.clone(), front_door))
        .service(routes);
    Router::new()
        .fallback_service(front_door)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn_with_state(state, read_body_first))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The front door, one layer in three steps (one layer, so a request pays for one boxed
/// `Next`, not three): decode the path once ([`path::admit`]); on a standby, hand the request
/// to the active node unless this node answers it ([`standby::serve_here`]); then run it
/// inside its storage fence (when it arrived, and the leadership its reads were confirmed
/// under: [`crate::server::physical::ReadFence`]) and to its end, even when its client goes
/// away ([`complete::Completing`]: a handler cancelled half-way could release a key lock while
/// its write is still on its way to being applied). A handler that panics answers 500 instead
/// of taking the connection down.
async fn front_door(State(state): State<AppState>, req: Request, next: Next) -> Response {
    use futures::FutureExt;
    let req = match path::admit(req) {
        Ok(req) => req,
        Err(refused) => return refused.into_response(),
    };
    let req = match standby::serve_here(&state, req).await {
        Ok(req) => req,
        Err(answered) => return answered,
    };
    let request = std::panic::AssertUnwindSafe(ReadFence::scope(next.run(req))).catch_unwind();
    match complete::Completing::new(request).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::error!("a request handler panicked (its message is above in the log)");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request handler failed (see the server log); whether the request took effect is unknown: read the data back before you retry it",
            )
            .into_response()
        }
    }
}

/// Reads the whole request body (up to `max_request_size`) before any handler runs. A handler
/// that refuses a request early (a 403 from the ACL) would otherwise answer before the body
/// arrived, and hyper would drop the keep-alive connection under the client, which Vault
/// clients do not expect (Go's server drains unread bodies). Too large: 413 and close. Not in
/// within the listener's `http_read_timeout`: 408 and close, so a slow body cannot hold the
/// connection (and up to `max_request_size` of memory) for long.
async fn read_body_first(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, state.max_body);
    let mut resp = match tokio::time::timeout(state.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
        Ok(Err(_)) => too_large(&state).into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s; send it faster, or raise http_read_timeout in the listener block",
                state.body_timeout.as_secs_f64()
            ),
        )
        .into_response(),
    };
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    state
        .core
        .metrics()
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            code: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Whether `method` writes (Vault takes PUT and POST alike).
pub(crate) fn is_write(method: &axum::http::Method) -> bool {
    method == axum::http::Method::PUT || method == axum::http::Method::POST
}

/// 405 unless the method is GET.
pub(crate) fn only_get(method: &axum::http::Method) -> Result<(), ApiError> {
    if method == axum::http::Method::GET {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed())
    }
}

/// 405 unless the method is PUT or POST.
pub(crate) fn only_write(method: &axum::http::Method) -> Result<(), ApiError> {
    if is_write(method) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed())
    }
}

/// Anything not routed: 503 while sealed (outside sys/), else Vault's "no handler" 404.
async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    let path = match req.extensions().get::<RequestPath>() {
        Some(p) => p.as_str().to_owned(),
        None => req.uri().path().to_owned(),
    };
    if !path.starts_with("sys/") && state.core.unsealed().await.is_err() {
        return ApiError::sealed().into_response();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no handler for route {path:?}. route entry not found."),
    )
    .into_response()
}

/// The client token from `X-Vault-Token` or `Authorization: Bearer`.
pub(crate) fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// 413 for a body over the listener's `max_request_size`.
pub(crate) fn too_large(state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body is larger than the {} byte limit; send less, or raise max_request_size in the listener block",
            state.max_body
        ),
    )
}

/// Reads a JSON body with the size limit. An empty body is `T::default()`, as Vault allows.
pub(crate) async fn read_json<T: DeserializeOwned + Default>(
    state: &AppState,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, state.max_body).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is larger than the {} byte limit; send less, or raise max_request_size in the listener block",
                state.max_body
            ),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("failed to parse JSON input: {e}")))
}

/// Vault's `LIST` verb, or `GET ?list=true`.
pub(crate) fn is_list(method: &Method, query: Option<&str>) -> bool {
    method.as_str() == "LIST"
        || (method == Method::GET
            && query.is_some_and(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .any(|(k, v)| k == "list" && (v == "true" || v == "1"))
            }))
}

#[cfg(test)]
mod tests;
