//! Operator layer: the `SecretServer` custom resource (sealkeep.dev/v1alpha1). Pure types; the
//! CRD YAML in `crds/` is generated from them by `sealkeep crd`. Every field's doc comment is
//! what `kubectl explain` shows; CEL rules make the API server refuse a bad spec with a message
//! that says what to change.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A Sealkeep secrets server: a StatefulSet of `sealkeep server` pods with durable storage,
/// sealed by AWS KMS (auto-unseal, IRSA) or by Shamir key shares.
// Several `printcolumn(...)` entries repeat `type_ = ...`; clippy reads them as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sealkeep.dev",
    version = "v1alpha1",
    kind = "SecretServer",
    plural = "secretservers",
    shortname = "sks",
    namespaced,
    status = "SecretServerStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready pods / desired pods"
    ),
    printcolumn(
        name = "Sealed",
        type_ = "boolean",
        json_path = ".status.sealed",
        description = "Whether the serving pod is sealed"
    ),
    printcolumn(
        name = "Initialized",
        type_ = "boolean",
        json_path = ".status.initialized",
        description = "Whether the server's storage is initialized"
    ),
    printcolumn(
        name = "Seal",
        type_ = "string",
        json_path = ".status.sealType",
        description = "awskms or shamir"
    ),
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = ".status.active",
        description = "The pod serving requests"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = 1,
        description = "Reason of the worst condition"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.auth) && has(self.auth.kubernetes) && has(self.auth.kubernetes.enabled) && self.auth.kubernetes.enabled && has(self.serviceAccount) && has(self.serviceAccount.name) && self.serviceAccount.name != '')").message("auth.kubernetes.enabled binds system:auth-delegator cluster-wide, so it needs the ServiceAccount the operator creates: remove spec.serviceAccount.name or set auth.kubernetes.enabled: false"))]
#[x_kube(validation = Rule::new("!(has(self.storage) && has(self.storage.type) && self.storage.type == 'file') || self.replicas == 1").message("storage.type file keeps the data on one pod's volume, so replicas must be 1: set spec.replicas: 1, or move the server to raft storage first (sealkeep operator migrate, see the README)"))]
#[x_kube(validation = Rule::new("!(has(self.raft) && has(self.storage) && has(self.storage.type) && self.storage.type == 'file')").message("spec.raft configures raft storage, but storage.type is file: remove spec.raft or set storage.type: raft"))]
pub struct SecretServerSpec {
    /// Number of server pods: 1, 3 or 5 (raft voters; 3 tolerates the loss of one pod, 5 of
    /// two). It may change between these values in both directions. A `file` server has 1.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self == 1 || self == 3 || self == 5").message("replicas must be 1, 3 or 5 (an odd number of raft voters: 3 tolerates the loss of one pod, 5 of two); set spec.replicas to one of them"))]
    pub replicas: i32,
    /// Server container image. Defaults to the image the operator is configured with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How the root key is sealed: set exactly one of `awsKms` or `shamir`.
    pub seal: SealSpec,
    /// Automatic initialization of a new server.
    #[serde(default)]
    pub init: InitSpec,
    /// The server's data volume and the storage on it.
    #[serde(default)]
    pub storage: StorageSpec,
    /// Raft settings (with `storage.type: raft`); the server's defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftSpec>,
    /// Compute resources of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The server pods' ServiceAccount.
    #[serde(default)]
    pub service_account: ServiceAccountSpec,
    /// Scheduling and metadata of the server pods.
    #[serde(default)]
    pub pod: PodOverrides,
    /// Extra environment for the server container, for example AWS_ENDPOINT_URL for a KMS that
    /// is not AWS's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The server's HTTP listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerSpec>,
    /// Auth methods that need cluster permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// The server's metrics endpoints (`/metrics`, `/v1/sys/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
}

/// Telemetry settings of the server's listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySpec {
    /// Serve `/metrics` and `/v1/sys/metrics` without a token (Vault's listener option
    /// `telemetry { unauthenticated_metrics_access = true }`). Default false: a scraper sends a
    /// token whose policy grants `read` on `sys/metrics`.
    #[serde(default)]
    pub unauthenticated_metrics_access: bool,
}

/// Auth methods of the server that need Kubernetes permissions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Kubernetes auth (`auth/kubernetes/login`): workloads log in with their service-account
    /// tokens, which the server checks with the TokenReview API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesAuthSpec>,
}

/// Kubernetes auth settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthSpec {
    /// Grant the server's ServiceAccount `system:auth-delegator` (a ClusterRoleBinding the
    /// operator creates and removes with the SecretServer), so the server can review tokens.
    /// Enable the method itself in the server with `vault auth enable kubernetes`. Only with
    /// the ServiceAccount the operator creates: not with `serviceAccount.name`. Raft servers
    /// get the binding either way (with the ServiceAccount the operator creates): the operator
    /// logs in to them with its own Kubernetes-auth role, which it writes at auto-init.
    #[serde(default)]
    pub enabled: bool,
}

fn default_replicas() -> i32 {
    1
}

/// The seal of the root key. Exactly one of `awsKms` or `shamir`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.awsKms) != has(self.shamir)").message("set exactly one of seal.awsKms or seal.shamir"))]
pub struct SealSpec {
    /// AWS KMS auto-unseal: the server decrypts its root key with this KMS key at every start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_kms: Option<AwsKmsSeal>,
    /// Shamir key shares: the server stays sealed after each start until enough unseal keys are
    /// sent to /v1/sys/unseal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shamir: Option<ShamirSeal>,
}

