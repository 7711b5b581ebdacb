//! Core layer: the audit log. Enabled devices live behind the barrier (`core/audit`); every
//! request and response to the logical API becomes one JSON line on every enabled device, with
//! every secret value and token replaced by `hmac-sha256:<hex>` under a per-server key
//! (`core/audit-salt`), as Vault does. Fail-closed: when devices are enabled and none can record
//! an entry, the request is refused. Storage and file I/O.

pub mod entry;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::server::barrier::{Barrier, BarrierError};

/// The enabled devices (encrypted).
pub const TABLE_PATH: &str = "core/audit";
/// The HMAC key of audit entries (encrypted).
pub const SALT_PATH: &str = "core/audit-salt";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error("audit table in storage is unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "no audit device could record the {kind}: {errors}; fix or disable the device (DELETE /v1/sys/audit/PATH)"
    )]
    Failed { kind: &'static str, errors: String },
}

/// Where a `file` device writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sink {
    Stdout,
    File(PathBuf),
}

/// One enabled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Mount path, with a trailing `/` (`file/`).
    pub path: String,
    #[serde(rename = "type")]
    pub device_type: String,
    #[serde(default)]
    pub description: String,
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
}

impl Device {
    /// Validates an enable request. Only the `file` type exists; `file_path` is an absolute
    /// path or `stdout` (`discard` is accepted too, for tests of the pipeline).
    pub fn new(
        path: &str,
        device_type: &str,
        description: String,
        options: BTreeMap<String, String>,
        local: bool,
    ) -> Result<Self, AuditError> {
        let trimmed = path.trim_matches('/');
        if trimmed.is_empty()
            || trimmed.len() > 128
            || !trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(AuditError::Invalid(format!(
                "audit path {path:?} is invalid: use letters, digits, '-', '_' or '.', for example \"file\""
            )));
        }
        if device_type != "file" {
            return Err(AuditError::Invalid(format!(
                "audit device type {device_type:?} is not supported: use \"file\""
            )));
        }
        let file_path = options.get("file_path").or_else(|| options.get("path"));
        match file_path.map(String::as_str) {
            Some("stdout") | Some("discard") => {}
            Some(p) if p.starts_with('/') => {}
            Some(p) => {
                return Err(AuditError::Invalid(format!(
                    "options.file_path {p:?} must be an absolute path or \"stdout\""
                )));
            }
            None => {
                return Err(AuditError::Invalid(
                    "options.file_path is required: an absolute path or \"stdout\"".into(),
                ));
            }
        }
        Ok(Self {
            path: format!("{trimmed}/"),
            device_type: device_type.into(),
            description,
            options,
            local,
        })
    }

    fn sink(&self) -> Option<Sink> {
        match self
            .options
            .get("file_path")
            .or_else(|| self.options.get("path"))
            .map(String::as_str)
        {
            Some("stdout") => Some(Sink::Stdout),
            Some("discard") => None,
            Some(p) => Some(Sink::File(PathBuf::from(p))),
            None => None,
        }
    }

    /// Whether the sink can be opened for appending (creates the file, writes nothing).
    fn check(&self) -> std::io::Result<()> {
        match self.sink() {
            Some(Sink::File(p)) => {
                let mut opts = std::fs::OpenOptions::new();
                opts.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                opts.open(&p).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Appends one line; the file is opened per write (append mode), so a rotated or removed
    /// file is noticed at once.
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        match self.sink() {
            None => Ok(()),
            Some(Sink::Stdout) => {
                let mut out = std::io::stdout().lock();
                out.write_all(line)?;
                out.write_all(b"\n")?;
                out.flush()
            }
            Some(Sink::File(p)) => {
                let mut opts = std::fs::OpenOptions::new();
                opts.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&p)?;
                let mut buf = Vec::with_capacity(line.len() + 1);
                buf.extend_from_slice(line);
                buf.push(b'\n');
                f.write_all(&buf)
            }
        }
    }
}

/// The audit state of one unsealed server (a field of the core's unsealed state): the enabled
/// devices, cached, and the HMAC key, created once.
#[derive(Debug, Default)]
pub struct AuditStore {
    /// Serializes changes to the device table.
    writes: tokio::sync::Mutex<()>,
    devices: std::sync::RwLock<Option<Arc<Vec<Device>>>>,
    /// Loaded or created exactly once, so two first requests cannot create two keys.
    hasher: tokio::sync::OnceCell<Hasher>,
}

