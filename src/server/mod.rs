//! The embedded secrets server: wiring of config, storage, seal, core and HTTP listeners.
//! Does I/O (files, sockets, KMS).

pub mod audit;
pub mod auth;
pub mod barrier;
pub mod config;
pub mod core;
pub mod http;
pub mod kv;
pub mod mounts;
pub mod physical;
pub mod policy;
pub mod seal;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use self::config::{ListenerConfig, SealConfig, ServerConfig, StorageConfig};
use self::core::{Core, InitRequest, SealBackend};
use self::physical::{CachedBackend, FileBackend, InmemBackend, Physical};
use crate::telemetry::ServerMetrics;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open storage: {0}")]
    Storage(#[from] physical::PhysicalError),
    #[error("{0}")]
    Core(#[from] core::CoreError),
    #[error("cannot listen on {address}: {source}; pick a free address in the listener block")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load TLS certificate {path}: {reason}; check tls_cert_file and tls_key_file")]
    Tls { path: String, reason: String },
    #[error("server task failed: {0}")]
    Serve(std::io::Error),
}

/// A server that has opened its storage and built its core, ready to serve.
#[derive(Debug)]
pub struct Server {
    pub core: Arc<Core>,
    config: ServerConfig,
}

impl Server {
    pub async fn build(config: ServerConfig) -> Result<Self, ServerError> {
        let metrics = ServerMetrics::new();
        let physical: Arc<dyn Physical> = match &config.storage {
            StorageConfig::File { path } => {
                let file: Arc<dyn Physical> = Arc::new(FileBackend::open(path)?);
                match config.read_cache {
                    Some(entries) => Arc::new(CachedBackend::new(file, entries)),
                    None => file,
                }
            }
            StorageConfig::Inmem => Arc::new(InmemBackend::new()),
        };
        let seal = match &config.seal {
            SealConfig::Shamir => SealBackend::Shamir,
            SealConfig::AwsKms(kms) => SealBackend::AwsKms(Arc::new(
                seal::AwsKmsSeal::new(kms, Arc::clone(&metrics)).await,
            )),
        };
        let core = Core::new(physical, seal, metrics, config.cluster_name.clone()).await?;
        Ok(Self { core, config })
    }

    /// Dev mode: initialize with one key share and unseal with it. Returns (root token, key).
    pub async fn init_dev(&self) -> Result<(String, String), ServerError> {
        let resp = self
            .core
            .initialize(InitRequest {
                secret_shares: Some(1),
                secret_threshold: Some(1),
                ..Default::default()
            })
            .await?;
        let key = resp.keys_base64.first().cloned().unwrap_or_default();
        self.core.unseal_share(Some(&key), false).await?;
        Ok((resp.root_token.clone(), key))
    }

    /// Binds every listener, starts auto-unseal, and serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let max_backoff = match &self.config.seal {
            SealConfig::AwsKms(k) => k.max_backoff,
            SealConfig::Shamir => Duration::ZERO,
        };
        let auto = self.core.spawn_auto_unseal(max_backoff);
        let handle = axum_server::Handle::new();
        let mut tasks = tokio::task::JoinSet::new();
        for listener in &self.config.listeners {
            let app = http::router(http::AppState {
                core: Arc::clone(&self.core),
                max_body: listener.max_request_size,
            });
            let std_listener = std::net::TcpListener::bind(listener.address).map_err(|source| {
                ServerError::Bind {
                    address: listener.address,
                    source,
                }
            })?;
            std_listener
                .set_nonblocking(true)
                .map_err(ServerError::Serve)?;
            tracing::info!(address = %listener.address, tls = listener.tls.is_some(), "listening");
            let handle = handle.clone();
            let svc = app.into_make_service();
            match tls_config(listener).await? {
                Some(tls) => {
                    let server = axum_server::from_tcp_rustls(std_listener, tls)
                        .map_err(ServerError::Serve)?
                        .handle(handle);
                    tasks.spawn(async move { server.serve(svc).await });
                }
                None => {
                    let server = axum_server::from_tcp(std_listener)
                        .map_err(ServerError::Serve)?
                        .handle(handle);
                    tasks.spawn(async move { server.serve(svc).await });
                }
            }
        }
        let h = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            h.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        let mut result = Ok(());
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                result = Err(ServerError::Serve(e));
                handle.shutdown();
            }
        }
        if let Some(a) = auto {
            a.abort();
        }
        result
    }
}

async fn tls_config(
    listener: &ListenerConfig,
) -> Result<Option<axum_server::tls_rustls::RustlsConfig>, ServerError> {
    let Some(tls) = &listener.tls else {
        return Ok(None);
    };
    let config =
        axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
            .await
            .map_err(|e| ServerError::Tls {
                path: tls.cert_file.display().to_string(),
                reason: e.to_string(),
            })?;
    Ok(Some(config))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
