//! Logical layer: the versioned data of KV v2 keys (read, write, merge-patch, soft delete,
//! undelete, destroy, subkeys). Storage I/O through the barrier, one transaction per change.

use serde_json::{Map, Value};

use super::model::{self, Config, KeyMetadata, VersionInfo, VersionState};
use super::{Kv, KvError, check, corrupt, encode, metadata_key, version_key};
use crate::server::physical::TxnOp;

/// The result of reading a version.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOutcome {
    /// No such key, or no such version: Vault's 404 with `{"errors": []}`.
    NotFound,
    /// The version is soft-deleted or destroyed: Vault's 404 carrying the version's metadata.
    Gone(VersionInfo),
    Found {
        data: Map<String, Value>,
        info: VersionInfo,
    },
}

/// The result of a merge-patch.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOutcome {
    NotFound,
    /// The current version is deleted or destroyed (404 with its metadata, as Vault).
    Gone(VersionInfo),
    Written(VersionInfo),
}

/// What a delete-like call changed (Vault answers 204 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    NoSuchKey,
    Unchanged,
    Changed,
}

/// Vault's `validateCheckAndSetOption`.
fn check_cas(config: &Config, meta: &KeyMetadata, cas: Option<u64>) -> Result<(), KvError> {
    match cas {
        Some(cas) if cas != meta.current_version => Err(KvError::CasMismatch),
        Some(_) => Ok(()),
        None if config.cas_required || meta.cas_required => Err(KvError::CasRequired),
        None => Ok(()),
    }
}

