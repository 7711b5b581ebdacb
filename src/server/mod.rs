//! The embedded secrets server: wiring of config, storage, seal, core and HTTP listeners.
//! Does I/O (files, sockets, KMS).

pub mod audit;
pub mod auth;
pub mod barrier;
pub mod cluster;
pub mod config;
pub mod core;
pub mod http;
pub mod kv;
pub mod listener;
pub mod mounts;
pub mod physical;
pub mod policy;
pub mod seal;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use self::config::{RaftConfig, SealConfig, ServerConfig, StorageConfig};
use self::core::{Core, InitRequest, SealBackend};
use self::physical::{
    CachedBackend, FileBackend, InmemBackend, NodeInfo, Physical, RaftBackend, RaftTiming,
};
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
    #[error("cluster port: {0}")]
    Cluster(String),
    #[error("server task failed: {0}")]
    Serve(std::io::Error),
}

async fn seal_backend(config: &ServerConfig, metrics: &Arc<ServerMetrics>) -> SealBackend {
    match &config.seal {
        SealConfig::Shamir => SealBackend::Shamir,
        SealConfig::AwsKms(kms) => SealBackend::AwsKms(Arc::new(
            seal::AwsKmsSeal::new(kms, Arc::clone(metrics)).await,
        )),
    }
}

/// Opens integrated raft storage with this node's name and addresses (no read cache: a
/// replicated store changes under a standby's feet).
async fn open_raft(r: &RaftConfig, config: &ServerConfig) -> Result<RaftBackend, ServerError> {
    let timing = RaftTiming::with_performance_multiplier(r.performance_multiplier)?;
    let node = NodeInfo {
        name: r.node_id.clone().unwrap_or_else(default_node_name),
        api_addr: config.api_addr.clone().unwrap_or_default(),
        cluster_addr: config.cluster_addr.clone().unwrap_or_default(),
    };
    let raft = RaftBackend::open(&r.path, None, node, timing).await?;
    Ok(raft)
}

/// Without `node_id`: the host name (the pod name on Kubernetes), as Vault's docs advise.
fn default_node_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sealkeep".to_owned())
}

/// A server that has opened its storage and built its core, ready to serve.
#[derive(Debug)]
pub struct Server {
    pub core: Arc<Core>,
    config: ServerConfig,
    forwarder: Arc<cluster::Forwarder>,
}

impl Server {
    /// Forwards standby requests to the active node; give it the node's cluster client TLS
    /// with [`cluster::Forwarder::set_tls`] once unsealed.
    pub fn forwarder(&self) -> &Arc<cluster::Forwarder> {
        &self.forwarder
    }

