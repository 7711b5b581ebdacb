//! Logical layer: KV v2 key metadata (settings, custom metadata, delete of all versions), the
//! folder listing and the engine config. Storage I/O through the barrier.

use std::collections::BTreeMap;

use super::model::{self, Config, KeyMetadata};
use super::{
    Kv, KvError, LOGICAL_PREFIX, METADATA_PREFIX, check, config_key, encode, metadata_key, path,
    version_key,
};
use crate::server::physical::TxnOp;

/// Vault's limits on `custom_metadata`.
pub const MAX_CUSTOM_METADATA_KEYS: usize = 64;
pub const MAX_CUSTOM_METADATA_KEY_LEN: usize = 128;
pub const MAX_CUSTOM_METADATA_VALUE_LEN: usize = 512;
/// The lock stripe name of a mount's config (a NUL can never be in a key).
const CONFIG_LOCK: &str = "\0config";

/// Settings a metadata write or patch may change; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataUpdate {
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    /// Seconds, not negative.
    pub delete_version_after: Option<i64>,
    /// For a write, the new map. For a patch, `None` values remove keys (merge patch).
    pub custom_metadata: Option<BTreeMap<String, Option<String>>>,
}

impl MetadataUpdate {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Vault's `validateCustomMetadata`, every problem reported at once.
pub fn validate_custom_metadata(map: &BTreeMap<String, String>) -> Result<(), KvError> {
    let prefix = "custom_metadata validation failed";
    if map.len() > MAX_CUSTOM_METADATA_KEYS {
        return Err(KvError::InvalidRequest(format!(
            "{prefix}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, provided {}",
            map.len()
        )));
    }
    let mut errors = Vec::new();
    for (k, v) in map {
        if k.is_empty() || k.len() > MAX_CUSTOM_METADATA_KEY_LEN {
            errors.push(format!(
                "{prefix}: length of key {k:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_LEN}",
                k.len()
            ));
        }
        if v.is_empty() || v.len() > MAX_CUSTOM_METADATA_VALUE_LEN {
            errors.push(format!(
                "{prefix}: length of value for key {k:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_LEN}",
                v.len()
            ));
        }
        if k.chars().any(char::is_control) {
            errors.push(format!(
                "{prefix}: key {k:?} contains unprintable characters"
            ));
        }
        if v.chars().any(char::is_control) {
            errors.push(format!(
                "{prefix}: value for key {k:?} contains unprintable characters"
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(KvError::InvalidRequest(errors.join("; ")))
    }
}

const CAS_WARNING: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

impl Kv<'_> {
    /// `POST <mount>/metadata/<key>`: creates the key's metadata if needed (with no versions)
    /// and applies the settings. Returns Vault's warnings. An empty update changes nothing.
    pub async fn write_metadata(
        &self,
        key: &str,
        update: &MetadataUpdate,
    ) -> Result<Vec<String>, KvError> {
        check(key)?;
        if update.is_empty() {
            return Ok(Vec::new());
        }
        let custom = update.custom_metadata.as_ref().map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect::<BTreeMap<_, _>>()
        });
        if let Some(custom) = &custom {
            validate_custom_metadata(custom)?;
        }
        let warnings = self.cas_warning(update).await?;
        let _guard = self.locks.lock_for(self.uuid, key).write().await;
        let mut meta = match self.metadata(key).await? {
            Some(m) => m,
            None => KeyMetadata::new(model::now()),
        };
        apply_settings(&mut meta, update);
        if custom.is_some() {
            meta.custom_metadata = custom;
        }
        self.store_metadata(key, &meta).await?;
        Ok(warnings)
    }

    /// `PATCH <mount>/metadata/<key>`: like a write, but `custom_metadata` is merged (a `null`
    /// value removes a key) and the key must exist (`Ok(None)` otherwise).
    pub async fn patch_metadata(
        &self,
        key: &str,
        update: &MetadataUpdate,
    ) -> Result<Option<Vec<String>>, KvError> {
        check(key)?;
        let warnings = self.cas_warning(update).await?;
        let _guard = self.locks.lock_for(self.uuid, key).write().await;
        let Some(mut meta) = self.metadata(key).await? else {
            return Ok(None);
        };
        apply_settings(&mut meta, update);
        if let Some(patch) = &update.custom_metadata {
            let mut custom = meta.custom_metadata.take().unwrap_or_default();
            for (k, v) in patch {
                match v {
                    Some(v) => custom.insert(k.clone(), v.clone()),
                    None => custom.remove(k),
                };
            }
            validate_custom_metadata(&custom)?;
            meta.custom_metadata = Some(custom);
        }
        self.store_metadata(key, &meta).await?;
        Ok(Some(warnings))
    }

    async fn cas_warning(&self, update: &MetadataUpdate) -> Result<Vec<String>, KvError> {
        if update.cas_required == Some(false) && self.config().await?.cas_required {
            Ok(vec![CAS_WARNING.to_owned()])
        } else {
            Ok(Vec::new())
        }
    }

    async fn store_metadata(&self, key: &str, meta: &KeyMetadata) -> Result<(), KvError> {
        let meta_key = metadata_key(self.uuid, key);
        let raw = encode(&meta_key, meta)?;
        self.barrier.put(&meta_key, &raw).await?;
        Ok(())
    }

    /// `DELETE <mount>/metadata/<key>`: the metadata and the data of every version, in one
    /// transaction. Returns false when the key did not exist.
    pub async fn delete_metadata(&self, key: &str) -> Result<bool, KvError> {
        check(key)?;
        let _guard = self.locks.lock_for(self.uuid, key).write().await;
        let Some(meta) = self.metadata(key).await? else {
            return Ok(false);
        };
        let mut ops: Vec<TxnOp> = meta
            .versions
            .keys()
            .map(|n| TxnOp::Delete {
                key: version_key(self.uuid, key, *n),
            })
            .collect();
        ops.push(TxnOp::Delete {
            key: metadata_key(self.uuid, key),
        });
        self.barrier.transaction(ops).await?;
        Ok(true)
    }

    /// The keys and folders (ending in `/`) directly under `prefix` (empty for the root).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let prefix = path::list_prefix(prefix).map_err(|source| KvError::InvalidPath {
            path: prefix.to_owned(),
            source,
        })?;
        let storage_prefix = format!("{LOGICAL_PREFIX}{}/{METADATA_PREFIX}{prefix}", self.uuid);
        Ok(self.barrier.list(&storage_prefix).await?)
    }

    /// Changes the engine config under its lock and stores it.
    pub async fn update_config(&self, change: impl FnOnce(&mut Config)) -> Result<(), KvError> {
        let _guard = self.locks.lock_for(self.uuid, CONFIG_LOCK).write().await;
        let mut config = self.config().await?;
        change(&mut config);
        let key = config_key(self.uuid);
        let raw = encode(&key, &config)?;
        self.barrier.put(&key, &raw).await?;
        Ok(())
    }
}

fn apply_settings(meta: &mut KeyMetadata, update: &MetadataUpdate) {
    if let Some(m) = update.max_versions {
        meta.max_versions = m;
    }
    if let Some(c) = update.cas_required {
        meta.cas_required = c;
    }
    if let Some(d) = update.delete_version_after {
        meta.delete_version_after = d;
    }
}
