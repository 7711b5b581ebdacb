//! Operator layer, status step: the `Upgrading` condition of a raft server (from the upgrade
//! planner's answer), and `status.upgrade`, where the current step is recorded so that an
//! operator restart resumes it. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::conditions::Cond;
use super::reason::Reason;
use super::{UPGRADING, UpgradeFacts};
use crate::operator::crd::{SecretServerStatus, UpgradeStatus};
use crate::operator::upgrade::{Action, Phase, Progress, Step, StepKind};

/// `Upgrading`: True while outdated pods remain (acting, waiting, blocked or halted), with the
/// step and why; False when every pod runs the update revision; Unknown while the StatefulSet
/// controller has not observed the current template.
pub fn upgrading(u: &UpgradeFacts<'_>) -> Cond {
    let plan = u.plan;
    let yes = |reason, message| Cond::new(UPGRADING, true, reason, message);
    if let Some(e) = &u.act_error {
        return yes(
            Reason::UpgradeActionFailed,
            format!("{}: {e}; retried on the next reconcile", plan.message),
        );
    }
    match plan.phase {
        Phase::Idle if !u.revision_known => {
            Cond::unknown(UPGRADING, Reason::RevisionPending, plan.message.clone())
        }
        Phase::Idle => Cond::new(UPGRADING, false, Reason::UpToDate, plan.message.clone()),
        Phase::Acting => match plan.action {
            Some(Action::StepDown(_)) => yes(Reason::SteppingDown, plan.message.clone()),
            _ => yes(Reason::ReplacingPod, plan.message.clone()),
        },
        Phase::Waiting => yes(Reason::AwaitingUpgradedPod, plan.message.clone()),
        Phase::Blocked => yes(Reason::UpgradeBlocked, plan.message.clone()),
        Phase::Halted => yes(Reason::UpgradeHalted, plan.message.clone()),
    }
}

/// Whether the upgrade moves by itself (Progressing): acting or waiting for pods.
pub fn moving(u: &UpgradeFacts<'_>) -> bool {
    matches!(u.plan.phase, Phase::Acting | Phase::Waiting)
}

/// `status.upgrade` for the plan's step.
pub fn record(p: &Progress) -> UpgradeStatus {
    UpgradeStatus {
        revision: p.revision.clone(),
        step: p.step.kind.as_str().to_owned(),
        pod: p.step.pod.clone(),
        index: p.step.index,
        of: p.step.of,
        since: Time(p.since),
        acted_at: p.acted_at.map(Time),
        healthy_since: p.healthy_since.map(Time),
    }
}

/// The step recorded in `status.upgrade`, if any (an unknown step name counts as none: the
/// planner derives the sequence from the pods and starts the step afresh).
pub fn recorded(status: Option<&SecretServerStatus>) -> Option<Progress> {
    let u = status?.upgrade.as_ref()?;
    Some(Progress {
        revision: u.revision.clone(),
        step: Step {
            kind: StepKind::parse(&u.step)?,
            pod: u.pod.clone(),
            index: u.index,
            of: u.of,
        },
        since: u.since.0,
        acted_at: u.acted_at.as_ref().map(|t| t.0),
        healthy_since: u.healthy_since.as_ref().map(|t| t.0),
    })
}

/// Whole seconds (what the API server keeps), so a recorded step reads back equal.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests;
