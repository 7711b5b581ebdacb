//! Server configuration: typed config from a Vault-style HCL file, with Vault's environment
//! overrides. Reads the file; otherwise pure.

mod hcl;
/// The HCL1 parser, shared with the policy parser (`server::policy`).
pub(crate) mod hcl1;
mod listener;
mod migrate;
mod seal;
mod storage;

pub use self::migrate::{DEFAULT_MIGRATE_CLUSTER_ADDR, MigrateConfig};
pub use self::storage::{DEFAULT_PERFORMANCE_MULTIPLIER, MAX_PERFORMANCE_MULTIPLIER};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use self::hcl::ConfigError;

/// Default cap of the auto-unseal retry backoff.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Vault's default `max_request_size` (32 MiB).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;
/// Default `max_connections` of a listener (a Sealkeep extension; Vault has no limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub seal: SealConfig,
    pub api_addr: Option<String>,
    pub cluster_addr: Option<String>,
    pub cluster_name: Option<String>,
    pub log_level: Option<LogLevel>,
    pub log_format: Option<crate::telemetry::LogFormat>,
    /// The physical read cache (`cache_size`, `cache_size_bytes`); `None` with `disable_cache`.
    pub read_cache: Option<ReadCacheConfig>,
}

/// Bounds of the physical read cache: both hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCacheConfig {
    /// Most entries (Vault's `cache_size`).
    pub entries: usize,
    /// Most bytes of keys and values together (`cache_size_bytes`, a Sealkeep extension).
    pub bytes: u64,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        Self {
            entries: crate::server::physical::DEFAULT_CACHE_SIZE,
            bytes: crate::server::physical::DEFAULT_CACHE_BYTES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// `storage "file" { path = "..." }`: durable, backed by redb.
    File { path: PathBuf },
    /// `storage "inmem" {}`: lost on restart.
    Inmem,
    /// `storage "raft" { ... }`: integrated Raft storage, replicated to the cluster's nodes.
    Raft(RaftConfig),
}

impl StorageConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::Inmem => "inmem",
            Self::Raft(_) => "raft",
        }
    }
}

/// Vault's `storage "raft"` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// Directory of the raft log, the state machine and the persisted node id.
    pub path: PathBuf,
    /// The node's name in the cluster (`node_id`, or `VAULT_RAFT_NODE_ID`); `None`: a random
    /// name, persisted in `path`.
    pub node_id: Option<String>,
    /// Scales every raft timer: 1 (the default) is the fastest failover, 10 the most tolerant.
    pub performance_multiplier: u32,
    /// Where to look for the cluster to join, tried in turn until one answers.
    pub retry_join: Vec<RetryJoin>,
}

/// One `retry_join { ... }` stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryJoin {
    pub leader_api_addr: String,
    pub leader_tls_servername: Option<String>,
    pub leader_ca_cert_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub max_request_size: usize,
    pub timeouts: HttpTimeouts,
    /// Most connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// `telemetry { unauthenticated_metrics_access = true }`: metrics without a token.
    pub unauthenticated_metrics_access: bool,
    /// Where the cluster port listens (`cluster_address`; default: the API port + 1).
    pub cluster_address: SocketAddr,
}

impl ListenerConfig {
    /// A plain-HTTP listener on `address` with every default.
    pub fn plain(address: SocketAddr) -> Self {
        Self {
            address,
            tls: None,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            timeouts: HttpTimeouts::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            unauthenticated_metrics_access: false,
            cluster_address: default_cluster_address(address),
        }
    }
}

/// The cluster port's default: the API port + 1, on the same IP (as Vault).
pub fn default_cluster_address(api: SocketAddr) -> SocketAddr {
    SocketAddr::new(api.ip(), api.port().saturating_add(1))
}

/// Vault's listener timeouts (`http_read_header_timeout` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// Time to read a request's headers (from the connection's start, or from the first byte
    /// of a later request on a keep-alive connection).
    pub read_header: Duration,
    /// Time to read a request's body once its headers are in.
    pub read: Duration,
    /// Time to write a response, from the end of its request's headers; `None`: no limit.
    pub write: Option<Duration>,
    /// Time a keep-alive connection may wait for its next request.
    pub idle: Duration,
}

impl Default for HttpTimeouts {
    /// Vault's defaults: 10 s, 30 s, none, 5 min.
    fn default() -> Self {
        Self {
            read_header: Duration::from_secs(10),
            read: Duration::from_secs(30),
            write: None,
            idle: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealConfig {
    Shamir,
    AwsKms(AwsKmsConfig),
}

impl SealConfig {
    pub fn seal_type(&self) -> crate::server::seal::SealType {
        match self {
            Self::Shamir => crate::server::seal::SealType::Shamir,
            Self::AwsKms(_) => crate::server::seal::SealType::Awskms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKmsConfig {
    pub region: String,
    /// Key ID, key ARN or `alias/NAME`.
    pub kms_key_id: String,
    /// KMS endpoint override (VPC endpoint, or a local KMS for tests).
    pub endpoint: Option<String>,
    /// Cap of the exponential backoff between auto-unseal attempts.
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "err" | "error" => Self::Error,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// The environment the overrides are read from; a trait so tests need not mutate the process.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl ServerConfig {
    /// Reads and validates a config file, applying environment overrides.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the config file: {e}"),
            fix: "pass an existing, readable file with --config".into(),
        })?;
        Self::parse(&path.display().to_string(), &text, env)
    }

    pub fn parse(file: &str, text: &str, env: &dyn Env) -> Result<Self, ConfigError> {
        hcl::parse(file, text, env)
    }

    /// The in-memory, single-listener configuration of `server --dev`.
    pub fn dev(address: SocketAddr) -> Self {
        Self {
            storage: StorageConfig::Inmem,
            listeners: vec![ListenerConfig::plain(address)],
            seal: SealConfig::Shamir,
            api_addr: Some(format!("http://{address}")),
            cluster_addr: None,
            cluster_name: None,
            log_level: None,
            log_format: None,
            read_cache: Some(ReadCacheConfig::default()),
        }
    }
}

#[cfg(test)]
mod tests;