async fn load_devices(barrier: &Barrier) -> Result<Vec<Device>, AuditError> {
    match barrier.get(TABLE_PATH).await? {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_slice(&raw).map_err(|e| AuditError::Corrupt(e.to_string())),
    }
}

impl AuditStore {
    /// The enabled devices, in path order (read from storage once, then cached).
    pub async fn devices(&self, barrier: &Barrier) -> Result<Arc<Vec<Device>>, AuditError> {
        if let Some(d) = &*self.devices.read().unwrap_or_else(PoisonError::into_inner) {
            return Ok(Arc::clone(d));
        }
        let _writes = self.writes.lock().await;
        if let Some(d) = &*self.devices.read().unwrap_or_else(PoisonError::into_inner) {
            return Ok(Arc::clone(d));
        }
        let loaded = Arc::new(load_devices(barrier).await?);
        *self.devices.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Enables a device; refuses a path in use. The device must be writable now.
    pub async fn enable(&self, barrier: &Barrier, device: Device) -> Result<(), AuditError> {
        let _writes = self.writes.lock().await;
        let mut table = load_devices(barrier).await?;
        if table.iter().any(|d| d.path == device.path) {
            return Err(AuditError::Invalid(format!(
                "path already in use: audit device {:?} is enabled; disable it first",
                device.path
            )));
        }
        if let Err(e) = device.check() {
            return Err(AuditError::Invalid(format!(
                "cannot write to {:?}: {e}; check that the directory exists and is writable",
                device.options.get("file_path")
            )));
        }
        table.push(device);
        table.sort_by(|a, b| a.path.cmp(&b.path));
        self.save(barrier, table).await
    }

    /// Disables a device; disabling one that is not enabled is not an error (as in Vault).
    pub async fn disable(&self, barrier: &Barrier, path: &str) -> Result<(), AuditError> {
        let path = format!("{}/", path.trim_matches('/'));
        let _writes = self.writes.lock().await;
        let mut table = load_devices(barrier).await?;
        let before = table.len();
        table.retain(|d| d.path != path);
        if table.len() != before {
            self.save(barrier, table).await?;
        }
        Ok(())
    }

    /// Stores the table and caches it; the caller holds `writes`.
    async fn save(&self, barrier: &Barrier, table: Vec<Device>) -> Result<(), AuditError> {
        let raw = serde_json::to_vec(&table).map_err(|e| AuditError::Corrupt(e.to_string()))?;
        barrier.put(TABLE_PATH, &raw).await?;
        *self.devices.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(table));
        Ok(())
    }

    /// The audit HMAC key: read from storage, or created and stored on first use. Created at
    /// most once per unsealed server, however many requests ask at the same time.
    pub async fn hasher(&self, barrier: &Barrier) -> Result<&Hasher, AuditError> {
        self.hasher.get_or_try_init(|| Hasher::load(barrier)).await
    }
}

/// The audit HMAC key, created on first use.
#[derive(Clone)]
pub struct Hasher {
    key: hmac::Key,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher(<key>)")
    }
}

impl Hasher {
    /// Reads the key, or creates and stores one. Use [`AuditStore::hasher`], which calls this
    /// once per unsealed server.
    async fn load(barrier: &Barrier) -> Result<Self, AuditError> {
        let salt = match barrier.get(SALT_PATH).await? {
            Some(s) => s,
            None => {
                let mut s = Zeroizing::new(vec![0u8; 32]);
                aws_lc_rs::rand::fill(&mut s).map_err(|_| BarrierError::Random)?;
                barrier.put(SALT_PATH, &s).await?;
                s
            }
        };
        Ok(Self::from_key(&salt))
    }

    pub fn from_key(salt: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, salt),
        }
    }

    /// `hmac-sha256:<hex>`, Vault's format.
    pub fn hash(&self, value: &str) -> String {
        format!(
            "hmac-sha256:{}",
            hex::encode(hmac::sign(&self.key, value.as_bytes()).as_ref())
        )
    }
}

/// Writes `line` to every device. Ok when at least one recorded it (or none is enabled).
pub fn record(devices: &[Device], kind: &'static str, line: &[u8]) -> Result<(), AuditError> {
    if devices.is_empty() {
        return Ok(());
    }
    let mut errors = Vec::new();
    let mut ok = 0;
    for d in devices {
        match d.write_line(line) {
            Ok(()) => ok += 1,
            Err(e) => {
                tracing::error!(device = %d.path, error = %e, "audit device failed");
                errors.push(format!("{}: {e}", d.path));
            }
        }
    }
    if ok == 0 {
        return Err(AuditError::Failed {
            kind,
            errors: errors.join("; "),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
