//! Physical layer: raw key/value storage. Does I/O; sees only ciphertext plus the few documented
//! plaintext entries that must be readable while sealed (see [`crate::server::core::paths`]).
//!
//! The trait is deliberately small and transactional so that a replicated backend (Raft) can
//! implement it later without changes to the barrier or the core above it.

mod cache;
mod file;
mod inmem;
mod raft;
mod read_fence;

pub use cache::{CachedBackend, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_SIZE};
pub use file::{DB_FILE, FileBackend};
pub use inmem::InmemBackend;
pub use raft::{
    LocalView, MAX_ENTRY_SIZE, MAX_RESTORE_SIZE, NodeInfo, Progress, RaftBackend, RaftClusterState,
    RaftPeer, RaftRole, RaftRpcHandler, RaftServerState, RaftSnapshot, RaftStatus, RaftTiming,
    RoleWatch, SnapshotError,
};
pub use read_fence::{Leadership, ReadFence};

use async_trait::async_trait;

/// One operation of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PhysicalError {
    #[error("storage backend {backend} failed at {path}: {message}")]
    Io {
        backend: &'static str,
        path: String,
        message: String,
    },
    #[error("storage key {key:?} is invalid: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// The raft backend cannot serve the request on this node: it is not the leader, no leader
    /// is elected, or the node has not joined a cluster. `reason` says which and what to do;
    /// `leader_api_addr` is where the active node takes requests, when one is known.
    #[error("{reason}")]
    NotLeader {
        leader_api_addr: Option<String>,
        reason: String,
    },
}

/// Durable key/value storage. Every successful `put`, `delete` and `transaction` has been made
/// durable (committed and, for on-disk backends, fsynced) before it returns.
#[async_trait]
pub trait Physical: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError>;
    async fn delete(&self, key: &str) -> Result<(), PhysicalError>;
    /// Vault's list semantics: the immediate children of `prefix` (which is empty or ends in
    /// `/`), with sub-folders returned once as `name/`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError>;
    /// Applies all operations atomically: either every one is durable, or none is.
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError>;
    /// The `storage` stanza type, as reported by `sys/seal-status` (`file`, `inmem`).
    fn kind(&self) -> &'static str;
}

/// Rejects keys that could never have been written by the layers above.
pub(crate) fn check_key(key: &str) -> Result<(), PhysicalError> {
    let reason = if key.is_empty() {
        Some("empty")
    } else if key.starts_with('/') {
        Some("starts with '/'")
    } else if key.contains('\0') {
        Some("contains NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PhysicalError::InvalidKey {
            key: key.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Folds a sorted stream of keys under `prefix` into Vault's list result.
pub(crate) fn fold_children<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if child.is_empty() {
            continue;
        }
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
pub(crate) mod contract;
