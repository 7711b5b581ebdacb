//! Operator layer, status step: the builders of the conditions that come straight from what was
//! observed (Initialized, SealHealthy, Unsealed), one small function each. Pure.

use super::reason::Reason;
use super::summary::{PodProblem, Summary};
use super::{Facts, INITIALIZED, InitFailure, InitState, SEAL_HEALTHY, UNSEALED};
use crate::operator::validate::{Seal, Validated};

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondStatus {
    True,
    False,
    Unknown,
}

impl CondStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// A condition before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: CondStatus,
    pub reason: Reason,
    pub message: String,
}

impl Cond {
    /// A True or False condition.
    pub fn new(type_: &'static str, ok: bool, reason: Reason, message: String) -> Self {
        Self {
            type_,
            status: if ok {
                CondStatus::True
            } else {
                CondStatus::False
            },
            reason,
            message,
        }
    }

    pub fn unknown(type_: &'static str, reason: Reason, message: String) -> Self {
        Self {
            type_,
            status: CondStatus::Unknown,
            reason,
            message,
        }
    }

    /// An Unknown condition saying why no pod answered.
    fn from_problem(type_: &'static str, p: &PodProblem) -> Self {
        Self::unknown(type_, p.reason, p.message.clone())
    }

    pub fn is_true(&self) -> bool {
        self.status == CondStatus::True
    }
}

/// `Initialized`: from where auto-init stands (the reconciler's [`InitState`]).
pub fn initialized(facts: &Facts<'_>, problem: Option<&PodProblem>) -> Cond {
    let v = facts.v;
    let ok = |reason, message| Cond::new(INITIALIZED, true, reason, message);
    let not = |reason, message| Cond::new(INITIALIZED, false, reason, message);
    match &facts.init {
        InitState::Initialized { secret: Some(s) } => ok(
            Reason::Initialized,
            format!("storage is initialized; the root token and key shares are in Secret {s}"),
        ),
        InitState::Initialized { secret: None } => {
            ok(Reason::Initialized, "storage is initialized".into())
        }
        InitState::KeysLost { secret } => ok(
            Reason::InitKeysLost,
            format!(
                "storage is initialized but Secret {secret} is still marked pending: the operator stopped before it stored the keys; generate a new root token with recovery keys, or re-create the server"
            ),
        ),
        InitState::Pending => not(
            Reason::Initializing,
            format!(
                "the operator is initializing the server (Secret {} will hold the keys)",
                v.init_secret_name()
            ),
        ),
        InitState::Manual => not(
            Reason::InitRequired,
            format!(
                "spec.init.auto is false: initialize it yourself with `vault operator init` (PUT /v1/sys/init) against pod {}-0",
                v.name
            ),
        ),
        InitState::Conflict { secret } => not(
            Reason::InitSecretConflict,
            format!(
                "the server's storage is empty but Secret {secret} holds keys from an earlier initialization; the operator will not initialize twice. Restore the data volume, or delete Secret {secret} to initialize a new, empty server"
            ),
        ),
        InitState::Failed { reason, message } => not(
            reason.reason(),
            match reason {
                InitFailure::InitFailed => format!("auto-init failed: {message}"),
                _ => message.clone(),
            },
        ),
        InitState::AwaitingPods { pods } => Cond::unknown(
            INITIALIZED,
            Reason::AwaitingPods,
            format!(
                "no answering pod is initialized, but Secret {} records an earlier initialization and {} not answered yet: the operator waits for them, since one may hold the cluster's data",
                v.init_secret_name(),
                match pods.as_slice() {
                    [one] => format!("pod {one} has"),
                    many => format!("pods {} have", many.join(", ")),
                }
            ),
        ),
        InitState::Unknown => match problem {
            Some(p) => Cond::from_problem(INITIALIZED, p),
            None => Cond::unknown(
                INITIALIZED,
                Reason::NoPodAnswered,
                "no pod answered yet".into(),
            ),
        },
    }
}

