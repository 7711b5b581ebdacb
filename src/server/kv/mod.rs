//! Logical layer: a key/value version 2 secrets engine mounted at `secret/` (the core subset:
//! versioned write with check-and-set, read by version, soft delete of the latest version, list).
//! Storage I/O through the barrier only.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::barrier::{Barrier, BarrierError};

/// Storage prefix of the records of the `secret/` mount (encrypted).
pub const PREFIX: &str = "logical/kv/secret/meta/";
/// Versions kept per secret (Vault's default `max_versions`).
pub const MAX_VERSIONS: u64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("invalid secret path {0:?}: use slash-separated names without empty or '..' segments")]
    InvalidPath(String),
    #[error("check-and-set parameter did not match the current version")]
    CasMismatch,
    #[error("stored secret {path:?} is malformed: {reason}")]
    Corrupt { path: String, reason: String },
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionMeta {
    pub created_time: String,
    pub deletion_time: String,
    pub destroyed: bool,
    pub version: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    current_version: u64,
    versions: BTreeMap<u64, StoredVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredVersion {
    created_time: String,
    deletion_time: String,
    destroyed: bool,
    data: Option<Map<String, Value>>,
}

impl StoredVersion {
    fn meta(&self, version: u64) -> VersionMeta {
        VersionMeta {
            created_time: self.created_time.clone(),
            deletion_time: self.deletion_time.clone(),
            destroyed: self.destroyed,
            version,
        }
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// Checks a secret path and returns it normalized (no leading or trailing slash).
pub fn clean_path(path: &str) -> Result<String, KvError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty()
        || trimmed.len() > 1024
        || trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || trimmed.contains('\0')
    {
        return Err(KvError::InvalidPath(path.to_owned()));
    }
    Ok(trimmed.to_owned())
}

async fn load(barrier: &Barrier, path: &str) -> Result<Option<Record>, KvError> {
    let key = format!("{PREFIX}{path}");
    match barrier.get(&key).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| KvError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
    }
}

async fn save(barrier: &Barrier, path: &str, record: &Record) -> Result<(), KvError> {
    let raw =
        zeroize::Zeroizing::new(serde_json::to_vec(record).map_err(|e| KvError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })?);
    barrier.put(&format!("{PREFIX}{path}"), &raw).await?;
    Ok(())
}

/// Writes a new version. `cas`: `Some(0)` = only if absent; `Some(n)` = only if current is n.
pub async fn write(
    barrier: &Barrier,
    path: &str,
    data: Map<String, Value>,
    cas: Option<u64>,
) -> Result<VersionMeta, KvError> {
    let path = clean_path(path)?;
    let mut record = load(barrier, &path).await?.unwrap_or_default();
    if cas.is_some_and(|cas| cas != record.current_version) {
        return Err(KvError::CasMismatch);
    }
    let version = record.current_version + 1;
    let stored = StoredVersion {
        created_time: now_rfc3339(),
        deletion_time: String::new(),
        destroyed: false,
        data: Some(data),
    };
    let meta = stored.meta(version);
    record.versions.insert(version, stored);
    record.current_version = version;
    while record.versions.len() as u64 > MAX_VERSIONS {
        let Some(oldest) = record.versions.keys().next().copied() else {
            break;
        };
        record.versions.remove(&oldest);
    }
    save(barrier, &path, &record).await?;
    Ok(meta)
}

/// Reads a version (latest when `None`). `Ok(None)` when it does not exist; deleted or destroyed
/// versions return their metadata with no data, as Vault does.
pub async fn read(
    barrier: &Barrier,
    path: &str,
    version: Option<u64>,
) -> Result<Option<(Option<Map<String, Value>>, VersionMeta)>, KvError> {
    let path = clean_path(path)?;
    let Some(record) = load(barrier, &path).await? else {
        return Ok(None);
    };
    let v = version
        .filter(|v| *v != 0)
        .unwrap_or(record.current_version);
    Ok(record.versions.get(&v).map(|s| {
        let data = if s.destroyed || !s.deletion_time.is_empty() {
            None
        } else {
            s.data.clone()
        };
        (data, s.meta(v))
    }))
}

/// Soft-deletes the latest version. Returns false when there is nothing to delete.
pub async fn delete_latest(barrier: &Barrier, path: &str) -> Result<bool, KvError> {
    let path = clean_path(path)?;
    let Some(mut record) = load(barrier, &path).await? else {
        return Ok(false);
    };
    let current = record.current_version;
    let Some(v) = record.versions.get_mut(&current) else {
        return Ok(false);
    };
    if v.deletion_time.is_empty() {
        v.deletion_time = now_rfc3339();
        save(barrier, &path, &record).await?;
    }
    Ok(true)
}

/// Lists the secrets and folders directly under `prefix`.
pub async fn list(barrier: &Barrier, prefix: &str) -> Result<Vec<String>, KvError> {
    let trimmed = prefix.trim_matches('/');
    let storage_prefix = if trimmed.is_empty() {
        PREFIX.to_owned()
    } else {
        format!("{PREFIX}{}/", clean_path(trimmed)?)
    };
    Ok(barrier.list(&storage_prefix).await?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::server::barrier::{Key, Keyring};
    use crate::server::physical::InmemBackend;

    fn barrier() -> Barrier {
        Barrier::new(
            Arc::new(InmemBackend::new()),
            Arc::new(Keyring::new(Key::generate().expect("key")).expect("keyring")),
        )
    }

    fn data(v: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("password".into(), Value::String(v.into()));
        m
    }

    #[tokio::test]
    async fn versions_cas_delete_and_list() {
        let b = barrier();
        let m1 = write(&b, "app/db", data("one"), Some(0))
            .await
            .expect("create");
        assert_eq!(m1.version, 1);
        assert!(matches!(
            write(&b, "app/db", data("x"), Some(0)).await,
            Err(KvError::CasMismatch)
        ));
        let m2 = write(&b, "app/db", data("two"), Some(1))
            .await
            .expect("cas update");
        assert_eq!(m2.version, 2);
        let (d, meta) = read(&b, "app/db", None)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(d, Some(data("two")));
        assert_eq!(meta.version, 2);
        let (d1, _) = read(&b, "app/db", Some(1))
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(d1, Some(data("one")));
        assert!(read(&b, "app/db", Some(9)).await.expect("read").is_none());
        assert!(delete_latest(&b, "app/db").await.expect("delete"));
        let (d, meta) = read(&b, "app/db", None)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(d, None);
        assert!(!meta.deletion_time.is_empty());
        write(&b, "app/sub/x", data("y"), None)
            .await
            .expect("write");
        assert_eq!(list(&b, "app/").await.expect("list"), vec!["db", "sub/"]);
        assert_eq!(list(&b, "").await.expect("list"), vec!["app/"]);
    }

    #[tokio::test]
    async fn keeps_at_most_max_versions() {
        let b = barrier();
        for i in 0..15 {
            write(&b, "k", data(&i.to_string()), None)
                .await
                .expect("write");
        }
        assert!(read(&b, "k", Some(5)).await.expect("read").is_none());
        assert!(read(&b, "k", Some(6)).await.expect("read").is_some());
    }

    #[test]
    fn bad_paths_are_rejected() {
        for p in ["", "/", "a//b", "../x", "a/../b", "a/./b"] {
            assert!(clean_path(p).is_err(), "{p:?}");
        }
        assert_eq!(clean_path("/a/b/").expect("ok"), "a/b");
    }
}
