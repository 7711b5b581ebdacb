//! Operator layer, step 5 of the pipeline: computes the SecretServer's status (conditions with
//! reasons and human messages) from what was observed, and the Events a change deserves.
//! Pure: the reconciler writes the result only when it differs from the current status.
//!
//! Each condition has its own small builder (`conditions`: Initialized, SealHealthy, Unsealed;
//! `rollup`: Ready, Progressing, Degraded); [`compute`] only composes them. Reasons are the
//! [`Reason`] enum.

mod conditions;
mod events;
mod reason;
mod rollup;
mod stamp;
mod summary;
#[cfg(test)]
mod testkit;
mod upgrading;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::crd::{PodStatus, SecretServerStatus};
use super::observe::{Answer, PodObservation};
use super::validate::Validated;

pub use self::conditions::{Cond, CondStatus};
pub use self::events::{
    REQUEUE_NOT_READY, REQUEUE_READY, REQUEUE_STARTING, REQUEUE_UPGRADING, Transition,
    requeue_after, transitions,
};
pub use self::reason::Reason;
pub use self::stamp::invalid;
use self::summary::Summary;
pub use self::upgrading::{recorded as recorded_upgrade, whole_seconds};

pub const INITIALIZED: &str = "Initialized";
pub const UNSEALED: &str = "Unsealed";
pub const SEAL_HEALTHY: &str = "SealHealthy";
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const UPGRADING: &str = "Upgrading";

/// Where auto-initialization stands, as the reconciler determined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitState {
    /// The server is initialized; `secret` is the init Secret when the operator wrote one.
    Initialized { secret: Option<String> },
    /// Initialized, but the init Secret is still marked pending: the operator stopped between
    /// initializing and storing the keys, so the root token and key shares are lost.
    KeysLost { secret: String },
    /// Not initialized; the operator will initialize it (auto-init).
    Pending,
    /// Not initialized and `init.auto` is false.
    Manual,
    /// Not initialized, but the init Secret from an earlier initialization exists: the storage
    /// was replaced. The operator refuses to initialize again.
    Conflict { secret: String },
    /// Auto-init failed or was refused.
    Failed {
        reason: InitFailure,
        message: String,
    },
    /// Raft: no answering pod is initialized, the init Secret records an earlier
    /// initialization, and these desired pods have not answered: one of them may hold the
    /// cluster's data, so nothing is concluded yet.
    AwaitingPods { pods: Vec<String> },
    /// No pod answered yet.
    Unknown,
}

/// Why auto-init did not happen: the `Initialized` condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitFailure {
    /// `sys/init`, or storing its result, failed.
    InitFailed,
    /// `<name>-init` exists but the operator did not create it for this SecretServer.
    SecretForeign,
    /// KMS refused or did not answer the data-key request for the init Secret.
    SecretKms,
    /// The operator may not read or write Secrets in the namespace.
    SecretForbidden,
}

impl InitFailure {
    /// The `Initialized` condition's reason.
    pub fn reason(self) -> Reason {
        match self {
            Self::InitFailed => Reason::InitFailed,
            Self::SecretForeign => Reason::InitSecretForeign,
            Self::SecretKms => Reason::InitSecretKMSFailed,
            Self::SecretForbidden => Reason::InitSecretForbidden,
        }
    }
}

/// Everything the status depends on.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub v: &'a Validated,
    pub pods: &'a [PodObservation],
    pub init: InitState,
    /// The StatefulSet has not rolled every pod to its current revision yet.
    pub rolling: bool,
    /// Applying the children failed (transient); the message.
    pub apply_error: Option<String>,
    /// Raft servers: where the pod-by-pod upgrade stands. `None` for file servers.
    pub upgrade: Option<UpgradeFacts<'a>>,
}

/// What the upgrade step of a raft server decided and did.
#[derive(Debug, Clone)]
pub struct UpgradeFacts<'a> {
    pub plan: &'a crate::operator::upgrade::Plan,
    /// The StatefulSet controller has observed the current template (its update revision is
    /// known).
    pub revision_known: bool,
    /// Carrying out the plan's action failed: why.
    pub act_error: Option<String>,
}

