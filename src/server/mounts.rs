//! Logical layer: the mount table, which maps request paths to secrets engines (only KV
//! version 2 here). Storage I/O through the barrier.
//!
//! The table is one barrier-encrypted JSON entry at [`MOUNT_TABLE_PATH`] (`core/mounts`, as in
//! Vault). It is created on first access after unseal with `sys/` (the system backend, listed
//! for clients but never routed here) and KV v2 at `secret/`; unmounting `secret/` later is
//! remembered. Each KV mount keeps its data under `logical/<mount uuid>/` (see
//! [`crate::server::kv`]).
//!
//! Unmounting removes the entry and records the UUID in `purging` in one write, then deletes the
//! mount's data in transactions of at most [`PURGE_BATCH`] keys, then clears `purging`. A purge
//! cut short by a crash is finished by the next mount or unmount.
//!
//! State: a [`MountStore`] per unsealed server (a field of the core's unsealed state, dropped
//! on seal) holds the locks and the cached table; [`Mounts`] is the short-lived view that pairs
//! it with the barrier and the KV key locks. KV requests hold [`Mounts::gate`] (shared) for
//! their whole duration, so an unmount (exclusive) waits for in-flight requests before its
//! data goes. Table changes hold the table lock. Order: gate before table lock, never the
//! reverse. The cached table is replaced by every write through the store, so routing a
//! request reads no storage; one server process owns its storage, so this is coherent.

mod purge;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock, RwLockReadGuard};

use crate::server::barrier::{Barrier, BarrierError};
use crate::server::kv::{self, KeyLocks, Kv, KvError, PathError};

/// Storage path of the mount table (barrier-encrypted).
pub const MOUNT_TABLE_PATH: &str = "core/mounts";
/// Where KV v2 is mounted in a new table.
pub const DEFAULT_KV_PATH: &str = "secret/";
/// First path segments that can never be mounted (Vault's protected mounts).
pub const RESERVED: [&str; 5] = ["sys", "auth", "cubbyhole", "identity", "audit"];
/// Most keys deleted per transaction when unmounting.
pub const PURGE_BATCH: usize = 256;
/// Vault's system-wide default and maximum lease TTL (32 days), reported by `tune`.
pub const SYSTEM_MAX_TTL: u64 = 2_764_800;

/// The mount state of one unsealed server: the request gate, the table lock and the cached
/// table.
#[derive(Debug, Default)]
pub struct MountStore {
    gate: RwLock<()>,
    table_lock: Mutex<()>,
    cached: std::sync::RwLock<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    /// Bumped by every write through the store.
    generation: u64,
    table: Option<Arc<MountTable>>,
}

/// The mount table of one unsealed server: its store, its barrier and its KV key locks.
#[derive(Debug, Clone, Copy)]
pub struct Mounts<'a> {
    barrier: &'a Barrier,
    store: &'a MountStore,
    locks: &'a KeyLocks,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid mount path {path:?}: {source}")]
    InvalidPath { path: String, source: PathError },
    #[error("cannot mount or change {path:?}: paths under {RESERVED:?} are reserved")]
    Reserved { path: String },
    #[error("path is already in use at {existing}")]
    InUse { existing: String },
    #[error(
        "secrets engine {kind:?} is not supported: this server implements only KV version 2 (type \"kv\" with options.version \"2\", or type \"kv-v2\")"
    )]
    UnsupportedType { kind: String },
    #[error("invalid mount option: {0}")]
    InvalidOption(String),
    #[error("no mount at {path:?}")]
    NotFound { path: String },
    #[error("stored mount table is malformed: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    /// Seconds; 0 means the system default.
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    pub force_no_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    /// Ends in `/`, as Vault prints it (`secret/`).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    /// `None` for the system backend (Vault reports `null`).
    pub options: Option<BTreeMap<String, String>>,
    pub config: MountConfig,
    pub local: bool,
    pub seal_wrap: bool,
}

impl MountEntry {
    pub fn is_kv(&self) -> bool {
        self.kind == "kv"
    }

