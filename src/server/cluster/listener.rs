//! Cluster layer: the cluster port's serve loop. Binds the listener's `cluster_address`,
//! completes a mutual-TLS handshake (a client certificate of the cluster CA is required) and
//! serves HTTP/2 to the router. Graceful stop: stop accepting, let requests in flight finish
//! within a grace period. Does network I/O.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;

use super::tls::{NodeTls, TlsError};
use crate::server::listener::accept_bounded;

/// Bounds of the cluster port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Largest request body (a raft snapshot travels in one request).
    pub max_body: usize,
    /// Longest time one request may take, reading its body included; it then gets a 408
    /// (longer than a forwarded request's 60 s budget).
    pub request_timeout: Duration,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Most connections open at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_body: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(65),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// An error binding the cluster port.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error(
        "cannot listen on the cluster address {address}: {source}; pick a free cluster_address in the listener block"
    )]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The bound cluster port, ready to serve.
pub struct ClusterListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    limits: ListenerLimits,
}

impl ClusterListener {
    /// Binds `address` and builds the mutual-TLS configuration from `tls`, so errors show
    /// before serving starts.
    pub fn bind(
        address: SocketAddr,
        tls: &NodeTls,
        limits: ListenerLimits,
    ) -> Result<Self, ListenerError> {
        Self::from_bound(Self::bind_port(address)?, tls, limits)
    }

    /// Binds the port alone (a server binds it at start, so a taken address stops the start,
    /// and serves it once the node has its cluster identity).
    pub fn bind_port(address: SocketAddr) -> Result<std::net::TcpListener, ListenerError> {
        let bind_err = |source| ListenerError::Bind { address, source };
        let std_listener = std::net::TcpListener::bind(address).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        Ok(std_listener)
    }

    /// A port bound by [`Self::bind_port`], with this node's identity.
    pub fn from_bound(
        std_listener: std::net::TcpListener,
        tls: &NodeTls,
        limits: ListenerLimits,
    ) -> Result<Self, ListenerError> {
        let address = std_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let tcp = TcpListener::from_std(std_listener)
            .map_err(|source| ListenerError::Bind { address, source })?;
        Ok(Self {
            tcp,
            acceptor: TlsAcceptor::from(tls.server_config()?),
            limits,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves `app` until `stop` turns true (or its sender is dropped), then waits up to
    /// `grace` for requests in flight.
    pub async fn serve(self, app: Router, mut stop: watch::Receiver<bool>, grace: Duration) {
        let app = app
            .layer(DefaultBodyLimit::max(self.limits.max_body))
            .layer(RequestBodyLimitLayer::new(self.limits.max_body));
        let slots = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        while let Some((stream, peer, permit)) =
            accept_bounded(&self.tcp, &slots, &mut stop, "cluster port").await
        {
            let _ = stream.set_nodelay(true);
            let conn = Conn {
                acceptor: self.acceptor.clone(),
                limits: self.limits,
                app: app.clone(),
                peer,
            };
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                conn.serve(stream, watcher).await;
                drop(permit);
            });
        }
        drop(self.tcp);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "cluster port: connections still open after the grace period"
            );
        }
    }
}

struct Conn {
    acceptor: TlsAcceptor,
    limits: ListenerLimits,
    app: Router,
    peer: SocketAddr,
}

impl Conn {
    async fn serve(self, stream: TcpStream, watcher: Watcher) {
        let tls = match tokio::time::timeout(
            self.limits.handshake_timeout,
            self.acceptor.accept(stream),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                // A peer without a certificate of this cluster's CA ends here.
                tracing::info!(peer = %self.peer, error = %e, "cluster port: TLS handshake refused");
                return;
            }
            Err(_) => {
                tracing::info!(peer = %self.peer, "cluster port: TLS handshake timed out");
                return;
            }
        };
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(10)))
            .keep_alive_timeout(Duration::from_secs(10))
            .max_concurrent_streams(64)
            // Fixed windows, as the client's (see `client.rs`): no BDP pings on every round.
            .initial_stream_window_size(2 * 1024 * 1024)
            .initial_connection_window_size(4 * 1024 * 1024);
        let svc = Service {
            app: self.app,
            timeout: self.limits.request_timeout,
        };
        let conn = builder.serve_connection(TokioIo::new(tls), svc);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(peer = %self.peer, error = %e, "cluster port: connection closed");
        }
    }
}

/// The router as a hyper service, each request bounded by the request timeout.
#[derive(Clone)]
struct Service {
    app: Router,
    timeout: Duration,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let app = self.app.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let req = req.map(axum::body::Body::new);
            match tokio::time::timeout(timeout, app.oneshot(req)).await {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(never)) => match never {},
                Err(_) => Ok((
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request took longer than {timeout:?}; the cluster port bounds each request"
                    ),
                )
                    .into_response()),
            }
        })
    }
}
