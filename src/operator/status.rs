//! Operator layer, step 5 of the pipeline: computes the SecretServer's status (conditions with
//! reasons and human messages) from what was observed, and the Events a change deserves.
//! Pure: the reconciler writes the result only when it differs from the current status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::crd::{PodStatus, SecretServerStatus};
use super::observe::{Answer, PodObservation};
use super::validate::{Seal, Validated};

pub const INITIALIZED: &str = "Initialized";
pub const UNSEALED: &str = "Unsealed";
pub const SEAL_HEALTHY: &str = "SealHealthy";
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

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
    pub fn reason(self) -> &'static str {
        match self {
            Self::InitFailed => "InitFailed",
            Self::SecretForeign => "InitSecretForeign",
            Self::SecretKms => "InitSecretKMSFailed",
            Self::SecretForbidden => "InitSecretForbidden",
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
}

/// A condition before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cond {
    type_: &'static str,
    status: &'static str,
    reason: String,
    message: String,
}

fn cond(type_: &'static str, status: bool, reason: &str, message: String) -> Cond {
    Cond {
        type_,
        status: if status { "True" } else { "False" },
        reason: reason.to_owned(),
        message,
    }
}

fn unknown(type_: &'static str, reason: &str, message: String) -> Cond {
    Cond {
        type_,
        status: "Unknown",
        reason: reason.to_owned(),
        message,
    }
}

/// The condition reason for a seal error class the server reports.
pub fn kms_reason(class: &str) -> &'static str {
    match class {
        "Unreachable" => "KMSUnreachable",
        "AccessDenied" => "KMSAccessDenied",
        "KeyNotFound" => "KMSKeyNotFound",
        "KeyDisabled" => "KMSKeyDisabled",
        "InvalidCiphertext" => "KMSInvalidCiphertext",
        "WebIdentityDenied" => "WebIdentityDenied",
        "MissingCredentials" => "AWSCredentialsMissing",
        "Throttled" => "KMSThrottled",
        "Corrupt" => "SealDataCorrupt",
        _ => "KMSError",
    }
}

/// Why no pod answered, or `None` when at least one did.
fn pods_problem(facts: &Facts<'_>) -> Option<(String, String)> {
    if facts.pods.iter().any(|p| p.seal().is_some()) {
        return None;
    }
    let Some(p) = facts.pods.first() else {
        return Some((
            "PodsNotCreated".into(),
            format!("no pod of StatefulSet {} exists yet", facts.v.name),
        ));
    };
    let name = &p.pod.name;
    Some(match (&p.answer, &p.pod.waiting_reason) {
        (_, Some(w)) if w == "CrashLoopBackOff" => (
            "PodCrashLooping".into(),
            format!(
                "pod {name} keeps crashing ({} restarts); see `kubectl logs {name} -n {}`",
                p.pod.restarts, facts.v.namespace
            ),
        ),
        (_, Some(w)) => ("PodWaiting".into(), format!("pod {name} is waiting: {w}")),
        (Answer::Unreachable(e), _) => (
            "PodUnreachable".into(),
            format!("pod {name} does not answer on its IP: {e}"),
        ),
        _ if p.pod.terminating => (
            "PodTerminating".into(),
            format!("pod {name} is terminating"),
        ),
        _ => (
            "PodStarting".into(),
            format!("pod {name} is {} and has no IP yet", p.pod.phase),
        ),
    })
}

