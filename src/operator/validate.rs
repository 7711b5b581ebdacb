//! Operator layer, step 1 of the pipeline: turns a raw `SecretServer` into a [`Validated`] spec.
//! Pure: no client calls. The only code that reads `SecretServer.spec`.
//!
//! The API server already enforces the CRD's CEL rules; this step repeats the rules the builders
//! depend on (a cluster may run an older CRD) and adds the ones CEL cannot express, such as name
//! lengths and reserved environment variables.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use super::crd::SecretServer;

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
        "spec.replicas is {0}; only 1 is supported until replicated (Raft) storage exists: set spec.replicas: 1"
    )]
    Replicas(i32),
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
    if spec.replicas != 1 {
        return Err(ValidationError::Replicas(spec.replicas));
    }
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

/// Kubernetes quantity syntax: a signed decimal number, then an optional binary suffix
/// (Ki..Ei), decimal suffix (n, u, m, k, M..E) or exponent (e3, E-2).
pub fn is_quantity(s: &str) -> bool {
    let s = s.trim();
    let digits_end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == '+' || *c == '-'))
        .map_or(s.len(), |(i, _)| i);
    let (num, suffix) = s.split_at(digits_end);
    let num = num.strip_prefix(['+', '-']).unwrap_or(num);
    let valid_num = !num.is_empty()
        && num.chars().filter(|c| *c == '.').count() <= 1
        && num.chars().all(|c| c.is_ascii_digit() || c == '.')
        && num.chars().any(|c| c.is_ascii_digit());
    let valid_suffix = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    valid_num && valid_suffix
}

/// The value of a quantity in bytes (`1Gi` -> 1073741824), for comparing sizes.
pub fn quantity_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    if !is_quantity(s) {
        return None;
    }
    let split = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        e => 10f64.powi(e.get(1..)?.parse::<i32>().ok()?),
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests;
