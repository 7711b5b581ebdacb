//! HTTP layer: requests that reach a standby (an unsealed raft node that is not the leader).
//! The front door's second step, before routing (the body is already read by
//! `read_body_first`): a standby answers only the few `sys/` paths that describe the node
//! itself, and forwards everything else to the active node over the cluster port
//! ([`crate::server::cluster::Forwarder`]), relaying its answer. It answers with a **307** to
//! the leader's `api_addr` (path and query kept) instead when the client sent
//! `X-Vault-No-Request-Forwarding`, for raft snapshots (Vault's `alwaysRedirectPaths`), when the
//! request was itself forwarded here, when forwarding is not available yet, or when it fails;
//! with no leader known, **503**. As in Vault
//! (`notes/ha.md` 1.3). Network I/O only through the forwarder.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::path::RequestPath;
use super::{ApiError, AppState};
use crate::server::cluster::forward::{FORWARDED_HEADER, Forwarded};
use crate::server::cluster::{ForwardError, ForwardedRequest};
use crate::server::core::HaStatus;

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

/// Always sent with a 307, never forwarded (Vault's `alwaysRedirectPaths`): snapshots stream
/// bodies larger and longer than the cluster port's bounds allow.
const ALWAYS_REDIRECT: &[&str] = &[
    "sys/storage/raft/snapshot",
    "sys/storage/raft/snapshot-force",
];

/// The client asks a standby not to forward (Vault's header; any non-empty value).
const NO_FORWARDING_HEADER: &str = "x-vault-no-request-forwarding";

fn served_locally(path: &str) -> bool {
    LOCAL_ON_STANDBY.contains(&path)
}

/// What a standby does with a request it does not serve itself.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// Forward to this cluster address; on failure, redirect to the api address (503 when
    /// it is unknown).
    Forward { cluster_addr: String },
    /// 307 to the leader's api_addr.
    Redirect,
    /// 503: no active node is known.
    Unavailable,
}

/// The choice, from the leader as this node knows it and whether this request may be forwarded
/// (the client allows it, it was not forwarded already, the forwarder is ready).
fn route(ha: &HaStatus, may_forward: bool) -> Route {
    if may_forward && !ha.leader_cluster_address.is_empty() {
        Route::Forward {
            cluster_addr: ha.leader_cluster_address.clone(),
        }
    } else if ha.leader_address.is_empty() {
        Route::Unavailable
    } else {
        Route::Redirect
    }
}

/// Whether the path, the client and the request's origin allow forwarding it.
fn forwarding_allowed(parts: &Parts) -> bool {
    let redirect_only = parts
        .extensions
        .get::<RequestPath>()
        .is_some_and(|p| ALWAYS_REDIRECT.contains(&p.as_str()));
    let opted_out = parts
        .headers
        .get(NO_FORWARDING_HEADER)
        .is_some_and(|v| !v.as_bytes().is_empty());
    let already_forwarded = parts.extensions.get::<Forwarded>().is_some()
        || parts.headers.contains_key(FORWARDED_HEADER);
    !redirect_only && !opted_out && !already_forwarded
}

/// The front door's second step: `Ok` with the request when this node serves it (not raft, the
/// leader, a sealed node, or a path a standby answers itself); otherwise the answer of the
/// active node (forwarded), a 307 to it, or a 503.
pub(super) async fn serve_here(state: &AppState, req: Request) -> Result<Request, Response> {
    // The common case (not raft, or the leader) costs one flag read.
    let standby = state.core.raft().is_some_and(|r| !r.is_leader());
    if !standby {
        return Ok(req);
    }
    let local = req
        .extensions()
        .get::<RequestPath>()
        .is_none_or(|p| served_locally(p.as_str()));
    // A sealed node answers as any sealed node does (503 from the handlers).
    if local || state.core.seal_status().await.sealed {
        return Ok(req);
    }
    let ha = state.core.ha_status();
    if ha.is_self {
        // Became the leader in between.
        return Ok(req);
    }
    Err(relay(state, &ha, req).await)
}

