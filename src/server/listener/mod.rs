//! Server wiring: the serve loop of one `listener "tcp"` block: accepts connections (at most
//! `max_connections` at once; further ones wait in the kernel's accept queue), does the TLS
//! handshake, and serves HTTP/1.1 (and HTTP/2 over TLS with ALPN `h2`) with Vault's timeouts
//! (see [`conn`]). Graceful shutdown: stop accepting, let requests in flight finish. Does I/O.

mod conn;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use self::conn::{ConnState, GuardedBody, Inflight, TimedIo};
use super::ServerError;
use crate::server::config::{HttpTimeouts, ListenerConfig, TlsConfig};

/// One bound listener, ready to serve.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    timeouts: HttpTimeouts,
    max_connections: usize,
}

impl Listener {
    /// Binds the address and loads the TLS certificate, so errors show before serving starts.
    pub fn bind(cfg: &ListenerConfig) -> Result<Self, ServerError> {
        let bind_err = |source| ServerError::Bind {
            address: cfg.address,
            source,
        };
        let std_listener = std::net::TcpListener::bind(cfg.address).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let tcp = TcpListener::from_std(std_listener).map_err(bind_err)?;
        let tls = cfg.tls.as_ref().map(tls_acceptor).transpose()?;
        Ok(Self {
            tcp,
            tls,
            timeouts: cfg.timeouts,
            max_connections: cfg.max_connections.max(1),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves `app` until `stop` turns true, then waits up to `grace` for open connections.
    pub async fn serve(self, app: Router, mut stop: watch::Receiver<bool>, grace: Duration) {
        let limit = Arc::new(Semaphore::new(self.max_connections));
        let graceful = GracefulShutdown::new();
        while let Some((stream, peer, permit)) =
            accept_bounded(&self.tcp, &limit, &mut stop, "API listener").await
        {
            let _ = stream.set_nodelay(true);
            let tls = self.tls.clone();
            let timeouts = self.timeouts;
            let app = app.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                serve_connection(stream, peer, tls, timeouts, app, watcher).await;
                drop(permit);
            });
        }
        drop(self.tcp);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "connections still open after the grace period"
            );
        }
    }
}

/// Resolves when `stop` turns true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The accept step of a serve loop (the API listener's and the cluster port's): takes a
/// connection slot first (connections beyond the limit wait in the kernel's backlog), then
/// accepts, backing off on errors (out of file descriptors and the like) and never giving up.
/// `None` once `stop` turns true.
pub(crate) async fn accept_bounded(
    tcp: &TcpListener,
    slots: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
    what: &'static str,
) -> Option<(TcpStream, std::net::SocketAddr, OwnedSemaphorePermit)> {
    let permit = tokio::select! {
        p = Arc::clone(slots).acquire_owned() => p.ok()?,
        () = stopped(stop) => return None,
    };
    let mut errors = 0u32;
    loop {
        tokio::select! {
            r = tcp.accept() => match r {
                Ok((stream, peer)) => return Some((stream, peer, permit)),
                Err(e) => {
                    errors = errors.saturating_add(1);
                    let wait = Duration::from_millis(5u64 << errors.min(8));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what}: accept failed");
                    tokio::time::sleep(wait).await;
                }
            },
            () = stopped(stop) => return None,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    timeouts: HttpTimeouts,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let Some(acceptor) = tls else {
        let state = ConnState::new(timeouts, false);
        run(
            TimedIo::new(stream, Arc::clone(&state)),
            state,
            peer,
            app,
            watcher,
        )
        .await;
        return;
    };
    // The handshake is part of reading the first request's headers.
    let tls_stream = match tokio::time::timeout(timeouts.read_header, acceptor.accept(stream)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let state = ConnState::new(timeouts, h2);
    run(
        TimedIo::new(tls_stream, Arc::clone(&state)),
        state,
        peer,
        app,
        watcher,
    )
    .await;
}

async fn run<S>(
    io: TimedIo<S>,
    state: Arc<ConnState>,
    peer: SocketAddr,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder = if state.is_h2() {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    // Our socket wrapper times the headers; hyper's own timer stays off.
    builder.http1().header_read_timeout(None);
    let svc = ConnService { app, state, peer };
    let conn = builder.serve_connection(TokioIo::new(io), svc).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection closed");
    }
}

/// The router as a hyper service that marks each request in flight on its connection, and
/// gives each request the client's address as axum's `ConnectInfo<SocketAddr>` (the audit log's
/// `remote_address`; a forwarded request carries the original client's instead).
#[derive(Clone)]
struct ConnService {
    app: Router,
    state: Arc<ConnState>,
    peer: SocketAddr,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<GuardedBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let inflight = Inflight::begin(&self.state);
        let app = self.app.clone();
        Box::pin(async move {
            let resp = match app.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            Ok(resp.map(|body| GuardedBody::new(body, inflight)))
        })
    }
}

/// A TLS acceptor for the listener's PEM certificate chain and key, offering h2 and http/1.1.
fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, ServerError> {
    let err = |path: &Path, reason: String| ServerError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(&tls.cert_file, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(err(&tls.cert_file, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| err(&tls.key_file, format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&tls.cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            err(
                &tls.cert_file,
                format!("certificate and key do not match: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