/// `SealHealthy`: Shamir always is; awskms is what the pods report of their KMS key.
pub fn seal_healthy(v: &Validated, s: &Summary<'_>) -> Cond {
    let Seal::AwsKms { key_id, .. } = &v.seal else {
        return Cond::new(
            SEAL_HEALTHY,
            true,
            Reason::ShamirSeal,
            "the Shamir seal depends on no external service".into(),
        );
    };
    let backends: Vec<(&str, &crate::api_client::SealBackendStatus)> = s
        .answered
        .iter()
        .filter_map(|p| p.backend().map(|b| (p.pod.name.as_str(), b)))
        .collect();
    match backends.iter().find(|(_, b)| !b.healthy) {
        None if backends.is_empty() => match &s.problem {
            Some(p) => Cond::from_problem(SEAL_HEALTHY, p),
            None => Cond::unknown(
                SEAL_HEALTHY,
                Reason::NoPodAnswered,
                "no pod reported its seal backend".into(),
            ),
        },
        None => Cond::new(
            SEAL_HEALTHY,
            true,
            Reason::KMSHealthy,
            format!("KMS key {key_id} is reachable and usable"),
        ),
        Some((pod, b)) if b.last_error_class.is_empty() => Cond::unknown(
            SEAL_HEALTHY,
            Reason::KMSCheckPending,
            format!("pod {pod} has not finished a KMS check of key {key_id} yet"),
        ),
        Some((pod, b)) => Cond::new(
            SEAL_HEALTHY,
            false,
            Reason::from_kms_class(&b.last_error_class),
            format!("pod {pod}: {}", b.last_error),
        ),
    }
}

/// `Unsealed`: True when every answering pod is initialized and unsealed; otherwise what the
/// first sealed pod waits for.
pub fn unsealed(facts: &Facts<'_>, s: &Summary<'_>) -> Cond {
    let v = facts.v;
    if let Some(p) = &s.problem {
        return Cond::from_problem(UNSEALED, p);
    }
    if let Some(p) = s
        .answered
        .iter()
        .find(|p| p.seal().is_some_and(|s| !s.initialized))
    {
        return Cond::new(
            UNSEALED,
            false,
            Reason::NotInitialized,
            format!("pod {} is not initialized, so it is sealed", p.pod.name),
        );
    }
    let Some((p, seal)) = s
        .answered
        .iter()
        .find_map(|p| p.seal().filter(|s| s.sealed).map(|s| (p, s)))
    else {
        return Cond::new(
            UNSEALED,
            true,
            Reason::Unsealed,
            format!("{} of {} pods unsealed", s.unsealed.len(), v.replicas),
        );
    };
    match &v.seal {
        Seal::Shamir => Cond::new(
            UNSEALED,
            false,
            Reason::AwaitingUnsealKeys,
            format!(
                "pod {} is sealed: send {} of {} unseal keys to PUT /v1/sys/unseal (progress {}/{}){}",
                p.pod.name,
                seal.t,
                seal.n,
                seal.progress,
                seal.t,
                match &facts.init {
                    InitState::Initialized { secret: Some(sec) } =>
                        format!("; the keys are in Secret {sec}"),
                    _ => String::new(),
                }
            ),
        ),
        Seal::AwsKms { .. } => match p.backend().filter(|b| !b.last_error_class.is_empty()) {
            Some(b) => Cond::new(
                UNSEALED,
                false,
                Reason::from_kms_class(&b.last_error_class),
                format!(
                    "pod {} is sealed and retries auto-unseal: {}",
                    p.pod.name, b.last_error
                ),
            ),
            None => Cond::new(
                UNSEALED,
                false,
                Reason::AutoUnsealing,
                format!(
                    "pod {} is sealed; auto-unseal through KMS is in progress",
                    p.pod.name
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests;
