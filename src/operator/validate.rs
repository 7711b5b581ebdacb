//! Operator layer, step 1 of the pipeline: turns a raw `SecretServer` into a [`Validated`] spec.
//! Pure: no client calls. The only code that reads `SecretServer.spec`.
//!
//! The API server already enforces the CRD's CEL rules; this step repeats the rules the builders
//! depend on (a cluster may run an older CRD) and adds the ones CEL cannot express, such as name
//! lengths and reserved environment variables.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use super::crd::SecretServer;

mod quantity;
mod storage;

pub use self::quantity::{is_quantity, quantity_bytes};
pub use self::storage::{Raft, Storage, storage_type};

/// Longest SecretServer name: the StatefulSet's pods get a `controller-revision-hash` label
/// `<name>-<10 chars>`, and label values are limited to 63 characters.
pub const MAX_NAME_LEN: usize = 52;

/// Environment variables the operator sets itself; `spec.env` may not override them.
pub const RESERVED_ENV: &[&str] = &[
    "POD_IP",
    "HOSTNAME",
    "POD_NAME",
    "POD_NAMESPACE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "SEALKEEP_ADDR",
    "VAULT_ADDR",
    "VAULT_API_ADDR",
];

/// Environment variables the operator sets for raft storage; `spec.env` may not override them
/// on a raft server.
pub const RAFT_RESERVED_ENV: &[&str] = &[
    "VAULT_CLUSTER_ADDR",
    "VAULT_RAFT_NODE_ID",
    "VAULT_RAFT_PATH",
];

/// A spec the operator can never act on until the user changes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("SecretServer has no namespace; it is a namespaced resource")]
    NoNamespace,
    #[error("SecretServer {name:?} has no uid yet; it was not read from the API server")]
    NoUid { name: String },
    #[error(
        "metadata.name {name:?} is {len} characters; use at most {MAX_NAME_LEN} so the pods' labels stay valid"
    )]
    NameTooLong { name: String, len: usize },
    #[error(
        "spec.replicas is {0}; raft needs an odd number of voters: set spec.replicas: 1, 3 or 5 (3 tolerates the loss of one pod, 5 of two)"
    )]
    Replicas(i32),
    #[error(
        "spec.replicas is {0} but the server's storage is file, which lives on one pod's volume: set spec.replicas: 1, or move the server to raft storage first (sealkeep operator migrate, see the README)"
    )]
    FileReplicas(i32),
    #[error(
        "spec.raft is set but the server's storage is file: remove spec.raft, or move the server to raft storage first (sealkeep operator migrate, see the README)"
    )]
    RaftWithFile,
    #[error(
        "spec.raft.performanceMultiplier is {0}; use 1 (fastest failover, the default) up to {max}",
        max = crate::server::config::MAX_PERFORMANCE_MULTIPLIER
    )]
    PerformanceMultiplier(i32),
    #[error("spec.raft.autopilot: {0}")]
    Autopilot(String),
    #[error(
        "spec.env sets {0}, which the operator sets for raft storage (each pod's own addresses and node name); remove it from spec.env"
    )]
    RaftReservedEnv(String),
    #[error("spec.seal must set exactly one of awsKms or shamir")]
    SealCount,
    #[error(
        "spec.seal.awsKms.keyId is empty; set a key ID, a key ARN or alias/NAME of a symmetric KMS key"
    )]
    EmptyKeyId,
    #[error("spec.seal.awsKms.region is empty; set the key's region, for example us-east-1")]
    EmptyRegion,
    #[error(
        "spec.init: recoveryThreshold {threshold} must be between 1 and recoveryShares {shares} (at most 255)"
    )]
    Threshold { shares: i32, threshold: i32 },
    #[error(
        "spec.storage.size {0:?} is not a positive Kubernetes quantity; use a value such as 1Gi"
    )]
    Size(String),
    #[error(
        "spec.env sets {0}, which the operator manages; remove it from spec.env (use spec.seal.awsKms.roleArn for IRSA)"
    )]
    ReservedEnv(String),
    #[error(
        "spec.image is not set and the operator has no --default-image; set spec.image or start the operator with --default-image"
    )]
    NoImage,
    #[error("spec.listener.tls.secretName is empty; name a kubernetes.io/tls Secret")]
    EmptyTlsSecret,
    #[error(
        "spec.auth.kubernetes.enabled would bind system:auth-delegator cluster-wide to the existing ServiceAccount {0:?} (spec.serviceAccount.name), which other workloads may use; remove spec.serviceAccount.name so the operator creates the server's own ServiceAccount, or set spec.auth.kubernetes.enabled: false"
    )]
    KubernetesAuthWithForeignServiceAccount(String),
}