/// An AWS KMS key used through IRSA (or any credential in the AWS SDK's default chain).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AwsKmsSeal {
    /// KMS key ID, key ARN or `alias/NAME`.
    #[x_kube(validation = Rule::new("self != ''").message("seal.awsKms.keyId must name a KMS key: a key ID, a key ARN or alias/NAME"))]
    pub key_id: String,
    /// AWS region of the key, for example `us-east-1`.
    #[x_kube(validation = Rule::new("self != ''").message("seal.awsKms.region must be set, for example us-east-1"))]
    pub region: String,
    /// KMS endpoint override (a VPC endpoint, or a local KMS in tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// IAM role for IRSA. Sets the `eks.amazonaws.com/role-arn` annotation on the ServiceAccount
    /// and a projected web-identity token in the pod, so it also works without EKS's webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// Shamir seal; no settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ShamirSeal {}

/// Automatic initialization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.recoveryThreshold >= 1 && self.recoveryThreshold <= self.recoveryShares").message("init.recoveryThreshold must be between 1 and init.recoveryShares"))]
pub struct InitSpec {
    /// Initialize a new server automatically and keep its keys and root token in a Secret.
    #[serde(default = "default_true")]
    pub auto: bool,
    /// Number of recovery (awskms) or unseal (shamir) key shares.
    #[serde(default = "default_shares")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 255").message("init.recoveryShares must be between 1 and 255"))]
    pub recovery_shares: i32,
    /// Shares needed to recover or unseal.
    #[serde(default = "default_threshold")]
    pub recovery_threshold: i32,
    /// After auto-init has stored the keys, revoke the root token (`auth/token/revoke-self`)
    /// and record that in the init Secret. The key shares still allow `generate-root`.
    #[serde(default)]
    pub revoke_root_token: bool,
}

impl Default for InitSpec {
    fn default() -> Self {
        Self {
            auto: true,
            recovery_shares: default_shares(),
            recovery_threshold: default_threshold(),
            revoke_root_token: false,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_shares() -> i32 {
    5
}
fn default_threshold() -> i32 {
    3
}

/// The server pods' ServiceAccount.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSpec {
    /// Name of an existing ServiceAccount to run the server pods as. The operator uses it as it
    /// is: it neither creates, annotates nor deletes it (set `eks.amazonaws.com/role-arn` on it
    /// yourself for EKS's webhook). When unset, the operator creates and owns a ServiceAccount
    /// named after the SecretServer. Not allowed with `auth.kubernetes.enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Extra annotations on the ServiceAccount the operator creates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Scheduling and metadata of the server pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Extra pod labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Node selector of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the pods. Unset with 3 or 5 replicas: the pods prefer distinct nodes
    /// (anti-affinity on kubernetes.io/hostname); setting it replaces that default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints of the pods. Unset with 3 or 5 replicas: the pods spread
    /// evenly over zones (topology.kubernetes.io/zone, ScheduleAnyway); a list replaces that
    /// default, and an empty list turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// The HTTP listener of the server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// Serve HTTPS with the certificate in a `kubernetes.io/tls` Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// TLS settings of the listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Name of a `kubernetes.io/tls` Secret (keys tls.crt and tls.key) in the same namespace.
    #[x_kube(validation = Rule::new("self != ''").message("listener.tls.secretName must name a kubernetes.io/tls Secret"))]
    pub secret_name: String,
}

/// Observed state, written by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretServerStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready pods over desired pods, such as `1/1` (the READY column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Desired pods.
    #[serde(default)]
    pub replicas: i32,
    /// Pods that pass their readiness probe (initialized and unsealed).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods that report sealed=false.
    #[serde(default)]
    pub unsealed_replicas: i32,
    /// Whether the server's storage is initialized (unset while no pod answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialized: Option<bool>,
    /// Whether the serving pod is sealed (unset while no pod answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<bool>,
    /// The seal type: awskms or shamir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_type: Option<String>,
    /// The storage the server runs with: raft or file. While `spec.storage.type` is unset the
    /// server keeps this one (a status from before storage types existed means file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<StorageType>,
    /// The pod that serves requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// The Secret holding the root token and key shares written by auto-init. It is not owned
    /// by the SecretServer: deleting the SecretServer keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_secret_name: Option<String>,
    /// Reason of the worst condition (the `-o wide` REASON column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What each server pod reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodStatus>,
    /// The step of a raft server's upgrade under way (see the Upgrading condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeStatus>,
    /// Initialized, Unsealed, SealHealthy, Ready, Progressing and Degraded; raft servers also
    /// Upgrading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// What one server pod reported on its last observation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Pod name.
    pub name: String,
    /// Pod IP the operator asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Whether the server's storage is initialized (unset if the pod did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialized: Option<bool>,
    /// Whether the server is sealed (unset if the pod did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<bool>,
    /// Seal type the server reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_type: Option<String>,
    /// Server version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The last unseal error (class and message), while the server is sealed; or why the pod
    /// could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_unseal_error: Option<String>,
}

/// The CRD as YAML, exactly as committed in `crds/secretservers.sealkeep.dev.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    crate::yaml::to_string(&SecretServer::crd())
}

pub mod reference;
mod storage;
mod upgrade;

pub use self::storage::{
    ALLOWED_REPLICAS, AutopilotSpec, MAX_REPLICAS, RaftSpec, StorageSpec, StorageType,
};
pub use self::upgrade::UpgradeStatus;

#[cfg(test)]
mod tests;