/// Forwards, redirects or refuses a request this standby does not serve.
async fn relay(state: &AppState, ha: &HaStatus, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let may_forward = forwarding_allowed(&parts) && state.forwarder.is_ready();
    match route(ha, may_forward) {
        Route::Unavailable => unavailable(),
        Route::Redirect => redirect(ha, &parts),
        Route::Forward { cluster_addr } => {
            // Already in memory: read_body_first ran before this layer.
            let body = match axum::body::to_bytes(body, state.max_body).await {
                Ok(b) => b,
                Err(_) => return super::too_large(state).into_response(),
            };
            let forwarded = ForwardedRequest {
                method: parts.method.clone(),
                path_and_query: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
                headers: parts.headers.clone(),
                body,
                client_addr: parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0),
            };
            match state.forwarder.forward(&cluster_addr, forwarded).await {
                Ok(resp) => resp,
                Err(e) => {
                    // No path, token or body in the log: only the method and the failure.
                    tracing::warn!(method = %parts.method, error = %e, "request forwarding failed");
                    // The leader may already have applied a write whose forward broke: a
                    // redirect would make the client send it again.
                    if let Some(status) = indeterminate(&e)
                        && !is_read(&parts.method)
                    {
                        return ApiError::new(
                            status,
                            format!(
                                "{e}; the active node may or may not have applied this request: read the data back before you retry it"
                            ),
                        )
                        .into_response();
                    }
                    if ha.leader_address.is_empty() {
                        unavailable()
                    } else {
                        redirect(ha, &parts)
                    }
                }
            }
        }
    }
}

fn unavailable() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "this node is a standby and no active node is known (an election is under way, or the cluster lost its quorum); retry shortly",
    )
    .into_response()
}

/// 307 to the same path and query on the leader's api_addr.
fn redirect(ha: &HaStatus, parts: &Parts) -> Response {
    let target = format!(
        "{}{}",
        ha.leader_address.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
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

/// A forward that broke after the request left: 502 when the connection broke, 504 when the
/// leader did not answer in time; `None` when the request never reached the leader.
fn indeterminate(e: &ForwardError) -> Option<StatusCode> {
    match e {
        ForwardError::Request(_) => Some(StatusCode::BAD_GATEWAY),
        ForwardError::Timeout { .. } => Some(StatusCode::GATEWAY_TIMEOUT),
        _ => None,
    }
}

/// Methods that change nothing, which a client may safely send again after a redirect.
fn is_read(method: &axum::http::Method) -> bool {
    method == axum::http::Method::GET
        || method == axum::http::Method::HEAD
        || method.as_str() == "LIST"
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn parts_of(req: axum::http::Request<Body>) -> Parts {
        req.into_parts().0
    }

    fn ha(api: &str, cluster: &str) -> HaStatus {
        HaStatus {
            ha_enabled: true,
            leader_address: api.into(),
            leader_cluster_address: cluster.into(),
            ..HaStatus::default()
        }
    }

    #[test]
    fn a_standby_forwards_when_it_can_else_redirects_else_503() {
        let both = ha("https://a:8200", "https://a:8201");
        let fwd = Route::Forward {
            cluster_addr: "https://a:8201".into(),
        };
        assert_eq!(route(&both, true), fwd);
        assert_eq!(route(&both, false), Route::Redirect);
        assert_eq!(route(&ha("https://a:8200", ""), true), Route::Redirect);
        assert_eq!(route(&ha("", ""), true), Route::Unavailable);
        assert_eq!(route(&ha("", ""), false), Route::Unavailable);
        // Forwarding needs only the cluster address; a failure then answers 503.
        assert_eq!(route(&ha("", "https://a:8201"), true), fwd);
    }

    #[test]
    fn opting_out_and_forwarded_requests_are_not_forwarded() {
        let req = |h: Option<(&str, &str)>| {
            let mut b = axum::http::Request::builder().uri("/v1/secret/data/a");
            if let Some((k, v)) = h {
                b = b.header(k, v);
            }
            b.body(Body::empty()).expect("request")
        };
        assert!(forwarding_allowed(&parts_of(req(None))));
        assert!(forwarding_allowed(&parts_of(req(Some((
            NO_FORWARDING_HEADER,
            ""
        ))))));
        assert!(!forwarding_allowed(&parts_of(req(Some((
            "X-Vault-No-Request-Forwarding",
            "true"
        ))))));
        assert!(!forwarding_allowed(&parts_of(req(Some((
            FORWARDED_HEADER,
            "1"
        ))))));
        let mut marked = req(None);
        marked.extensions_mut().insert(Forwarded);
        assert!(!forwarding_allowed(&parts_of(marked)));
        for (path, allowed) in [
            ("sys/storage/raft/snapshot", false),
            ("sys/storage/raft/snapshot-force", false),
            ("sys/storage/raft/configuration", true),
            ("secret/data/sys/storage/raft/snapshot", true),
        ] {
            let mut r = req(None);
            r.extensions_mut()
                .insert(RequestPath::decode(path).expect("path"));
            assert_eq!(forwarding_allowed(&parts_of(r)), allowed, "{path}");
        }
    }
}
