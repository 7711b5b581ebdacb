//! Core layer: the seal state machine (Uninitialized | Sealed | Unsealed) behind one `RwLock`,
//! init, unseal, seal, rotate and the auto-unseal loop. Does storage and seal I/O through the
//! layers below; holds keys only inside the [`Barrier`] of the unsealed state.

pub mod autopilot;
mod autounseal;
mod ha;
mod init;
mod join;
pub mod paths;
mod raft_admin;
mod unseal;
mod unsealed;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, RwLock};
use zeroize::Zeroizing;

pub use ha::HaStatus;
pub use init::{InitRequest, InitResponse};
pub use join::{
    AnswerRequest, AnswerResponse, ChallengeResponse, JoinRequest,
    RETRY_INTERVAL as JOIN_RETRY_INTERVAL, RETRY_ROUNDS as JOIN_RETRY_ROUNDS,
};
pub use unsealed::Unsealed;

use super::barrier::{Barrier, BarrierError, KEYRING_PATH, Key, Keyring};
use super::cluster::NodeTls;
use super::config::RetryJoin;
use super::physical::{Physical, PhysicalError, RaftBackend};
use super::seal::shamir::ShamirError;
use super::seal::{AwsKmsSeal, SealError, SealType, WrappedRootKey};
use super::token::{TokenEntry, TokenStore};
use crate::telemetry::ServerMetrics;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    #[error("Vault is not initialized")]
    NotInitialized,
    #[error("Vault is sealed")]
    Sealed,
    #[error(
        "this node is a standby (it is becoming the active node, or has just lost that role); send the request to the active node, or retry shortly"
    )]
    Standby,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Unseal failed, invalid key")]
    InvalidKey,
    #[error("permission denied")]
    PermissionDenied,
    #[error("{0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Physical(#[from] PhysicalError),
    #[error("stored {path} is malformed: {reason}")]
    Corrupt { path: &'static str, reason: String },
}

impl From<ShamirError> for CoreError {
    fn from(e: ShamirError) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}

/// `core/seal-config` (plaintext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfigRecord {
    #[serde(rename = "type")]
    pub seal_type: SealType,
    pub secret_shares: usize,
    pub secret_threshold: usize,
}

/// `core/recovery-config` (plaintext, awskms only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryConfigRecord {
    pub secret_shares: usize,
    pub secret_threshold: usize,
    /// Hex SHA-256 of the recovery key; empty when no recovery key was generated.
    pub verifier: String,
}

/// `core/cluster/local/info` (encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster_name: String,
    pub cluster_id: String,
}

/// The configured seal.
#[derive(Debug, Clone)]
pub enum SealBackend {
    Shamir,
    AwsKms(Arc<AwsKmsSeal>),
}

impl SealBackend {
    pub fn seal_type(&self) -> SealType {
        match self {
            Self::Shamir => SealType::Shamir,
            Self::AwsKms(_) => SealType::Awskms,
        }
    }
}

/// Unseal progress: the shares given so far and the nonce that identifies the attempt.
#[derive(Default)]
struct Progress {
    nonce: String,
    parts: Vec<Zeroizing<Vec<u8>>>,
}

struct SealedState {
    seal_config: SealConfigRecord,
    recovery: Option<RecoveryConfigRecord>,
    progress: Progress,
    /// Sealed through `sys/seal`: the auto-unseal loop leaves it sealed.
    manual: bool,
    /// A Shamir node joining a cluster: its unseal keys answer the join challenge first.
    join: Option<Box<join::PendingJoin>>,
}

enum State {
    Uninitialized,
    Sealed(SealedState),
    Unsealed(Arc<Unsealed>),
}

/// A snapshot of the seal status, shaped like `sys/seal-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealStatus {
    pub seal_type: SealType,
    pub initialized: bool,
    pub sealed: bool,
    pub t: usize,
    pub n: usize,
    pub progress: usize,
    pub nonce: String,
    pub recovery_seal: bool,
    pub storage_type: &'static str,
    pub cluster: Option<ClusterInfo>,
}

