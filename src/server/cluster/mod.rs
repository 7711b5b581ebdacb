//! Cluster layer: the cluster port (Vault's 8201), HTTP/2 over mutual TLS between the nodes of
//! one raft cluster. Does network I/O.
//!
//! - [`tls`]: the cluster CA ([`ClusterTls`]) and each node's certificate ([`NodeTls`]).
//! - [`listener`]: binds `cluster_address` and serves a router to peers that present a cluster
//!   certificate ([`ClusterListener`]); [`router`] mounts the raft RPC route and is extended
//!   by later steps (request forwarding) with more routes.
//! - [`client`]: one pooled HTTP/2 connection per peer ([`PeerClient`]).
//! - [`forward`]: request forwarding from a standby to the active node ([`Forwarder`] on the
//!   standby, [`forward_routes`] merged into the active node's cluster router).
//!
//! Nothing here knows raft's types: raft RPCs arrive and leave as opaque bytes, handled by a
//! [`RaftRpcService`] that the raft storage provides.

pub mod client;
pub mod forward;
pub mod listener;
pub mod tls;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;

pub use self::client::{ClientError, PeerClient};
pub use self::forward::{ForwardError, ForwardedRequest, Forwarder, forward_routes};
pub use self::listener::{ClusterListener, ListenerLimits};
pub use self::tls::{ClusterTls, NodeTls, TlsError};

/// The path of the raft RPC route: one encoded RPC in the body, its encoded reply back.
pub const RAFT_RPC_PATH: &str = "/v1/raft/rpc";

/// Handles raft RPCs arriving on the cluster port. The raft storage implements it; the bytes
/// come from an authenticated peer but are still parsed as untrusted input (no panics).
#[async_trait]
pub trait RaftRpcService: Send + Sync + 'static {
    /// Handles one encoded RPC and returns the encoded reply (a refusal when it cannot be
    /// decoded or handled).
    async fn handle(&self, request: Bytes) -> Vec<u8>;
}

/// The cluster port's router with the raft RPC route. Later steps `merge` their routes into
/// it. Body size and read time are bounded by the listener ([`ListenerLimits`]).
pub fn router(raft: Arc<dyn RaftRpcService>) -> Router {
    Router::new()
        .route(RAFT_RPC_PATH, post(raft_rpc))
        .with_state(raft)
}

async fn raft_rpc(State(raft): State<Arc<dyn RaftRpcService>>, body: Bytes) -> Response {
    let reply = raft.handle(body).await;
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        reply,
    )
        .into_response()
}

/// A peer's cluster address (`cluster_addr`), as `https://HOST:PORT`, `HOST:PORT` or
/// `https://[IPv6]:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterAddr {
    host: String,
    port: u16,
}

/// A `cluster_addr` that cannot be dialled.
#[derive(Debug, thiserror::Error)]
#[error(
    "cluster address {addr:?} is invalid: {reason}; write cluster_addr as https://HOST:PORT (for example https://sealkeep-0.sealkeep-internal:8201)"
)]
pub struct AddrError {
    pub addr: String,
    pub reason: &'static str,
}

impl ClusterAddr {
    /// Parses `cluster_addr`. The scheme, when present, must be `https` (the cluster port is
    /// always TLS); a path is not allowed.
    pub fn parse(addr: &str) -> Result<Self, AddrError> {
        let err = |reason| AddrError {
            addr: addr.to_owned(),
            reason,
        };
        let rest = match addr.split_once("://") {
            Some(("https", rest)) => rest,
            Some(_) => return Err(err("the scheme must be https")),
            None => addr,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(err("a path is not allowed"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| err("unclosed '['"))?;
            let port = after.strip_prefix(':').ok_or_else(|| err("no port"))?;
            (host, port)
        } else {
            rest.rsplit_once(':').ok_or_else(|| err("no port"))?
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| err("the port is not a number 1-65535"))?;
        if port == 0 {
            return Err(err("the port is 0"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The host: a DNS name or an IP address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Display for ClusterAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