/// The condition reason for a seal error class the server reports.
pub fn kms_reason(class: &str) -> Reason {
    Reason::from_kms_class(class)
}

/// The conditions, in their fixed order: Initialized, Unsealed, SealHealthy, Ready,
/// Progressing, Degraded, and for raft servers Upgrading.
fn build_conditions(facts: &Facts<'_>, s: &Summary<'_>) -> Vec<Cond> {
    let initialized = conditions::initialized(facts, s.problem.as_ref());
    let seal_healthy = conditions::seal_healthy(facts.v, s);
    let unsealed = conditions::unsealed(facts, s);
    let all_ready = rollup::all_ready(facts.v, s, &initialized);
    let ready = rollup::ready(
        facts.v,
        s,
        all_ready,
        [&seal_healthy, &initialized, &unsealed],
    );
    let progressing = rollup::progressing(facts, s, all_ready, &unsealed);
    let degraded = rollup::degraded(facts, s, &seal_healthy, &initialized);
    let mut conds = vec![
        initialized,
        unsealed,
        seal_healthy,
        ready,
        progressing,
        degraded,
    ];
    if let Some(u) = &facts.upgrade {
        conds.push(upgrading::upgrading(u));
    }
    conds
}

/// Computes the status. `prev` supplies `lastTransitionTime` of conditions whose status did not
/// change; `now` stamps the others.
pub fn compute(
    facts: &Facts<'_>,
    prev: Option<&SecretServerStatus>,
    now: Timestamp,
) -> SecretServerStatus {
    let v = facts.v;
    let s = Summary::of(facts);
    let conds = build_conditions(facts, &s);
    let reason = conds[3].reason;
    let init_secret_name = match &facts.init {
        InitState::Initialized { secret } => secret.clone(),
        InitState::KeysLost { secret } | InitState::Conflict { secret } => Some(secret.clone()),
        _ => prev.and_then(|p| p.init_secret_name.clone()),
    };
    let answered = !s.answered.is_empty();
    let conditions: Vec<Condition> = stamp::stamp(conds, prev, v.generation, now);
    SecretServerStatus {
        observed_generation: v.generation,
        ready: Some(format!("{}/{}", s.ready_replicas, v.replicas)),
        replicas: v.replicas,
        ready_replicas: i32::try_from(s.ready_replicas).unwrap_or(i32::MAX),
        unsealed_replicas: i32::try_from(s.unsealed.len()).unwrap_or(i32::MAX),
        initialized: answered.then_some(s.all_initialized()),
        sealed: answered.then_some(s.any_sealed() || s.unsealed.is_empty()),
        seal_type: Some(v.seal.type_name().to_owned()),
        storage_type: Some(v.storage.type_()),
        active: s.active(),
        init_secret_name,
        reason: Some(reason.into()),
        pods: facts.pods.iter().map(pod_status).collect(),
        upgrade: facts
            .upgrade
            .as_ref()
            .and_then(|u| u.plan.progress.as_ref())
            .map(upgrading::record),
        conditions,
    }
}

fn pod_status(p: &PodObservation) -> PodStatus {
    let seal = p.seal();
    let last_unseal_error = match &p.answer {
        Answer::Unreachable(e) => Some(format!("not answering: {e}")),
        Answer::Answered { seal, backend, .. } if seal.sealed => backend
            .as_ref()
            .filter(|b| !b.last_error_class.is_empty())
            .map(|b| format!("{}: {}", kms_reason(&b.last_error_class), b.last_error)),
        _ => None,
    };
    PodStatus {
        name: p.pod.name.clone(),
        ip: p.pod.ip.clone(),
        initialized: seal.map(|s| s.initialized),
        sealed: seal.map(|s| s.sealed),
        seal_type: seal.map(|s| s.seal_type.clone()),
        version: seal.map(|s| s.version.clone()).filter(|v| !v.is_empty()),
        last_unseal_error,
    }
}

#[cfg(test)]
mod tests;