pub struct Core {
    physical: Arc<dyn Physical>,
    /// What this node reads to become usable (seal configuration, root key, keyring): on raft
    /// its local replica, which needs no leader; else `physical` itself.
    local: Arc<dyn Physical>,
    /// The raft handle behind `physical`, when `storage "raft"` (see [`ha`]).
    raft: Option<RaftBackend>,
    /// On raft: this node's cluster-port identity, published once it is unsealed (or has
    /// joined); the cluster listener and the request forwarder wait for it.
    node_tls: tokio::sync::watch::Sender<Option<Arc<NodeTls>>>,
    /// On raft: the configured `retry_join` targets.
    joins: Vec<RetryJoin>,
    seal: SealBackend,
    state: RwLock<State>,
    metrics: Arc<ServerMetrics>,
    cluster_name: Option<String>,
    /// Wakes the auto-unseal loop (after init, or after a manual unseal request).
    wake: Notify,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("seal", &self.seal)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Reads the seal configuration from storage to decide the starting state.
    pub async fn new(
        physical: Arc<dyn Physical>,
        seal: SealBackend,
        metrics: Arc<ServerMetrics>,
        cluster_name: Option<String>,
    ) -> Result<Arc<Self>, CoreError> {
        let state = Self::starting_state(&*physical, &seal).await?;
        Ok(Self::assemble(
            Arc::clone(&physical),
            physical,
            None,
            seal,
            metrics,
            cluster_name,
            state,
        ))
    }

    /// A core on integrated raft storage. A node with empty raft state starts uninitialized
    /// (only `sys/init` forms a cluster, or it joins one); a member reads its seal
    /// configuration from its local replica, so it can unseal with no leader elected yet (the
    /// cluster port, and so elections, need the TLS identity behind the barrier).
    pub async fn new_raft(
        raft: RaftBackend,
        joins: Vec<RetryJoin>,
        seal: SealBackend,
        metrics: Arc<ServerMetrics>,
        cluster_name: Option<String>,
    ) -> Result<Arc<Self>, CoreError> {
        let physical: Arc<dyn Physical> = Arc::new(raft.clone());
        let local: Arc<dyn Physical> = Arc::new(raft.local_view());
        let state = if raft.is_initialized().await? {
            Self::starting_state(&*local, &seal).await?
        } else {
            State::Uninitialized
        };
        let mut core = Self::assemble(
            physical,
            local,
            Some(raft),
            seal,
            metrics,
            cluster_name,
            state,
        );
        if let Some(c) = Arc::get_mut(&mut core) {
            c.joins = joins;
        }
        Ok(core)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        physical: Arc<dyn Physical>,
        local: Arc<dyn Physical>,
        raft: Option<RaftBackend>,
        seal: SealBackend,
        metrics: Arc<ServerMetrics>,
        cluster_name: Option<String>,
        state: State,
    ) -> Arc<Self> {
        metrics
            .initialized
            .set(i64::from(!matches!(state, State::Uninitialized)));
        Arc::new(Self {
            physical,
            local,
            raft,
            node_tls: tokio::sync::watch::Sender::new(None),
            joins: Vec::new(),
            seal,
            state: RwLock::new(state),
            metrics,
            cluster_name,
            wake: Notify::new(),
        })
    }

    /// Uninitialized without a seal configuration in storage, else sealed.
    async fn starting_state(
        physical: &dyn Physical,
        seal: &SealBackend,
    ) -> Result<State, CoreError> {
        Ok(
            match read_json::<SealConfigRecord>(physical, paths::SEAL_CONFIG).await? {
                None => State::Uninitialized,
                Some(seal_config) => {
                    if seal_config.seal_type != seal.seal_type() {
                        return Err(CoreError::InvalidRequest(format!(
                            "storage was initialized with the {} seal but the configuration says {}; seal migration is not supported, restore the original seal stanza",
                            seal_config.seal_type.as_str(),
                            seal.seal_type().as_str()
                        )));
                    }
                    let recovery = read_json(physical, paths::RECOVERY_CONFIG).await?;
                    State::Sealed(SealedState {
                        seal_config,
                        recovery,
                        progress: Progress::default(),
                        manual: false,
                        join: None,
                    })
                }
            },
        )
    }

