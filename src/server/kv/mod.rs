//! Logical layer: the key/value version 2 secrets engine, as Vault's kv plugin defines it
//! (versions, check-and-set, soft delete, undelete, destroy, key metadata, subkeys, config).
//! Storage I/O through the barrier only; one engine instance per mount, addressed by the
//! mount's UUID (see [`crate::server::mounts`]).
//!
//! # Storage layout (every entry encrypted by the barrier)
//! - [`config_key`] `logical/<mount uuid>/config`: the mount's [`Config`] as JSON.
//! - [`metadata_key`] `logical/<mount uuid>/metadata/<key>`: the key's [`KeyMetadata`] as JSON:
//!   its settings and the state of every kept version. Its presence means the key exists, and
//!   `LIST` walks these entries.
//! - [`version_key`] `logical/<mount uuid>/versions/<sha256(key) hex>/<n>`: the data of version
//!   `n` as a JSON object. The key is hashed so that a key and a sub-key (`a` and `a/1`) can
//!   never collide, whatever the names.
//!
//! Every change that touches more than one entry (a write with its pruned versions, destroy,
//! metadata delete) is one barrier transaction, so a crash never leaves half of it; the file
//! backend fsyncs each commit before it is acknowledged. Changes to one key are serialized by a
//! striped lock (as Vault's `locksutil`), so check-and-set holds under concurrency.

mod data;
mod meta;
pub mod model;
pub mod path;

use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::RwLock;
use zeroize::Zeroizing;

pub use data::{DeleteOutcome, PatchOutcome, ReadOutcome, merge_patch, subkeys};
pub use meta::{MetadataUpdate, validate_custom_metadata};
pub use model::{Config, KeyMetadata, MetadataInfo, VersionInfo};
pub use path::PathError;

use super::barrier::{Barrier, BarrierError};

/// Prefix of every secrets engine's storage, followed by the mount's UUID.
pub const LOGICAL_PREFIX: &str = "logical/";
pub const CONFIG_SUFFIX: &str = "config";
pub const METADATA_PREFIX: &str = "metadata/";
pub const VERSIONS_PREFIX: &str = "versions/";
/// Number of lock stripes (Vault's `locksutil` uses 256 too).
const LOCK_STRIPES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("invalid secret path {path:?}: {source}")]
    InvalidPath { path: String, source: PathError },
    #[error("check-and-set parameter did not match the current version")]
    CasMismatch,
    #[error("check-and-set parameter required for this call")]
    CasRequired,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("stored KV entry {key:?} is malformed: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// Storage key of a mount's engine config.
pub fn config_key(mount_uuid: &str) -> String {
    format!("{LOGICAL_PREFIX}{mount_uuid}/{CONFIG_SUFFIX}")
}

/// Storage key of a key's metadata.
pub fn metadata_key(mount_uuid: &str, key: &str) -> String {
    format!("{LOGICAL_PREFIX}{mount_uuid}/{METADATA_PREFIX}{key}")
}

/// Storage key of the data of one version of a key.
pub fn version_key(mount_uuid: &str, key: &str, version: u64) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    format!(
        "{LOGICAL_PREFIX}{mount_uuid}/{VERSIONS_PREFIX}{}/{version}",
        hex::encode(digest.as_ref())
    )
}

/// The striped per-key locks of one unsealed server, shared by every mount (the stripe is
/// chosen from mount and key). A field of the unsealed state: sealing drops them.
#[derive(Debug)]
pub struct KeyLocks(Vec<RwLock<()>>);

impl Default for KeyLocks {
    fn default() -> Self {
        Self((0..LOCK_STRIPES).map(|_| RwLock::new(())).collect())
    }
}

impl KeyLocks {
    fn lock_for(&self, mount_uuid: &str, key: &str) -> &RwLock<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (mount_uuid, key).hash(&mut h);
        let stripe = usize::try_from(h.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        // The stripe is below LOCK_STRIPES, the length of the vector.
        &self.0[stripe]
    }
}

/// The KV v2 engine of one mount: a barrier, the server's key locks and the mount's UUID.
/// Cheap to build per request.
///
/// For a raw benchmark of the write path without HTTP:
/// `Kv::new(&barrier, &locks, &mount_uuid).write("bench/k1", data, None).await`.
#[derive(Debug, Clone, Copy)]
pub struct Kv<'a> {
    barrier: &'a Barrier,
    locks: &'a KeyLocks,
    uuid: &'a str,
}

impl<'a> Kv<'a> {
    pub fn new(barrier: &'a Barrier, locks: &'a KeyLocks, mount_uuid: &'a str) -> Self {
        Self {
            barrier,
            locks,
            uuid: mount_uuid,
        }
    }

    pub fn mount_uuid(&self) -> &str {
        self.uuid
    }

    /// The engine config (defaults when never written).
    pub async fn config(&self) -> Result<Config, KvError> {
        Ok(self.load(&config_key(self.uuid)).await?.unwrap_or_default())
    }

    /// The key's metadata, or `None` when the key does not exist.
    pub async fn metadata(&self, key: &str) -> Result<Option<KeyMetadata>, KvError> {
        check(key)?;
        self.load(&metadata_key(self.uuid, key)).await
    }

    /// Whether the key exists (for the ACL's create-or-update decision).
    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.metadata(key).await?.is_some())
    }

    async fn load<T: DeserializeOwned>(&self, storage_key: &str) -> Result<Option<T>, KvError> {
        match self.barrier.get(storage_key).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| corrupt(storage_key, e)),
        }
    }
}

fn check(key: &str) -> Result<(), KvError> {
    path::check_key(key).map_err(|source| KvError::InvalidPath {
        path: key.to_owned(),
        source,
    })
}

fn corrupt(storage_key: &str, e: impl std::fmt::Display) -> KvError {
    KvError::Corrupt {
        key: storage_key.to_owned(),
        reason: e.to_string(),
    }
}

/// Serializes a record into a buffer that is wiped when dropped.
fn encode<T: Serialize>(storage_key: &str, value: &T) -> Result<Zeroizing<Vec<u8>>, KvError> {
    serde_json::to_vec(value)
        .map(Zeroizing::new)
        .map_err(|e| corrupt(storage_key, e))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_meta;
#[cfg(test)]
mod tests_patch;
