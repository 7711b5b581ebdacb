//! Operator layer, status step: the Events a status change deserves (condition status flips and
//! new failure reasons), and how soon to look again. Pure: the reconciler publishes them.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::reason::Reason;
use super::{INITIALIZED, PROGRESSING, READY, SEAL_HEALTHY, UNSEALED, UPGRADING};
use crate::operator::crd::SecretServerStatus;

/// An Event to publish: `warning` selects the Warning type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: Reason,
    pub note: String,
}

fn find<'s>(s: Option<&'s SecretServerStatus>, type_: &str) -> Option<&'s Condition> {
    s.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

/// The Events a status change deserves: condition status flips and new failure reasons.
pub fn transitions(
    prev: Option<&SecretServerStatus>,
    next: &SecretServerStatus,
) -> Vec<Transition> {
    [UNSEALED, SEAL_HEALTHY, READY, INITIALIZED]
        .into_iter()
        .filter_map(|t| transition(t, find(prev, t), find(Some(next), t)?))
        .collect()
}

/// The Event of one condition type, if its change deserves one.
fn transition(type_: &str, old: Option<&Condition>, new: &Condition) -> Option<Transition> {
    let changed = old.is_none_or(|o| o.status != new.status || o.reason != new.reason);
    if !changed || new.status == "Unknown" {
        return None;
    }
    // A first observation that is simply fine is not news.
    if old.is_none() && new.status == "True" && type_ != UNSEALED {
        return None;
    }
    let reason = Reason::parse(&new.reason)?;
    let warning = new.status == "False" && !reason.is_startup();
    let reason = match (type_, new.status.as_str(), reason) {
        (UNSEALED, "True", _) => Reason::Unsealed,
        (UNSEALED, _, Reason::AwaitingUnsealKeys | Reason::AutoUnsealing) => Reason::Sealed,
        (READY, "True", _) => Reason::Ready,
        (SEAL_HEALTHY, "True", _) => Reason::SealHealthy,
        (_, _, r) => r,
    };
    Some(Transition {
        warning,
        reason,
        note: new.message.clone(),
    })
}

/// Requeue interval while anything is not Ready.
pub const REQUEUE_NOT_READY: Duration = Duration::from_secs(15);
/// Requeue interval of a Ready server (KMS health can change without any pod changing).
pub const REQUEUE_READY: Duration = Duration::from_secs(60);
/// Requeue interval while a raft server's upgrade is under way: a step may wait on time (the
/// retry after `sys/step-down`, a timeout) that no event announces.
pub const REQUEUE_UPGRADING: Duration = Duration::from_secs(5);
/// Requeue interval while a pod is starting or awaiting auto-init: a server that starts
/// listening, or that is waiting to be initialized, produces no Kubernetes event.
pub const REQUEUE_STARTING: Duration = Duration::from_secs(2);

/// When to look again: soon while a pod starts or awaits auto-init (no event would tell),
/// every 15 s while anything else is not Ready, every minute when Ready.
pub fn requeue_after(status: &SecretServerStatus) -> Duration {
    let cond =
        |t: &str| find(Some(status), t).map(|c| (c.status.as_str(), Reason::parse(&c.reason)));
    if matches!(cond(UPGRADING), Some(("True", _))) {
        return REQUEUE_UPGRADING;
    }
    if matches!(cond(READY), Some(("True", _))) {
        return REQUEUE_READY;
    }
    let starting = matches!(
        cond(PROGRESSING),
        Some(("True", Some(Reason::PodsStarting | Reason::Initializing)))
    ) || matches!(
        cond(READY),
        Some((_, Some(Reason::PodUnreachable | Reason::PodsNotReady)))
    );
    if starting {
        REQUEUE_STARTING
    } else {
        REQUEUE_NOT_READY
    }
}
