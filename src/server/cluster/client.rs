//! Cluster layer: the client side of the cluster port. One HTTP/2 connection over mutual TLS per
//! peer, opened on first use, shared by concurrent requests (HTTP/2 streams) and reopened after
//! it fails. Does network I/O.
//!
//! Callers bound each call (raft's per-RPC timeout, 100 ms for a heartbeat), but not the
//! connection under it: a connection is opened by a task of its own, bounded by the connect
//! timeout ([`PeerClient::with_connect_timeout`], request forwarding) or else
//! [`CONNECT_BOUND`], and shared by every call that waits for it. A call that gives up does not
//! abort the connection, so a handshake slower than one RPC's deadline (a loaded node, a slow
//! link) still completes and serves the next call, instead of being started afresh and
//! abandoned by every RPC (found by the Jepsen harness: after a partition healed, a new
//! leader's heartbeats kept abandoning their TLS handshakes to a follower). A dead peer is
//! detected by HTTP/2 keep-alive pings.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri, header};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{AddrError, ClusterAddr};

/// How often an idle connection is pinged, and how long a ping may go unanswered before the
/// connection counts as dead.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection may take to open (TCP, TLS and HTTP/2 handshakes) when the client
/// has no connect timeout of its own.
pub const CONNECT_BOUND: Duration = Duration::from_secs(10);

/// The connection slot: none, one being opened (its outcome arrives on the channel), or one
/// open.
enum Slot {
    Empty,
    Opening(tokio::sync::watch::Receiver<Option<Result<SendRequest<Body>, ClientError>>>),
    Open(SendRequest<Body>),
}

/// A failed request to a peer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made (refused, unresolvable, TLS handshake failed).
    #[error(
        "cannot connect to cluster peer {addr}: {reason}; check that the peer is up, that its cluster_addr is reachable, and that both nodes hold the same cluster CA"
    )]
    Connect { addr: String, reason: String },
    /// The connection broke during the request; the peer may or may not have handled it.
    #[error("request to cluster peer {addr} failed: {reason}")]
    Request { addr: String, reason: String },
    /// The peer answered with an HTTP error status.
    #[error("cluster peer {addr} answered HTTP {status}: {message}")]
    Status {
        addr: String,
        status: StatusCode,
        message: String,
    },
}

impl ClientError {
    /// Whether the peer could not be reached at all (as opposed to failing mid-request).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

/// A client for one peer's cluster port. Cheap to share (`Arc`); concurrent calls share one
/// connection.
pub struct PeerClient {
    addr: ClusterAddr,
    authority: String,
    tls: TlsConnector,
    connect_timeout: Option<Duration>,
    conn: Arc<tokio::sync::Mutex<Slot>>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("addr", &self.authority)
            .finish()
    }
}

impl PeerClient {
    /// A client for the peer at `cluster_addr`, authenticating with `tls` (from
    /// [`super::NodeTls::client_config`]). Connects on first use.
    pub fn new(cluster_addr: &str, tls: Arc<ClientConfig>) -> Result<Self, AddrError> {
        let addr = ClusterAddr::parse(cluster_addr)?;
        Ok(Self {
            authority: addr.to_string(),
            addr,
            tls: TlsConnector::from(tls),
            connect_timeout: None,
            conn: Arc::new(tokio::sync::Mutex::new(Slot::Empty)),
        })
    }

    /// Bounds opening a connection (TCP, TLS and HTTP/2 handshakes) by `timeout`, so an
    /// unreachable peer fails fast even when the caller's own deadline is long.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The peer's address as `HOST:PORT`.
    pub fn addr(&self) -> &str {
        &self.authority
    }