impl Kv<'_> {
    /// Reads `version` of `key` (the current version when `None` or 0).
    pub async fn read(&self, key: &str, version: Option<u64>) -> Result<ReadOutcome, KvError> {
        check(key)?;
        let _guard = self.locks.lock_for(self.uuid, key).read().await;
        let Some(meta) = self.metadata(key).await? else {
            return Ok(ReadOutcome::NotFound);
        };
        let v = version.filter(|v| *v > 0).unwrap_or(meta.current_version);
        let (Some(state), Some(info)) = (meta.versions.get(&v), meta.version_info(v)) else {
            return Ok(ReadOutcome::NotFound);
        };
        if !state.is_live(model::now()) {
            return Ok(ReadOutcome::Gone(info));
        }
        let data = self.load_data(key, v).await?;
        Ok(ReadOutcome::Found { data, info })
    }

    async fn load_data(&self, key: &str, version: u64) -> Result<Map<String, Value>, KvError> {
        let storage_key = version_key(self.uuid, key, version);
        let raw = self
            .barrier
            .get(&storage_key)
            .await?
            .ok_or_else(|| corrupt(&storage_key, "could not find version data"))?;
        serde_json::from_slice(&raw).map_err(|e| corrupt(&storage_key, e))
    }

    /// Writes a new version. `cas`: `Some(0)` only creates, `Some(n)` only updates version `n`;
    /// `None` is refused when `cas_required` is set on the key or the mount.
    pub async fn write(
        &self,
        key: &str,
        data: Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<VersionInfo, KvError> {
        check(key)?;
        let config = self.config().await?;
        let _guard = self.locks.lock_for(self.uuid, key).write().await;
        let mut meta = self.metadata(key).await?.unwrap_or_default();
        check_cas(&config, &meta, cas)?;
        self.add_version(key, &config, &mut meta, &data).await
    }

    /// Records `data` as the next version of `key` and commits data, metadata and the pruning
    /// of versions beyond `max_versions` in one transaction. The caller holds the key's lock.
    async fn add_version(
        &self,
        key: &str,
        config: &Config,
        meta: &mut KeyMetadata,
        data: &Map<String, Value>,
    ) -> Result<VersionInfo, KvError> {
        let now = model::now();
        let state = VersionState {
            created_time: now,
            deletion_time: meta.deletion_time(config, now),
            destroyed: false,
        };
        let (version, pruned) = meta.add_version(state, config.max_versions);
        let data_key = version_key(self.uuid, key, version);
        let meta_key = metadata_key(self.uuid, key);
        let mut ops = Vec::with_capacity(2 + pruned.len());
        ops.push(TxnOp::Put {
            value: encode(&data_key, data)?.to_vec(),
            key: data_key,
        });
        ops.push(TxnOp::Put {
            value: encode(&meta_key, &*meta)?.to_vec(),
            key: meta_key,
        });
        ops.extend(pruned.into_iter().map(|v| TxnOp::Delete {
            key: version_key(self.uuid, key, v),
        }));
        self.barrier.transaction(ops).await?;
        meta.version_info(version)
            .ok_or_else(|| corrupt(key, "the version just added is missing"))
    }

    /// Applies a JSON merge patch (RFC 7386) to the current version and writes the result as a
    /// new version. The key must exist and its current version must be readable.
    pub async fn patch(
        &self,
        key: &str,
        patch: &Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<PatchOutcome, KvError> {
        check(key)?;
        let _guard = self.locks.lock_for(self.uuid, key).write().await;
        let Some(mut meta) = self.metadata(key).await? else {
            return Ok(PatchOutcome::NotFound);
        };
        let config = self.config().await?;
        check_cas(&config, &meta, cas)?;
        let current = meta.current_version;
        let (Some(state), Some(info)) = (meta.versions.get(&current), meta.version_info(current))
        else {
            return Ok(PatchOutcome::NotFound);
        };
        if !state.is_live(model::now()) {
            return Ok(PatchOutcome::Gone(info));
        }
        let mut data = Value::Object(self.load_data(key, current).await?);
        merge_patch(&mut data, &Value::Object(patch.clone()));
        let Value::Object(data) = data else {
            return Err(corrupt(key, "merge patch produced a non-object"));
        };
        let info = self.add_version(key, &config, &mut meta, &data).await?;
        Ok(PatchOutcome::Written(info))
    }

    /// Soft-deletes the current version (no-op when it is missing, deleted or destroyed).
    pub async fn delete_latest(&self, key: &str) -> Result<DeleteOutcome, KvError> {
        self.update_versions(key, |meta, now| {
            let current = meta.current_version;
            match meta.versions.get_mut(&current) {
                Some(v) if v.is_live(now) => {
                    v.deletion_time = Some(now);
                    true
                }
                _ => false,
            }
        })
        .await
    }

    /// Soft-deletes the listed versions that exist and are neither deleted nor destroyed.
    pub async fn delete_versions(
        &self,
        key: &str,
        versions: &[u64],
    ) -> Result<DeleteOutcome, KvError> {
        self.update_versions(key, |meta, now| {
            let mut changed = false;
            for n in versions {
                if let Some(v) = meta.versions.get_mut(n).filter(|v| v.is_live(now)) {
                    v.deletion_time = Some(now);
                    changed = true;
                }
            }
            changed
        })
        .await
    }

    /// Restores soft-deleted versions. As in Vault, an undeleted version gets a fresh deletion
    /// time when `delete_version_after` applies.
    pub async fn undelete(&self, key: &str, versions: &[u64]) -> Result<DeleteOutcome, KvError> {
        let config = self.config().await?;
        self.update_versions(key, |meta, now| {
            let deletion_time = meta.deletion_time(&config, now);
            let mut changed = false;
            for n in versions {
                if let Some(v) = meta.versions.get_mut(n).filter(|v| !v.destroyed) {
                    changed |= v.deletion_time != deletion_time;
                    v.deletion_time = deletion_time;
                }
            }
            changed
        })
        .await
    }

    /// Runs `change` on the key's metadata under its lock and stores it if it changed.
    async fn update_versions(
        &self,
        key: &str,
        change: impl FnOnce(&mut KeyMetadata, model::Nanos) -> bool,
    ) -> Result<DeleteOutcome, KvError> {
        check(key)?;
        let _guard = self.locks.lock_for(self.uuid, key).write().await;
        let Some(mut meta) = self.metadata(key).await? else {
            return Ok(DeleteOutcome::NoSuchKey);
        };
        if !change(&mut meta, model::now()) {
            return Ok(DeleteOutcome::Unchanged);
        }
        let meta_key = metadata_key(self.uuid, key);
        let raw = encode(&meta_key, &meta)?;
        self.barrier.put(&meta_key, &raw).await?;
        Ok(DeleteOutcome::Changed)
    }

    /// Permanently removes the data of the listed versions; they stay in the metadata, marked
    /// `destroyed`. Metadata and data change in one transaction.
    pub async fn destroy(&self, key: &str, versions: &[u64]) -> Result<DeleteOutcome, KvError> {
        check(key)?;
        let _guard = self.locks.lock_for(self.uuid, key).write().await;
        let Some(mut meta) = self.metadata(key).await? else {
            return Ok(DeleteOutcome::NoSuchKey);
        };
        let mut ops = Vec::new();
        for n in versions {
            if let Some(v) = meta.versions.get_mut(n).filter(|v| !v.destroyed) {
                v.destroyed = true;
                ops.push(TxnOp::Delete {
                    key: version_key(self.uuid, key, *n),
                });
            }
        }
        if ops.is_empty() {
            return Ok(DeleteOutcome::Unchanged);
        }
        let meta_key = metadata_key(self.uuid, key);
        ops.push(TxnOp::Put {
            value: encode(&meta_key, &meta)?.to_vec(),
            key: meta_key,
        });
        self.barrier.transaction(ops).await?;
        Ok(DeleteOutcome::Changed)
    }
}

/// RFC 7386 JSON merge patch: `null` removes a member, objects merge recursively, anything
/// else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (k, v) in patch {
            if v.is_null() {
                target.remove(k);
            } else {
                merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Vault's subkeys view: every leaf (a non-object, or an empty object) becomes `null`. With
/// `depth > 0`, objects at that depth are leaves too (`depth = 1` shows only top-level keys).
pub fn subkeys(data: &Map<String, Value>, depth: u32) -> Map<String, Value> {
    fn strip(map: &Map<String, Value>, level: u32, max: u32) -> Map<String, Value> {
        map.iter()
            .map(|(k, v)| {
                let out = match v {
                    Value::Object(inner) if !inner.is_empty() && (max == 0 || level < max) => {
                        Value::Object(strip(inner, level + 1, max))
                    }
                    _ => Value::Null,
                };
                (k.clone(), out)
            })
            .collect()
    }
    strip(data, 1, depth)
}