    pub async fn build(config: ServerConfig) -> Result<Self, ServerError> {
        let metrics = ServerMetrics::new();
        let physical: Arc<dyn Physical> = match &config.storage {
            StorageConfig::File { path } => {
                let file: Arc<dyn Physical> = Arc::new(FileBackend::open(path)?);
                match config.read_cache {
                    Some(c) => Arc::new(CachedBackend::new(file, c.entries, c.bytes)),
                    None => file,
                }
            }
            StorageConfig::Inmem => Arc::new(InmemBackend::new()),
            StorageConfig::Raft(r) => {
                let raft = open_raft(r, &config).await?;
                let seal = seal_backend(&config, &metrics).await;
                let core = Core::new_raft(
                    raft,
                    r.retry_join.clone(),
                    seal,
                    metrics,
                    config.cluster_name.clone(),
                )
                .await?;
                return Ok(Self {
                    core,
                    config,
                    forwarder: Arc::default(),
                });
            }
        };
        let seal = seal_backend(&config, &metrics).await;
        let core = Core::new(physical, seal, metrics, config.cluster_name.clone()).await?;
        Ok(Self {
            core,
            config,
            forwarder: Arc::default(),
        })
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

    fn app_state(&self, cfg: &config::ListenerConfig) -> http::AppState {
        http::AppState {
            core: Arc::clone(&self.core),
            max_body: cfg.max_request_size,
            body_timeout: cfg.timeouts.read,
            unauthenticated_metrics: cfg.unauthenticated_metrics_access,
            forwarder: Arc::clone(&self.forwarder),
        }
    }

    /// Binds every listener, starts auto-unseal, and serves until `shutdown` resolves; then
    /// stops accepting and gives requests in flight [`SHUTDOWN_GRACE`] to finish.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        // Bind everything first, so a bad address or certificate stops the start.
        let mut bound = Vec::with_capacity(self.config.listeners.len());
        for cfg in &self.config.listeners {
            bound.push((listener::Listener::bind(cfg)?, cfg));
        }
        let cluster_port = match (self.core.raft(), self.config.listeners.first()) {
            (Some(_), Some(cfg)) => Some(
                cluster::ClusterListener::bind_port(cfg.cluster_address)
                    .map_err(|e| ServerError::Cluster(e.to_string()))?,
            ),
            _ => None,
        };
        let max_backoff = match &self.config.seal {
            SealConfig::AwsKms(k) => k.max_backoff,
            SealConfig::Shamir => Duration::ZERO,
        };
        let auto = self.core.spawn_auto_unseal(max_backoff);
        let ha = self.core.spawn_ha();
        let joining = self.core.spawn_retry_join();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        if let (Some(port), Some(raft), Some(cfg)) = (
            cluster_port,
            self.core.raft(),
            self.config.listeners.first(),
        ) {
            // Requests forwarded by standbys run through this node's own API stack.
            let api = http::router(self.app_state(cfg));
            let app =
                cluster::router(Arc::new(raft.rpc_handler())).merge(cluster::forward_routes(api));
            tasks.spawn(serve_cluster_port(
                port,
                self.core.node_tls(),
                Arc::clone(&self.forwarder),
                app,
                stop_rx.clone(),
            ));
        }
        for (l, cfg) in bound {
            let app = http::router(self.app_state(cfg));
            tracing::info!(
                address = %cfg.address,
                tls = cfg.tls.is_some(),
                max_connections = cfg.max_connections,
                "listening"
            );
            tasks.spawn(l.serve(app, stop_rx.clone(), SHUTDOWN_GRACE));
        }
        let core = Arc::clone(&self.core);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            // The leader hands its office on first, so clients see a short gap, not a
            // failover (raft only; bounded).
            core.hand_off_leadership().await;
            let _ = stop_tx.send(true);
        });
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "listener task failed");
            }
        }
        for task in [auto, ha, joining].into_iter().flatten() {
            task.abort();
        }
        self.core.shutdown_storage().await;
        Ok(())
    }
}

/// Serves the cluster port once this node has its cluster identity (after unseal or join);
/// until then connections wait in the kernel's accept queue.
async fn serve_cluster_port(
    port: std::net::TcpListener,
    mut tls: tokio::sync::watch::Receiver<Option<Arc<cluster::NodeTls>>>,
    forwarder: Arc<cluster::Forwarder>,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let identity = tokio::select! {
        r = tls.wait_for(Option::is_some) => match r {
            Ok(t) => t.clone(),
            Err(_) => return,
        },
        _ = stop.wait_for(|s| *s) => return,
    };
    let Some(identity) = identity else { return };
    match identity.client_config() {
        Ok(client) => forwarder.set_tls(client),
        Err(e) => tracing::error!(error = %e, "request forwarding unavailable"),
    }
    let address = port.local_addr().ok();
    match cluster::ClusterListener::from_bound(port, &identity, cluster::ListenerLimits::default())
    {
        Ok(l) => {
            tracing::info!(address = ?address, "cluster port listening");
            l.serve(app, stop, SHUTDOWN_GRACE).await;
        }
        Err(e) => tracing::error!(error = %e, "cannot serve the cluster port"),
    }
}

/// How long a shutdown waits for open connections to finish their requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