/// Computes the status. `prev` supplies `lastTransitionTime` of conditions whose status did not
/// change; `now` stamps the others.
pub fn compute(
    facts: &Facts<'_>,
    prev: Option<&SecretServerStatus>,
    now: Timestamp,
) -> SecretServerStatus {
    let v = facts.v;
    let answered: Vec<&PodObservation> = facts.pods.iter().filter(|p| p.seal().is_some()).collect();
    let pods_problem = pods_problem(facts);
    let unsealed: Vec<&&PodObservation> = answered
        .iter()
        .filter(|p| p.seal().is_some_and(|s| s.initialized && !s.sealed))
        .collect();
    let ready_replicas = facts
        .pods
        .iter()
        .filter(|p| p.pod.ready && !p.pod.terminating)
        .count();
    let all_initialized = !answered.is_empty()
        && answered
            .iter()
            .all(|p| p.seal().is_some_and(|s| s.initialized));
    let any_sealed = answered.iter().any(|p| p.seal().is_some_and(|s| s.sealed));

    // Initialized
    let initialized = match (&facts.init, &pods_problem) {
        (InitState::Initialized { secret: Some(s) }, _) => cond(
            INITIALIZED,
            true,
            "Initialized",
            format!("storage is initialized; the root token and key shares are in Secret {s}"),
        ),
        (InitState::Initialized { secret: None }, _) => cond(
            INITIALIZED,
            true,
            "Initialized",
            "storage is initialized".into(),
        ),
        (InitState::KeysLost { secret }, _) => cond(
            INITIALIZED,
            true,
            "InitKeysLost",
            format!(
                "storage is initialized but Secret {secret} is still marked pending: the operator stopped before it stored the keys; generate a new root token with recovery keys, or re-create the server"
            ),
        ),
        (InitState::Pending, _) => cond(
            INITIALIZED,
            false,
            "Initializing",
            format!(
                "the operator is initializing the server (Secret {} will hold the keys)",
                v.init_secret_name()
            ),
        ),
        (InitState::Manual, _) => cond(
            INITIALIZED,
            false,
            "InitRequired",
            format!(
                "spec.init.auto is false: initialize it yourself with `vault operator init` (PUT /v1/sys/init) against pod {}-0",
                v.name
            ),
        ),
        (InitState::Conflict { secret }, _) => cond(
            INITIALIZED,
            false,
            "InitSecretConflict",
            format!(
                "the server's storage is empty but Secret {secret} holds keys from an earlier initialization; the operator will not initialize twice. Restore the data volume, or delete Secret {secret} to initialize a new, empty server"
            ),
        ),
        (InitState::Failed { reason, message }, _) => cond(
            INITIALIZED,
            false,
            reason.reason(),
            match reason {
                InitFailure::InitFailed => format!("auto-init failed: {message}"),
                _ => message.clone(),
            },
        ),
        (InitState::Unknown, Some((reason, msg))) => unknown(INITIALIZED, reason, msg.clone()),
        (InitState::Unknown, None) => {
            unknown(INITIALIZED, "NoPodAnswered", "no pod answered yet".into())
        }
    };

    // SealHealthy
    let seal_healthy = match &v.seal {
        Seal::Shamir => cond(
            SEAL_HEALTHY,
            true,
            "ShamirSeal",
            "the Shamir seal depends on no external service".into(),
        ),
        Seal::AwsKms { key_id, .. } => {
            let backends: Vec<(&str, &crate::api_client::SealBackendStatus)> = answered
                .iter()
                .filter_map(|p| p.backend().map(|b| (p.pod.name.as_str(), b)))
                .collect();
            match backends.iter().find(|(_, b)| !b.healthy) {
                None if backends.is_empty() => match &pods_problem {
                    Some((reason, msg)) => unknown(SEAL_HEALTHY, reason, msg.clone()),
                    None => unknown(
                        SEAL_HEALTHY,
                        "NoPodAnswered",
                        "no pod reported its seal backend".into(),
                    ),
                },
                None => cond(
                    SEAL_HEALTHY,
                    true,
                    "KMSHealthy",
                    format!("KMS key {key_id} is reachable and usable"),
                ),
                Some((pod, b)) if b.last_error_class.is_empty() => unknown(
                    SEAL_HEALTHY,
                    "KMSCheckPending",
                    format!("pod {pod} has not finished a KMS check of key {key_id} yet"),
                ),
                Some((pod, b)) => cond(
                    SEAL_HEALTHY,
                    false,
                    kms_reason(&b.last_error_class),
                    format!("pod {pod}: {}", b.last_error),
                ),
            }
        }
    };

    // Unsealed
    let unsealed_c = if let Some((reason, msg)) = &pods_problem {
        unknown(UNSEALED, reason, msg.clone())
    } else if let Some(p) = answered
        .iter()
        .find(|p| p.seal().is_some_and(|s| !s.initialized))
    {
        cond(
            UNSEALED,
            false,
            "NotInitialized",
            format!("pod {} is not initialized, so it is sealed", p.pod.name),
        )
    } else if let Some((p, s)) = answered
        .iter()
        .find_map(|p| p.seal().filter(|s| s.sealed).map(|s| (p, s)))
    {
        match &v.seal {
            Seal::Shamir => cond(
                UNSEALED,
                false,
                "AwaitingUnsealKeys",
                format!(
                    "pod {} is sealed: send {} of {} unseal keys to PUT /v1/sys/unseal (progress {}/{}){}",
                    p.pod.name,
                    s.t,
                    s.n,
                    s.progress,
                    s.t,
                    match &facts.init {
                        InitState::Initialized { secret: Some(sec) } =>
                            format!("; the keys are in Secret {sec}"),
                        _ => String::new(),
                    }
                ),
            ),
            Seal::AwsKms { .. } => match p.backend().filter(|b| !b.last_error_class.is_empty()) {
                Some(b) => cond(
                    UNSEALED,
                    false,
                    kms_reason(&b.last_error_class),
                    format!(
                        "pod {} is sealed and retries auto-unseal: {}",
                        p.pod.name, b.last_error
                    ),
                ),
                None => cond(
                    UNSEALED,
                    false,
                    "AutoUnsealing",
                    format!(
                        "pod {} is sealed; auto-unseal through KMS is in progress",
                        p.pod.name
                    ),
                ),
            },
        }
    } else {
        cond(
            UNSEALED,
            true,
            "Unsealed",
            format!("{} of {} pods unsealed", unsealed.len(), v.replicas),
        )
    };

    // Ready: True only when every pod is ready and unsealed; otherwise the worst reason.
    let replicas = v.replicas.max(0) as usize;
    let ready_ok =
        ready_replicas >= replicas && unsealed.len() >= replicas && initialized.status == "True";
    let worst = [&seal_healthy, &initialized, &unsealed_c]
        .into_iter()
        .find(|c| c.status != "True")
        .cloned();
    let ready = if ready_ok {
        cond(
            READY,
            true,
            "Ready",
            format!("{ready_replicas}/{} pods ready and unsealed", v.replicas),
        )
    } else if let Some(w) = worst {
        cond(READY, false, &w.reason, w.message)
    } else {
        cond(
            READY,
            false,
            "PodsNotReady",
            format!(
                "{ready_replicas}/{} pods pass their readiness probe",
                v.replicas
            ),
        )
    };

    // Progressing: something is expected to change by itself.
    let progressing = if facts.rolling {
        cond(
            PROGRESSING,
            true,
            "RollingOut",
            format!("StatefulSet {} is rolling out its pods", v.name),
        )
    } else if matches!(facts.init, InitState::Pending) {
        cond(
            PROGRESSING,
            true,
            "Initializing",
            "auto-init is in progress".into(),
        )
    } else if !ready_ok
        && pods_problem
            .as_ref()
            .is_some_and(|(r, _)| r == "PodStarting" || r == "PodsNotCreated")
    {
        cond(
            PROGRESSING,
            true,
            "PodsStarting",
            "server pods are starting".into(),
        )
    } else if !ready_ok && unsealed_c.reason == "AutoUnsealing" {
        cond(
            PROGRESSING,
            true,
            "AutoUnsealing",
            unsealed_c.message.clone(),
        )
    } else {
        cond(
            PROGRESSING,
            false,
            "Stable",
            "nothing is in progress".into(),
        )
    };

    // Degraded: a human has to look.
    let degraded = if let Some(e) = &facts.apply_error {
        Some((
            "ApplyFailed".to_owned(),
            format!("applying the server's objects failed: {e}"),
        ))
    } else if seal_healthy.status == "False" {
        Some((seal_healthy.reason.clone(), seal_healthy.message.clone()))
    } else if matches!(
        facts.init,
        InitState::Conflict { .. } | InitState::Failed { .. } | InitState::KeysLost { .. }
    ) {
        Some((initialized.reason.clone(), initialized.message.clone()))
    } else {
        pods_problem
            .clone()
            .filter(|(r, _)| r == "PodCrashLooping" || r == "PodWaiting")
    };
    let degraded = match degraded {
        Some((reason, msg)) => cond(DEGRADED, true, &reason, msg),
        None => cond(DEGRADED, false, "AsExpected", "no failure observed".into()),
    };

    let conds = [
        initialized,
        unsealed_c,
        seal_healthy,
        ready.clone(),
        progressing,
        degraded,
    ];
    let prev_conds = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let conditions = conds
        .into_iter()
        .map(|c| {
            let last = prev_conds
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == c.status)
                .map(|p| p.last_transition_time.clone());
            Condition {
                last_transition_time: last.unwrap_or_else(|| now.clone()),
                message: c.message,
                observed_generation: v.generation,
                reason: c.reason,
                status: c.status.to_owned(),
                type_: c.type_.to_owned(),
            }
        })
        .collect();

    let active = unsealed
        .iter()
        .find(|p| !p.health().is_some_and(|h| h.standby))
        .map(|p| p.pod.name.clone());
    let init_secret_name = match &facts.init {
        InitState::Initialized { secret } => secret.clone(),
        InitState::KeysLost { secret } | InitState::Conflict { secret } => Some(secret.clone()),
        _ => prev.and_then(|p| p.init_secret_name.clone()),
    };
    SecretServerStatus {
        observed_generation: v.generation,
        ready: Some(format!("{ready_replicas}/{}", v.replicas)),
        replicas: v.replicas,
        ready_replicas: ready_replicas as i32,
        unsealed_replicas: unsealed.len() as i32,
        initialized: (!answered.is_empty()).then_some(all_initialized),
        sealed: (!answered.is_empty()).then_some(any_sealed || unsealed.is_empty()),
        seal_type: Some(v.seal.type_name().to_owned()),
        active,
        init_secret_name,
        reason: Some(ready.reason),
        pods: facts.pods.iter().map(pod_status).collect(),
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

/// Reasons of a normal start-up: published as Normal events, not warnings.
const STARTUP_REASONS: &[&str] = &[
    "PodsNotCreated",
    "PodStarting",
    "PodTerminating",
    "Initializing",
    "AutoUnsealing",
    "NotInitialized",
    "KMSCheckPending",
    "PodsNotReady",
];

/// An Event to publish: `warning` selects the Warning type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// The Events a status change deserves: condition status flips and new failure reasons.
pub fn transitions(
    prev: Option<&SecretServerStatus>,
    next: &SecretServerStatus,
) -> Vec<Transition> {
    let find = |s: Option<&SecretServerStatus>, t: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == t).cloned())
    };
    let mut out = Vec::new();
    for t in [UNSEALED, SEAL_HEALTHY, READY, INITIALIZED] {
        let (Some(new), old) = (find(Some(next), t), find(prev, t)) else {
            continue;
        };
        let changed = old
            .as_ref()
            .is_none_or(|o| o.status != new.status || o.reason != new.reason);
        if !changed || new.status == "Unknown" {
            continue;
        }
        // A first observation that is simply fine is not news.
        if old.is_none() && new.status == "True" && t != UNSEALED {
            continue;
        }
        let warning = new.status == "False" && !STARTUP_REASONS.contains(&new.reason.as_str());
        let reason = match (t, new.status.as_str()) {
            (UNSEALED, "True") => "Unsealed".to_owned(),
            (UNSEALED, _)
                if new.reason == "AwaitingUnsealKeys" || new.reason == "AutoUnsealing" =>
            {
                "Sealed".to_owned()
            }
            (READY, "True") => "Ready".to_owned(),
            (SEAL_HEALTHY, "True") => "SealHealthy".to_owned(),
            _ => new.reason.clone(),
        };
        out.push(Transition {
            warning,
            reason,
            note: new.message.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests;