    fn new(path: &str, kind: &str, description: &str) -> Self {
        let id = uuid::Uuid::new_v4();
        let accessor_prefix = if kind == "kv" { "kv" } else { kind };
        Self {
            path: path.to_owned(),
            kind: kind.to_owned(),
            description: description.to_owned(),
            uuid: id.to_string(),
            accessor: format!(
                "{accessor_prefix}_{}",
                id.simple().to_string().get(..8).unwrap_or_default()
            ),
            options: None,
            config: MountConfig::default(),
            local: false,
            seal_wrap: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
    /// UUIDs of unmounted engines whose data is still being deleted.
    #[serde(default)]
    pub purging: Vec<String>,
}

impl MountTable {
    fn initial() -> Self {
        let sys = MountEntry::new(
            "sys/",
            "system",
            "system endpoints used for control, policy and debugging",
        );
        let mut secret = MountEntry::new(DEFAULT_KV_PATH, "kv", "key/value secret storage");
        secret.options = Some(kv_options());
        Self {
            entries: vec![sys, secret],
            purging: Vec::new(),
        }
    }

    /// The KV mount serving `path` (longest matching mount path) and the rest of the path.
    pub fn route<'a>(&'a self, path: &'a str) -> Option<(&'a MountEntry, &'a str)> {
        self.entries
            .iter()
            .filter(|e| e.is_kv())
            .filter(|e| path.starts_with(&e.path) || e.path.strip_suffix('/') == Some(path))
            .max_by_key(|e| e.path.len())
            .map(|e| (e, path.get(e.path.len()..).unwrap_or("")))
    }

    pub fn get(&self, path: &str) -> Option<&MountEntry> {
        self.entries.iter().find(|e| e.path == path)
    }
}

fn kv_options() -> BTreeMap<String, String> {
    [("version".to_owned(), "2".to_owned())].into()
}

/// Normalizes a mount path from a request (`a/b` or `a/b/`) to Vault's form `a/b/`.
pub fn normalize_path(path: &str) -> Result<String, MountError> {
    let trimmed = path.trim_end_matches('/');
    let invalid = |source| MountError::InvalidPath {
        path: path.to_owned(),
        source,
    };
    if trimmed.is_empty() {
        return Err(invalid(PathError::Empty));
    }
    kv::path::check_key(trimmed).map_err(invalid)?;
    Ok(format!("{trimmed}/"))
}

fn check_not_reserved(path: &str) -> Result<(), MountError> {
    let first = path.split('/').next().unwrap_or("");
    if RESERVED.contains(&first) {
        return Err(MountError::Reserved {
            path: path.to_owned(),
        });
    }
    Ok(())
}

async fn load(barrier: &Barrier) -> Result<Option<MountTable>, MountError> {
    match barrier.get(MOUNT_TABLE_PATH).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| MountError::Corrupt(e.to_string())),
    }
}

impl<'a> Mounts<'a> {
    pub fn new(barrier: &'a Barrier, store: &'a MountStore, locks: &'a KeyLocks) -> Self {
        Self {
            barrier,
            store,
            locks,
        }
    }

    /// Held (shared) by every request served by a mounted engine.
    pub async fn gate(&self) -> RwLockReadGuard<'a, ()> {
        self.store.gate.read().await
    }

    /// The KV engine of the mount with this UUID.
    pub fn kv(&self, uuid: &'a str) -> Kv<'a> {
        Kv::new(self.barrier, self.locks, uuid)
    }

    async fn store(&self, table: &MountTable) -> Result<(), MountError> {
        let raw = serde_json::to_vec(table).map_err(|e| MountError::Corrupt(e.to_string()))?;
        self.barrier.put(MOUNT_TABLE_PATH, &raw).await?;
        let mut cached = self
            .store
            .cached
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        cached.generation += 1;
        cached.table = Some(Arc::new(table.clone()));
        Ok(())
    }

    /// Loads the table, creating the initial one; the caller holds the table lock.
    async fn load_or_create_locked(&self) -> Result<MountTable, MountError> {
        if let Some(t) = load(self.barrier).await? {
            return Ok(t);
        }
        let table = MountTable::initial();
        self.store(&table).await?;
        Ok(table)
    }

    /// The mount table (cached), created with its defaults on first access.
    pub async fn table(&self) -> Result<Arc<MountTable>, MountError> {
        let generation = {
            let cached = self
                .store
                .cached
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(t) = &cached.table {
                return Ok(Arc::clone(t));
            }
            cached.generation
        };
        let table = match load(self.barrier).await? {
            Some(t) => t,
            None => {
                let _lock = self.store.table_lock.lock().await;
                self.load_or_create_locked().await?
            }
        };
        let table = Arc::new(table);
        let mut cached = self
            .store
            .cached
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // A write since the read above has cached a newer table: keep that one.
        if cached.generation == generation && cached.table.is_none() {
            cached.table = Some(Arc::clone(&table));
        }
        Ok(table)
    }
}

