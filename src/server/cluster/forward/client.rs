//! Cluster layer: the standby's side of request forwarding. [`Forwarder`] holds the node's
//! cluster client TLS (set once the node is unsealed) and one pooled connection to the current
//! leader, and sends a [`ForwardedRequest`] over it. Does network I/O.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Response};
use rustls::ClientConfig;

use super::{
    CLIENT_HEADER, FORWARD_PATH, ForwardedRequest, METHOD_HEADER, RELAYED_HEADER, URI_HEADER,
    end_to_end,
};
use crate::server::cluster::{ClientError, PeerClient};

/// Longest time to open a connection to the leader: an unreachable leader fails fast, and the
/// client gets a 307 instead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest time from sending a forwarded request until the leader's response headers arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request could not be forwarded. In every case the standby answers the client with a
/// 307 to the active node's `api_addr` instead, so the messages say so.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The node has no cluster certificate yet (sealed, or not yet joined).
    #[error(
        "request forwarding is not available yet (this node holds no cluster certificate until it is unsealed); the client gets a 307 to the active node"
    )]
    NotReady,
    /// The leader's cluster address is not usable.
    #[error("cannot forward to the active node: {0}; the client gets a 307 to the active node")]
    Addr(#[from] crate::server::cluster::AddrError),
    /// No connection to the leader's cluster port.
    #[error("cannot forward to the active node: {0}; the client gets a 307 to the active node")]
    Connect(ClientError),
    /// The connection broke while forwarding; the leader may or may not have handled it.
    #[error("forwarding to the active node failed: {0}")]
    Request(ClientError),
    /// The leader did not answer in time.
    #[error("the active node at {addr} did not answer a forwarded request within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The leader's cluster port refused the forwarded request itself (not its API).
    #[error(
        "the active node at {addr} refused the forwarded request with HTTP {status}: {message}; check that both nodes run the same version; the client gets a 307 to the active node"
    )]
    Refused {
        addr: String,
        status: u16,
        message: String,
    },
}

impl ForwardError {
    fn from_client(e: ClientError) -> Self {
        if e.is_connect() {
            Self::Connect(e)
        } else {
            Self::Request(e)
        }
    }
}

#[derive(Default)]
struct Inner {
    tls: Option<Arc<ClientConfig>>,
    /// The client for the leader's cluster address it was made for.
    peer: Option<(String, Arc<PeerClient>)>,
}

/// Forwards requests from a standby to the active node. One per server; cheap to share.
#[derive(Default)]
pub struct Forwarder {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("Forwarder")
            .field("ready", &inner.tls.is_some())
            .field("leader", &inner.peer.as_ref().map(|(a, _)| a.as_str()))
            .finish()
    }
}

impl Forwarder {
    /// A forwarder without TLS: [`Forwarder::forward`] fails with
    /// [`ForwardError::NotReady`] until [`Forwarder::set_tls`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the node's cluster client TLS ([`crate::server::cluster::NodeTls::client_config`]),
    /// once the node is unsealed. Replaces any earlier one and drops the cached connection.
    pub fn set_tls(&self, tls: Arc<ClientConfig>) {
        let mut inner = self.lock();
        inner.tls = Some(tls);
        inner.peer = None;
    }

    /// Forgets the TLS and the connection (on seal): forwarding is unavailable again.
    pub fn clear_tls(&self) {
        *self.lock() = Inner::default();
    }

    /// Whether [`Forwarder::set_tls`] has been called.
    pub fn is_ready(&self) -> bool {
        self.lock().tls.is_some()
    }

    /// Sends `req` to the active node at `leader_cluster_addr` and returns its API's response
    /// as it is (status, headers minus hop-by-hop ones, streaming body). Connecting is bounded
    /// by 3 s, the response headers by 60 s.
    pub async fn forward(
        &self,
        leader_cluster_addr: &str,
        req: ForwardedRequest,
    ) -> Result<Response<Body>, ForwardError> {
        let peer = self.peer(leader_cluster_addr)?;
        let mut headers = end_to_end(&req.headers);
        headers.remove(axum::http::header::CONTENT_LENGTH);
        let value = |s: &str| {
            HeaderValue::from_str(s).map_err(|_| {
                ForwardError::Request(ClientError::Request {
                    addr: peer.addr().to_owned(),
                    reason: format!("{s:?} cannot be carried in a forward header"),
                })
            })
        };
        headers.insert(METHOD_HEADER, value(req.method.as_str())?);
        headers.insert(URI_HEADER, value(&req.path_and_query)?);
        if let Some(client) = req.client_addr {
            headers.insert(CLIENT_HEADER, value(&client.to_string())?);
        }
        let send = peer.send(Method::POST, FORWARD_PATH, headers, Body::from(req.body));
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, send).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(ForwardError::from_client(e)),
            Err(_) => {
                return Err(ForwardError::Timeout {
                    addr: peer.addr().to_owned(),
                    timeout: REQUEST_TIMEOUT,
                });
            }
        };
        let (parts, body) = response.into_parts();
        if !parts.headers.contains_key(RELAYED_HEADER) {
            let bytes =
                tokio::time::timeout(CONNECT_TIMEOUT, axum::body::to_bytes(Body::new(body), 4096))
                    .await;
            let message = match bytes {
                Ok(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
                _ => String::new(),
            };
            return Err(ForwardError::Refused {
                addr: peer.addr().to_owned(),
                status: parts.status.as_u16(),
                message,
            });
        }
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = parts.status;
        *out.headers_mut() = end_to_end(&parts.headers);
        Ok(out)
    }

    /// The client for `addr`, made (and cached) when the leader changed.
    fn peer(&self, addr: &str) -> Result<Arc<PeerClient>, ForwardError> {
        let mut inner = self.lock();
        let tls = inner.tls.clone().ok_or(ForwardError::NotReady)?;
        if let Some((cached, peer)) = &inner.peer
            && cached == addr
        {
            return Ok(Arc::clone(peer));
        }
        let peer = Arc::new(PeerClient::new(addr, tls)?.with_connect_timeout(CONNECT_TIMEOUT));
        inner.peer = Some((addr.to_owned(), Arc::clone(&peer)));
        Ok(peer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock is never held across an await or a panic-prone call; a poisoned lock still
        // holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
