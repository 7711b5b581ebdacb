//! Operator layer, validate step: the server's storage (`spec.storage.type`, `spec.raft`) and
//! the replica count it allows. Pure. The raft limits are the server's own
//! (`MAX_PERFORMANCE_MULTIPLIER`, `AutopilotConfig`'s rules), so a spec the operator accepts is
//! one the server accepts.

use serde_json::{Map, Value};

use super::ValidationError;
use crate::operator::crd::{ALLOWED_REPLICAS, AutopilotSpec, SecretServer, StorageType};
use crate::server::config::MAX_PERFORMANCE_MULTIPLIER;
use crate::server::core::autopilot::AutopilotConfig;

/// The storage, as the builders need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `storage "file"`: one pod.
    File,
    /// `storage "raft"`.
    Raft(Raft),
}

impl Storage {
    pub fn type_(&self) -> StorageType {
        match self {
            Self::File => StorageType::File,
            Self::Raft(_) => StorageType::Raft,
        }
    }
}

/// Raft settings; `None`: the server's default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Raft {
    pub performance_multiplier: Option<u32>,
    /// Autopilot's configuration with the spec's fields applied, when `spec.raft.autopilot`
    /// is set.
    pub autopilot: Option<AutopilotConfig>,
}

/// The storage type of `ss`: `spec.storage.type`; when unset, the one the status recorded; a
/// status written before storage types existed (it has a `sealType`, which every reconciled
/// status has, but no `storageType`) is a file server; anything else is a new server: raft.
pub fn storage_type(ss: &SecretServer) -> StorageType {
    if let Some(t) = ss.spec.storage.type_ {
        return t;
    }
    match &ss.status {
        Some(s) if s.storage_type.is_some() => s.storage_type.unwrap_or(StorageType::Raft),
        Some(s) if s.seal_type.is_some() => StorageType::File,
        _ => StorageType::Raft,
    }
}

/// Validates the storage and the replica count.
pub(super) fn storage(ss: &SecretServer) -> Result<Storage, ValidationError> {
    let spec = &ss.spec;
    if !ALLOWED_REPLICAS.contains(&spec.replicas) {
        return Err(ValidationError::Replicas(spec.replicas));
    }
    match storage_type(ss) {
        StorageType::File if spec.replicas != 1 => {
            Err(ValidationError::FileReplicas(spec.replicas))
        }
        StorageType::File if spec.raft.is_some() => Err(ValidationError::RaftWithFile),
        StorageType::File => Ok(Storage::File),
        StorageType::Raft => {
            let Some(r) = &spec.raft else {
                return Ok(Storage::Raft(Raft::default()));
            };
            let performance_multiplier = match r.performance_multiplier {
                None => None,
                Some(n) => Some(
                    u32::try_from(n)
                        .ok()
                        .filter(|n| (1..=MAX_PERFORMANCE_MULTIPLIER).contains(n))
                        .ok_or(ValidationError::PerformanceMultiplier(n))?,
                ),
            };
            let autopilot = r.autopilot.as_ref().map(autopilot).transpose()?;
            Ok(Storage::Raft(Raft {
                performance_multiplier,
                autopilot,
            }))
        }
    }
}

/// The spec's field names and the server's, longest first (one contains another).
const FIELDS: [(&str, &str); 6] = [
    (
        "dead_server_last_contact_threshold",
        "deadServerLastContactThreshold",
    ),
    ("server_stabilization_time", "serverStabilizationTime"),
    ("last_contact_threshold", "lastContactThreshold"),
    ("cleanup_dead_servers", "cleanupDeadServers"),
    ("max_trailing_logs", "maxTrailingLogs"),
    ("min_quorum", "minQuorum"),
];

/// The server's autopilot configuration with the spec's fields applied, checked by the
/// server's own rules ([`AutopilotConfig::updated`]); errors name the spec's fields.
fn autopilot(a: &AutopilotSpec) -> Result<AutopilotConfig, ValidationError> {
    let mut update = Map::new();
    let mut set = |name: &str, v: Option<Value>| {
        if let Some(v) = v {
            update.insert(name.to_owned(), v);
        }
    };
    set(
        "cleanup_dead_servers",
        a.cleanup_dead_servers.map(Value::from),
    );
    set(
        "last_contact_threshold",
        a.last_contact_threshold.clone().map(Value::from),
    );
    set(
        "dead_server_last_contact_threshold",
        a.dead_server_last_contact_threshold
            .clone()
            .map(Value::from),
    );
    set("max_trailing_logs", a.max_trailing_logs.map(Value::from));
    set("min_quorum", a.min_quorum.map(Value::from));
    set(
        "server_stabilization_time",
        a.server_stabilization_time.clone().map(Value::from),
    );
    AutopilotConfig::default().updated(&update).map_err(|e| {
        let message = FIELDS
            .iter()
            .fold(e, |m, (server, spec)| m.replace(server, spec));
        ValidationError::Autopilot(message)
    })
}

#[cfg(test)]
mod tests;
