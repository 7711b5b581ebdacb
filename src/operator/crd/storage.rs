//! Operator layer: the storage part of the `SecretServer` resource (`spec.storage`,
//! `spec.raft`). Pure types; limits that the server also enforces come from the server's own
//! config and autopilot modules, so the CRD and the server cannot disagree.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::server::config::MAX_PERFORMANCE_MULTIPLIER;

/// Replica counts a SecretServer accepts: an odd number of raft voters (1, 3 tolerates one
/// failure, 5 tolerates two).
pub const ALLOWED_REPLICAS: [i32; 3] = [1, 3, 5];
/// The largest of [`ALLOWED_REPLICAS`]: the pod ordinals every raft pod may join.
pub const MAX_REPLICAS: i32 = 5;

/// Where the server keeps its data: `raft` (integrated Raft storage, replicated to every pod,
/// so replicas may be 1, 3 or 5) or `file` (one pod's redb file: replicas must be 1).
// No doc comments on the variants: schemars then renders a plain `enum: [raft, file]`, which
// Kubernetes accepts, instead of `oneOf` with `const`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    Raft,
    File,
}

impl StorageType {
    /// The name in the spec and in the server's `storage "..."` block.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raft => "raft",
            Self::File => "file",
        }
    }
}

/// The data volume (a PersistentVolumeClaim per pod, kept when the SecretServer is deleted)
/// and the storage on it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0").message("storage.size may not shrink; set it back to at least its previous value"))]
pub struct StorageSpec {
    /// Volume size, a Kubernetes quantity such as `1Gi`. It may grow (the operator then resizes
    /// the claims; the StorageClass must allow volume expansion) but never shrink.
    #[serde(default = "default_size")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("storage.size must be a positive quantity such as 1Gi or 500Mi"))]
    pub size: String,
    /// StorageClass of the claim; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// `raft` (integrated Raft storage, replicated; 1, 3 or 5 replicas) or `file` (one pod's
    /// file; 1 replica). When unset, a new SecretServer gets `raft`, and a SecretServer that
    /// already runs keeps the storage it runs with (`status.storageType`). Moving a `file`
    /// server to raft takes `sealkeep operator migrate` (see the README) before this changes.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<StorageType>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_size(),
            storage_class_name: None,
            type_: None,
        }
    }
}

fn default_size() -> String {
    "1Gi".into()
}

/// Settings of integrated Raft storage (`storage.type: raft`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RaftSpec {
    /// Scales every raft timer (the server's `performance_multiplier`): 1, the server's
    /// default, fails over fastest; up to 10 tolerates slow machines and networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_PERFORMANCE_MULTIPLIER))]
    pub performance_multiplier: Option<i32>,
    /// Autopilot settings (the server's `sys/storage/raft/autopilot/configuration`), checked
    /// against the server's own rules. Not yet applied to the server by the operator: set them
    /// with that API meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autopilot: Option<AutopilotSpec>,
}

/// Autopilot settings; unset fields keep the server's defaults.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AutopilotSpec {
    /// Remove servers out of contact for `deadServerLastContactThreshold` (default false;
    /// needs `minQuorum` of at least 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_dead_servers: Option<bool>,
    /// Contact older than this makes a server unhealthy, a duration such as `10s` (the
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_threshold: Option<String>,
    /// Contact older than this makes a server dead, at least `1m` (default `24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_server_last_contact_threshold: Option<String>,
    /// A server more than this many log entries behind the leader is unhealthy (default
    /// 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_trailing_logs: Option<i64>,
    /// Dead-server cleanup never shrinks the voters below this (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_quorum: Option<i64>,
    /// How long a new server must be healthy before it becomes a voter, a duration such as
    /// `10s` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_stabilization_time: Option<String>,
}
