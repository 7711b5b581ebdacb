//! Cluster layer: request forwarding from a standby to the active node over the cluster port
//! (Vault's request forwarding, `notes/ha.md` 1.3). Does network I/O.
//!
//! - [`client`]: the standby's side, [`Forwarder`]: one [`super::PeerClient`] to the current
//!   leader, used once the node is unsealed and holds its cluster certificate.
//! - [`server`]: the active node's side, [`forward_routes`]: rebuilds the original request and
//!   runs it through the API router, with the original client's address.
//!
//! Wire format: a `POST` to [`FORWARD_PATH`] whose body is the original body. The original
//! method, path-and-query and client address travel in [`METHOD_HEADER`], [`URI_HEADER`] and
//! [`CLIENT_HEADER`]; the original headers follow as they were, minus hop-by-hop headers and
//! any `x-sealkeep-forward*` header the client sent. A response that comes from the API
//! router carries [`RELAYED_HEADER`]; any other answer (a 400 for malformed forward headers, a
//! 413 or 408 from the cluster port's own limits) is a forwarding failure, and the standby
//! answers the client with a 307 instead.
//!
//! A forwarded request is never forwarded again: the receiver marks it with [`Forwarded`] and
//! [`FORWARDED_HEADER`], and a receiver that is not the leader answers with a 307 or 503 itself.

pub mod client;
pub mod server;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderName, Method};
use bytes::Bytes;

pub use self::client::{ForwardError, Forwarder};
pub use self::server::forward_routes;

/// The cluster port's forwarding route.
pub const FORWARD_PATH: &str = "/v1/forward";
/// The original request's method.
pub const METHOD_HEADER: &str = "x-sealkeep-forward-method";
/// The original request's path and query (`/v1/secret/data/a?version=2`).
pub const URI_HEADER: &str = "x-sealkeep-forward-uri";
/// The original client's address (`IP:PORT`), when the standby knew it.
pub const CLIENT_HEADER: &str = "x-sealkeep-forward-client";
/// On a response: it comes from the active node's API router and is relayed as it is.
pub const RELAYED_HEADER: &str = "x-sealkeep-forward-relayed";
/// On a rebuilt request: it arrived by forwarding, so it must not be forwarded again.
pub const FORWARDED_HEADER: &str = "x-sealkeep-forwarded";

/// Request extension on a rebuilt request: it arrived by forwarding from a standby (which a
/// client cannot set, unlike [`FORWARDED_HEADER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded;

/// A request a standby forwards: everything the active node needs to handle it as if the
/// client had sent it there. The body is already read in full.
#[derive(Debug, Clone)]
pub struct ForwardedRequest {
    pub method: Method,
    /// The path and query as the client sent them (still percent-encoded).
    pub path_and_query: String,
    /// The client's headers; hop-by-hop headers are dropped when sending.
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address, for the active node's audit log.
    pub client_addr: Option<SocketAddr>,
}

/// Whether `name` must not cross a proxy (RFC 9110 7.6.1, plus `host`: the forwarded request
/// addresses the cluster port), or is one of our own forwarding headers.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "connection" | "keep-alive" | "transfer-encoding" | "upgrade" | "te" | "trailer" | "host"
    ) || n.starts_with("proxy-")
        || n.starts_with("x-sealkeep-forward")
}

/// `headers` without hop-by-hop headers, nor those that `Connection` names.
pub(crate) fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(axum::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if is_hop_by_hop(name) || named.iter().any(|t| t == name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}