/// A mount request, as `POST sys/mounts/<path>` carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMount {
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    pub config: MountConfig,
    pub local: bool,
    pub seal_wrap: bool,
}

/// Checks the type and options: `kv` with `version = "2"`, or `kv-v2`. Returns the options to
/// store (with `version = "2"`) and a `max_versions` to apply to the engine's config (a
/// Sealkeep extension: Vault keeps that setting only in `<mount>/config`).
fn kv_type(
    kind: &str,
    mut options: BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Option<u32>), MountError> {
    let version = options.get("version").map(String::as_str);
    let ok = match kind {
        "kv-v2" => matches!(version, None | Some("2")),
        "kv" => version == Some("2"),
        _ => false,
    };
    if !ok {
        let kind = match version {
            Some(v) if kind.starts_with("kv") => format!("{kind} version {v}"),
            None if kind == "kv" => "kv version 1".to_owned(),
            _ => kind.to_owned(),
        };
        return Err(MountError::UnsupportedType { kind });
    }
    options.insert("version".into(), "2".into());
    let max_versions = match options.remove("max_versions") {
        None => None,
        Some(m) => Some(m.trim().parse::<u32>().map_err(|_| {
            MountError::InvalidOption(format!(
                "max_versions {m:?} is not a number of versions (0 to {})",
                u32::MAX
            ))
        })?),
    };
    Ok((options, max_versions))
}

impl Mounts<'_> {
    /// Mounts KV v2 at `path`. Fails when the path is invalid, reserved, or overlaps a mount.
    pub async fn mount(&self, path: &str, req: NewMount) -> Result<MountEntry, MountError> {
        let path = normalize_path(path)?;
        check_not_reserved(&path)?;
        let (options, max_versions) = kv_type(&req.kind, req.options)?;
        let entry = {
            let _lock = self.store.table_lock.lock().await;
            let mut table = self.load_or_create_locked().await?;
            if let Some(existing) = table
                .entries
                .iter()
                .find(|e| e.path.starts_with(&path) || path.starts_with(&e.path))
            {
                return Err(MountError::InUse {
                    existing: existing.path.clone(),
                });
            }
            let mut entry = MountEntry::new(&path, "kv", &req.description);
            entry.options = Some(options);
            entry.config = req.config;
            entry.local = req.local;
            entry.seal_wrap = req.seal_wrap;
            if let Some(m) = max_versions {
                self.kv(&entry.uuid)
                    .update_config(|c| c.max_versions = m)
                    .await?;
            }
            table.entries.push(entry.clone());
            self.store(&table).await?;
            entry
        };
        self.resume_purges().await?;
        Ok(entry)
    }
}

/// Settings `POST sys/mounts/<path>/tune` may change; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tune {
    pub description: Option<String>,
    pub default_lease_ttl: Option<u64>,
    pub max_lease_ttl: Option<u64>,
    pub options: Option<BTreeMap<String, String>>,
}

impl Mounts<'_> {
    /// Tunes the KV mount at `path`. Options other than `version` and `max_versions` are kept as
    /// given, as Vault keeps them; `version` must stay `"2"`.
    pub async fn tune(&self, path: &str, tune: Tune) -> Result<MountEntry, MountError> {
        let path = normalize_path(path)?;
        check_not_reserved(&path)?;
        let _lock = self.store.table_lock.lock().await;
        let mut table = self.load_or_create_locked().await?;
        let Some(entry) = table.entries.iter_mut().find(|e| e.path == path) else {
            return Err(MountError::NotFound { path });
        };
        if let Some(options) = tune.options {
            let mut merged = entry.options.clone().unwrap_or_default();
            merged.extend(options);
            let (merged, max_versions) = kv_type("kv", merged)?;
            if let Some(m) = max_versions {
                self.kv(&entry.uuid)
                    .update_config(|c| c.max_versions = m)
                    .await?;
            }
            entry.options = Some(merged);
        }
        if let Some(d) = tune.description {
            entry.description = d;
        }
        if let Some(t) = tune.default_lease_ttl {
            entry.config.default_lease_ttl = t;
        }
        if let Some(t) = tune.max_lease_ttl {
            entry.config.max_lease_ttl = t;
        }
        let entry = entry.clone();
        self.store(&table).await?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests;