    /// POSTs `body` to `path` and returns the reply body (at most `max_reply` bytes).
    pub async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        max_reply: usize,
    ) -> Result<Bytes, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/octet-stream"),
        );
        let response = self
            .send(Method::POST, path, headers, Body::from(body))
            .await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), max_reply)
            .await
            .map_err(|e| self.req_err(format!("reading the reply: {e}")))?;
        if status != StatusCode::OK {
            let message = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(ClientError::Status {
                addr: self.authority.clone(),
                status,
                message,
            });
        }
        Ok(bytes)
    }

    /// Sends one request (`path` with its query) and returns the peer's response as it is,
    /// whatever its status, with the body still streaming.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut sender = self.sender().await?;
        let uri: Uri = format!("https://{}{}", self.authority, path)
            .parse()
            .map_err(|e| self.req_err(format!("invalid request path {path:?}: {e}")))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|e| self.req_err(e.to_string()))?;
        *request.headers_mut() = headers;
        let result = async {
            sender.ready().await?;
            sender.send_request(request).await
        }
        .await;
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                self.forget_if_closed().await;
                Err(self.req_err(e.to_string()))
            }
        }
    }

    fn req_err(&self, reason: String) -> ClientError {
        ClientError::Request {
            addr: self.authority.clone(),
            reason,
        }
    }

    /// The open connection, or the one being opened, or a new one (opened by a task of its
    /// own, so a caller that gives up does not abort it).
    async fn sender(&self) -> Result<SendRequest<Body>, ClientError> {
        let mut pending = {
            let mut slot = self.conn.lock().await;
            match &*slot {
                Slot::Open(s) if !s.is_closed() => return Ok(s.clone()),
                Slot::Opening(rx) => rx.clone(),
                Slot::Open(_) | Slot::Empty => {
                    let rx = self.open();
                    *slot = Slot::Opening(rx.clone());
                    rx
                }
            }
        };
        let outcome =
            pending
                .wait_for(Option::is_some)
                .await
                .map_err(|_| ClientError::Connect {
                    addr: self.authority.clone(),
                    reason: "the connection attempt was dropped".into(),
                })?;
        match outcome.as_ref() {
            Some(Ok(sender)) => Ok(sender.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => unreachable!("wait_for returns a value that passed the predicate"),
        }
    }

    /// Starts opening a connection in a task; its outcome arrives on the returned channel and
    /// fills the slot (an error empties it, so the next call tries again).
    fn open(&self) -> tokio::sync::watch::Receiver<Option<Result<SendRequest<Body>, ClientError>>> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let bound = self.connect_timeout.unwrap_or(CONNECT_BOUND);
        let connector = Connector {
            addr: self.addr.clone(),
            authority: self.authority.clone(),
            tls: self.tls.clone(),
        };
        let slot = Arc::clone(&self.conn);
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(bound, connector.connect())
                .await
                .unwrap_or_else(|_| {
                    Err(ClientError::Connect {
                        addr: connector.authority.clone(),
                        reason: format!("no connection within {bound:?}"),
                    })
                });
            let mut slot = slot.lock().await;
            *slot = match &outcome {
                Ok(sender) => Slot::Open(sender.clone()),
                Err(_) => Slot::Empty,
            };
            tx.send_replace(Some(outcome));
        });
        rx
    }

    /// After a failed request: drops the cached connection if it has closed, so the next call
    /// reconnects (a failure of one stream keeps a healthy connection).
    async fn forget_if_closed(&self) {
        let mut slot = self.conn.lock().await;
        if matches!(&*slot, Slot::Open(s) if s.is_closed()) {
            *slot = Slot::Empty;
        }
    }
}

/// What opening a connection needs, owned by the task that opens it.
struct Connector {
    addr: ClusterAddr,
    authority: String,
    tls: TlsConnector,
}

impl Connector {
    async fn connect(&self) -> Result<SendRequest<Body>, ClientError> {
        let conn_err = |reason: String| ClientError::Connect {
            addr: self.authority.clone(),
            reason,
        };
        let tcp = TcpStream::connect((self.addr.host(), self.addr.port()))
            .await
            .map_err(|e| conn_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.addr.host().to_owned())
            .map_err(|e| conn_err(format!("invalid server name: {e}")))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| conn_err(format!("TLS handshake: {e}")))?;
        if tls.get_ref().1.alpn_protocol() != Some(super::tls::ALPN_H2) {
            return Err(conn_err(
                "the peer did not negotiate HTTP/2 (ALPN h2)".into(),
            ));
        }
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .adaptive_window(true)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| conn_err(format!("HTTP/2 handshake: {e}")))?;
        let addr = self.authority.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %addr, error = %e, "cluster connection closed");
            }
        });
        Ok(sender)
    }
}
