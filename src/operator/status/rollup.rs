//! Operator layer, status step: the builders of the conditions that summarise the others
//! (Ready, Progressing, Degraded), one small function each. Pure.

use super::conditions::Cond;
use super::reason::Reason;
use super::summary::Summary;
use super::{DEGRADED, Facts, InitState, PROGRESSING, READY};
use crate::operator::validate::Validated;

/// Every desired pod is ready and unsealed, and the storage is initialized.
pub fn all_ready(v: &Validated, s: &Summary<'_>, initialized: &Cond) -> bool {
    let replicas = usize::try_from(v.replicas.max(0)).unwrap_or(0);
    s.ready_replicas >= replicas && s.unsealed.len() >= replicas && initialized.is_true()
}

/// `Ready`: True only when [`all_ready`]; otherwise the reason of the first condition of
/// `others` that is not True (the worst), else `PodsNotReady`.
pub fn ready(v: &Validated, s: &Summary<'_>, all_ready: bool, others: [&Cond; 3]) -> Cond {
    if all_ready {
        return Cond::new(
            READY,
            true,
            Reason::Ready,
            format!(
                "{}/{} pods ready and unsealed",
                s.ready_replicas, v.replicas
            ),
        );
    }
    match others.into_iter().find(|c| !c.is_true()) {
        Some(worst) => Cond::new(READY, false, worst.reason, worst.message.clone()),
        None => Cond::new(
            READY,
            false,
            Reason::PodsNotReady,
            format!(
                "{}/{} pods pass their readiness probe",
                s.ready_replicas, v.replicas
            ),
        ),
    }
}

/// `Progressing`: something is expected to change by itself (a rollout, auto-init, pods
/// starting, auto-unseal).
pub fn progressing(facts: &Facts<'_>, s: &Summary<'_>, all_ready: bool, unsealed: &Cond) -> Cond {
    let yes = |reason, message| Cond::new(PROGRESSING, true, reason, message);
    let starting = s
        .problem
        .as_ref()
        .is_some_and(|p| matches!(p.reason, Reason::PodStarting | Reason::PodsNotCreated));
    if let Some(u) = facts
        .upgrade
        .as_ref()
        .filter(|u| super::upgrading::moving(u))
    {
        yes(Reason::RollingOut, u.plan.message.clone())
    } else if facts.rolling {
        yes(
            Reason::RollingOut,
            format!("StatefulSet {} is rolling out its pods", facts.v.name),
        )
    } else if matches!(facts.init, InitState::Pending) {
        yes(Reason::Initializing, "auto-init is in progress".into())
    } else if !all_ready && starting {
        yes(Reason::PodsStarting, "server pods are starting".into())
    } else if !all_ready && unsealed.reason == Reason::AutoUnsealing {
        yes(Reason::AutoUnsealing, unsealed.message.clone())
    } else {
        Cond::new(
            PROGRESSING,
            false,
            Reason::Stable,
            "nothing is in progress".into(),
        )
    }
}

/// `Degraded`: a human has to look (an apply failure, a broken seal, an init that cannot
/// proceed, a pod that crashes or waits).
pub fn degraded(
    facts: &Facts<'_>,
    s: &Summary<'_>,
    seal_healthy: &Cond,
    initialized: &Cond,
) -> Cond {
    let yes = |reason, message| Cond::new(DEGRADED, true, reason, message);
    if let Some(e) = &facts.apply_error {
        return yes(
            Reason::ApplyFailed,
            format!("applying the server's objects failed: {e}"),
        );
    }
    if seal_healthy.status == super::conditions::CondStatus::False {
        return yes(seal_healthy.reason, seal_healthy.message.clone());
    }
    if matches!(
        facts.init,
        InitState::Conflict { .. } | InitState::Failed { .. } | InitState::KeysLost { .. }
    ) {
        return yes(initialized.reason, initialized.message.clone());
    }
    if let Some(u) = facts
        .upgrade
        .as_ref()
        .filter(|u| u.plan.phase == crate::operator::upgrade::Phase::Halted)
    {
        return yes(Reason::UpgradeHalted, u.plan.message.clone());
    }
    match &s.problem {
        Some(p) if matches!(p.reason, Reason::PodCrashLooping | Reason::PodWaiting) => {
            yes(p.reason, p.message.clone())
        }
        _ => Cond::new(
            DEGRADED,
            false,
            Reason::AsExpected,
            "no failure observed".into(),
        ),
    }
}

#[cfg(test)]
mod tests;