/// The seal, as the builders need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seal {
    AwsKms {
        key_id: String,
        region: String,
        endpoint: Option<String>,
        role_arn: Option<String>,
    },
    Shamir,
}

impl Seal {
    /// The seal type as the server reports it in `sys/seal-status`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::AwsKms { .. } => "awskms",
            Self::Shamir => "shamir",
        }
    }
}

/// Auto-initialization settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Init {
    pub auto: bool,
    pub shares: u8,
    pub threshold: u8,
    /// Revoke the root token once the keys are stored.
    pub revoke_root_token: bool,
}

/// A spec that every builder can rely on.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub name: String,
    pub namespace: String,
    pub generation: Option<i64>,
    /// Controller owner reference to the SecretServer, so that garbage collection removes the
    /// children with it.
    pub owner: OwnerReference,
    pub replicas: i32,
    /// The storage (`storage "file"` or `storage "raft"`).
    pub storage: Storage,
    pub image: String,
    pub seal: Seal,
    pub init: Init,
    pub storage_size: Quantity,
    pub storage_class: Option<String>,
    pub resources: Option<ResourceRequirements>,
    pub service_account: String,
    /// Whether the operator creates and owns the ServiceAccount (false when the user named an
    /// existing one).
    pub manage_service_account: bool,
    pub service_account_annotations: BTreeMap<String, String>,
    pub pod_labels: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
    /// `spec.pod.topologySpreadConstraints` as given (`None`: the default spread applies).
    pub topology_spread: Option<Vec<TopologySpreadConstraint>>,
    pub priority_class_name: Option<String>,
    pub env: Vec<EnvVar>,
    pub tls_secret: Option<String>,
    /// Grant the server's ServiceAccount `system:auth-delegator` for Kubernetes auth (only
    /// ever the ServiceAccount the operator creates).
    pub kubernetes_auth: bool,
    /// Serve the metrics endpoints without a token.
    pub unauthenticated_metrics_access: bool,
}

impl Validated {
    /// Name of the Secret that holds the root token and key shares after auto-init.
    pub fn init_secret_name(&self) -> String {
        format!("{}-init", self.name)
    }
    /// Name of the headless Service that gives the pods stable DNS names.
    pub fn headless_service_name(&self) -> String {
        format!("{}-internal", self.name)
    }
    /// Name of the ConfigMap with the server's HCL configuration.
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }
    /// The URL scheme of the listener.
    pub fn scheme(&self) -> &'static str {
        if self.tls_secret.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Validates `ss` against the rules the operator depends on. `default_image` is the operator's