    pub fn seal_backend(&self) -> &SealBackend {
        &self.seal
    }

    pub fn metrics(&self) -> &Arc<ServerMetrics> {
        &self.metrics
    }

    pub fn storage_type(&self) -> &'static str {
        self.physical.kind()
    }

    pub async fn seal_status(&self) -> SealStatus {
        let state = self.state.read().await;
        let recovery_seal = matches!(self.seal, SealBackend::AwsKms(_));
        let mut st = SealStatus {
            seal_type: self.seal.seal_type(),
            initialized: false,
            sealed: true,
            t: 0,
            n: 0,
            progress: 0,
            nonce: String::new(),
            recovery_seal,
            storage_type: self.physical.kind(),
            cluster: None,
        };
        let (cfg, rec) = match &*state {
            State::Uninitialized => return st,
            State::Sealed(s) => (&s.seal_config, &s.recovery),
            State::Unsealed(u) => (&u.seal_config, &u.recovery),
        };
        let (t, n) = match rec {
            Some(r) => (r.secret_threshold, r.secret_shares),
            None => (cfg.secret_threshold, cfg.secret_shares),
        };
        st.initialized = true;
        st.t = t;
        st.n = n;
        match &*state {
            State::Sealed(s) => {
                st.progress = s.progress.parts.len();
                st.nonce = s.progress.nonce.clone();
            }
            State::Unsealed(u) => {
                st.sealed = false;
                st.cluster = Some(u.cluster.clone());
            }
            State::Uninitialized => {}
        }
        st
    }

    /// The unsealed state that serves requests, or `Sealed` (also when not initialized), or
    /// `Standby` on a raft node whose state is a standby's (it reads a local replica that may
    /// be behind the leader, so it must never answer a client).
    ///
    /// Also `Standby` on a raft leader whose state was loaded in an earlier term of office
    /// ([`Unsealed::loaded_under`]), until the HA loop has reloaded it.
    pub async fn unsealed(&self) -> Result<Arc<Unsealed>, CoreError> {
        let u = self.unsealed_any().await?;
        if u.standby {
            return Err(CoreError::Standby);
        }
        if let (Some(raft), Some(under)) = (&self.raft, u.loaded_under)
            && raft.leadership() != Some(under)
        {
            return Err(CoreError::Standby);
        }
        Ok(u)
    }

    /// The unsealed state, a standby's included.
    pub(crate) async fn unsealed_any(&self) -> Result<Arc<Unsealed>, CoreError> {
        match &*self.state.read().await {
            State::Unsealed(u) => Ok(Arc::clone(u)),
            State::Sealed(_) | State::Uninitialized => Err(CoreError::Sealed),
        }
    }

    /// Resolves a client token and consumes one use of a limited-use token (once per
    /// request); `PermissionDenied` when it is missing, unknown or expired.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
    ) -> Result<(Arc<Unsealed>, TokenEntry), CoreError> {
        let unsealed = self.unsealed().await?;
        let token = token.ok_or(CoreError::PermissionDenied)?;
        let entry = unsealed
            .tokens
            .use_token(&unsealed.barrier, token)
            .await?
            .ok_or(CoreError::PermissionDenied)?;
        Ok((unsealed, entry))
    }

    /// `sys/seal`: drops the unsealed state (keys, tokens, mounts, policies, audit, locks).
    /// With awskms the server then stays sealed until a restart or an unseal with recovery
    /// keys. The caller has checked the token (`update` and `sudo` on `sys/seal`).
    pub async fn seal(&self) -> Result<(), CoreError> {
        let mut state = self.state.write().await;
        let State::Unsealed(unsealed) = &*state else {
            return Err(CoreError::Sealed);
        };
        let unsealed = Arc::clone(unsealed);
        *state = State::Sealed(SealedState {
            seal_config: unsealed.seal_config.clone(),
            recovery: unsealed.recovery.clone(),
            progress: Progress::default(),
            manual: true,
            join: None,
        });
        self.metrics.sealed.set(1);
        tracing::info!("sealed by request");
        Ok(())
    }

    /// `sys/rotate`: adds a keyring term and persists the keyring. The caller has checked
    /// the token (`update` and `sudo` on `sys/rotate`).
    pub async fn rotate(&self) -> Result<(u32, u64), CoreError> {
        // The write lock serializes rotations and keeps a seal from racing one.
        let state = self.state.write().await;
        let State::Unsealed(current) = &*state else {
            return Err(CoreError::Sealed);
        };
        let keyring = current.barrier.rotate().await?;
        let (term, installed) = (keyring.active_term(), keyring.install_time());
        tracing::info!(term, "rotated the barrier key");
        Ok((term, installed))
    }

    /// Decrypts the keyring with `root_key` and builds the unsealed state.
    async fn open_barrier(
        &self,
        root_key: Key,
        seal_config: SealConfigRecord,
        recovery: Option<RecoveryConfigRecord>,
    ) -> Result<Unsealed, CoreError> {
        let blob = keyring_blob(&*self.local).await?;
        let keyring = Arc::new(Keyring::from_ciphertext(root_key, &blob)?);
        // On raft every node unseals from its local replica, as a standby: a node that was the
        // leader before a restart believes it still is, but cannot confirm it (no quorum
        // without the cluster TLS it is about to load). The HA loop makes it active once raft
        // confirms the leadership ([`ha`]).
        let standby = self.raft.is_some();
        self.load_unsealed(keyring, seal_config, recovery, standby)
            .await
    }

    /// Builds the unsealed state over an open keyring, reading the cluster info, the token
    /// salt and (when serving) the mount table and audit devices: the one place it is loaded.
    async fn load_unsealed(
        &self,
        keyring: Arc<Keyring>,
        seal_config: SealConfigRecord,
        recovery: Option<RecoveryConfigRecord>,
        standby: bool,
    ) -> Result<Unsealed, CoreError> {
        let physical = if standby {
            Arc::clone(&self.local)
        } else {
            Arc::clone(&self.physical)
        };
        let barrier = Barrier::new(physical, keyring);
        let cluster: ClusterInfo = match barrier.get(paths::CLUSTER_INFO).await? {
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| CoreError::Corrupt {
                path: paths::CLUSTER_INFO,
                reason: e.to_string(),
            })?,
            None => {
                return Err(CoreError::Corrupt {
                    path: paths::CLUSTER_INFO,
                    reason: "missing".into(),
                });
            }
        };
        let tokens = TokenStore::load(&barrier).await?;
        let mut unsealed = Unsealed::new(barrier, seal_config, recovery, cluster, tokens);
        unsealed.standby = standby;
        if !standby {
            unsealed.preload().await?;
        }
        Ok(unsealed)
    }

    /// Installs an unsealed state if the server is still sealed (and, for the auto-unseal
    /// loop, not manually sealed).
    async fn install_unsealed(&self, unsealed: Unsealed, respect_manual: bool) -> bool {
        let mut state = self.state.write().await;
        match &*state {
            State::Sealed(s) if !(respect_manual && s.manual) => {
                let unsealed = Arc::new(unsealed);
                *state = State::Unsealed(Arc::clone(&unsealed));
                self.metrics.sealed.set(0);
                drop(state);
                self.publish_cluster_tls(&unsealed).await;
                self.activate_if_leader().await;
                true
            }
            _ => false,
        }
    }
}

/// The stored keyring (`core/keyring`), encrypted under the root key.
async fn keyring_blob(physical: &dyn Physical) -> Result<Vec<u8>, CoreError> {
    physical
        .get(KEYRING_PATH)
        .await?
        .ok_or_else(|| CoreError::Corrupt {
            path: KEYRING_PATH,
            reason: "missing".into(),
        })
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    physical: &dyn Physical,
    path: &'static str,
) -> Result<Option<T>, CoreError> {
    match physical.get(path).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| CoreError::Corrupt {
                path,
                reason: e.to_string(),
            }),
    }
}

pub(crate) fn wrapped_root_key_from(raw: &[u8]) -> Result<WrappedRootKey, CoreError> {
    serde_json::from_slice(raw).map_err(|e| CoreError::Corrupt {
        path: paths::ROOT_KEY,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