/// `--default-image`.
pub fn validate(
    ss: &SecretServer,
    default_image: Option<&str>,
) -> Result<Validated, ValidationError> {
    let name = ss.name_any();
    let namespace = ss.namespace().ok_or(ValidationError::NoNamespace)?;
    if name.len() > MAX_NAME_LEN {
        return Err(ValidationError::NameTooLong {
            len: name.len(),
            name,
        });
    }
    let owner = ss
        .controller_owner_ref(&())
        .ok_or_else(|| ValidationError::NoUid { name: name.clone() })?;
    let spec = &ss.spec;
    let storage = storage::storage(ss)?;
    let seal = match (&spec.seal.aws_kms, &spec.seal.shamir) {
        (Some(k), None) => {
            if k.key_id.trim().is_empty() {
                return Err(ValidationError::EmptyKeyId);
            }
            if k.region.trim().is_empty() {
                return Err(ValidationError::EmptyRegion);
            }
            Seal::AwsKms {
                key_id: k.key_id.trim().to_owned(),
                region: k.region.trim().to_owned(),
                endpoint: non_empty(&k.endpoint),
                role_arn: non_empty(&k.role_arn),
            }
        }
        (None, Some(_)) => Seal::Shamir,
        _ => return Err(ValidationError::SealCount),
    };
    let (shares, threshold) = (spec.init.recovery_shares, spec.init.recovery_threshold);
    let init = match (u8::try_from(shares), u8::try_from(threshold)) {
        (Ok(s), Ok(t)) if s >= 1 && t >= 1 && t <= s => Init {
            auto: spec.init.auto,
            shares: s,
            threshold: t,
            revoke_root_token: spec.init.revoke_root_token,
        },
        _ => return Err(ValidationError::Threshold { shares, threshold }),
    };
    if !is_quantity(&spec.storage.size)
        || quantity_bytes(&spec.storage.size).is_none_or(|b| b <= 0.0)
    {
        return Err(ValidationError::Size(spec.storage.size.clone()));
    }
    if let Some(e) = spec
        .env
        .iter()
        .find(|e| RESERVED_ENV.contains(&e.name.as_str()))
    {
        return Err(ValidationError::ReservedEnv(e.name.clone()));
    }
    if let (Storage::Raft(_), Some(e)) = (
        &storage,
        spec.env
            .iter()
            .find(|e| RAFT_RESERVED_ENV.contains(&e.name.as_str())),
    ) {
        return Err(ValidationError::RaftReservedEnv(e.name.clone()));
    }
    let image = non_empty(&spec.image)
        .or_else(|| default_image.filter(|i| !i.is_empty()).map(str::to_owned))
        .ok_or(ValidationError::NoImage)?;
    let tls_secret = match &spec.listener {
        Some(l) => match &l.tls {
            Some(t) if t.secret_name.trim().is_empty() => {
                return Err(ValidationError::EmptyTlsSecret);
            }
            Some(t) => Some(t.secret_name.trim().to_owned()),
            None => None,
        },
        None => None,
    };
    let kubernetes_auth = spec
        .auth
        .as_ref()
        .and_then(|a| a.kubernetes.as_ref())
        .is_some_and(|k| k.enabled);
    let user_account = non_empty(&spec.service_account.name);
    // Binding a pre-existing account cluster-wide would grant auth-delegator to whatever else
    // runs as it: the operator only ever binds the account it creates for this server.
    if let (true, Some(sa)) = (kubernetes_auth, &user_account) {
        return Err(ValidationError::KubernetesAuthWithForeignServiceAccount(
            sa.clone(),
        ));
    }
    Ok(Validated {
        service_account: user_account.clone().unwrap_or_else(|| name.clone()),
        manage_service_account: user_account.is_none(),
        service_account_annotations: spec.service_account.annotations.clone(),
        generation: ss.meta().generation,
        owner,
        replicas: spec.replicas,
        storage,
        image,
        seal,
        init,
        storage_size: Quantity(spec.storage.size.clone()),
        storage_class: non_empty(&spec.storage.storage_class_name),
        resources: spec.resources.clone(),
        pod_labels: spec.pod.labels.clone(),
        pod_annotations: spec.pod.annotations.clone(),
        node_selector: spec.pod.node_selector.clone(),
        tolerations: spec.pod.tolerations.clone(),
        affinity: spec.pod.affinity.clone(),
        topology_spread: spec.pod.topology_spread_constraints.clone(),
        priority_class_name: non_empty(&spec.pod.priority_class_name),
        env: spec.env.clone(),
        tls_secret,
        kubernetes_auth,
        unauthenticated_metrics_access: spec
            .telemetry
            .as_ref()
            .is_some_and(|t| t.unauthenticated_metrics_access),
        name,
        namespace,
    })
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
