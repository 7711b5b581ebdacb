//! Operator layer, HA step (upgrade): the planner's stability wait. Pure; the time comes from
//! the caller.
//!
//! Issue 14, step 5: the next pod is replaced (or leadership moves) only once the pod the last
//! step replaced is stable, that is, it has been an unsealed, caught-up voter for autopilot's
//! server stabilization time (`spec.raft.autopilot.serverStabilizationTime`, default 10 s).
//! Autopilot's own wait does not cover a replacement: a pod that keeps its raft data rejoins as
//! a voter at once. The first observation that sees the pod healthy is recorded in the step
//! (`status.upgrade.healthySince`), so an operator restart does not restart the clock; an
//! observation that sees it unhealthy clears it (the planner's wait for the replaced pod).
//! Without a recorded step (the status was lost, or a blocked precondition cleared it) nothing
//! shows how long an updated pod has been healthy: before acting, the planner then counts from
//! now ([`unrecorded`]).

use k8s_openapi::jiff::Timestamp;

use super::{Observed, Phase, Plan, Progress, Step, StepKind, elapsed, ordinal, unhealthy};

/// Whole seconds a pod must have been healthy: the stabilization time, rounded up.
pub fn required_secs(o: &Observed) -> i64 {
    let d = o.stabilization;
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The waiting plan while the pod the `recorded` step replaced is healthy but not stable yet.
/// `None` when there is nothing to wait for: no replacement recorded, one replica (no other
/// pod to protect), the pod is not back at the step's revision or not healthy (the planner
/// waits for it, or blocks, on that), or it is stable. `sick` names the other unhealthy pods.
pub fn wait(
    o: &Observed,
    recorded: Option<&Progress>,
    leader_commit: u64,
    sick: &[(&String, String)],
    now: Timestamp,
) -> Option<Plan> {
    let p = recorded.filter(|p| {
        matches!(
            p.step.kind,
            StepKind::ReplaceStandby | StepKind::ReplaceLeader
        )
    })?;
    if o.replicas <= 1 {
        return None;
    }
    let pod = p.step.pod.as_str();
    // Replaced: the pod runs the revision the step moved it to (the old pod may still be
    // listed, healthy, for a moment after its deletion).
    let m = o.members.iter().find(|m| m.name == pod)?;
    if m.revision.as_deref() != Some(p.revision.as_str())
        || unhealthy(o, Some(m), pod, leader_commit).is_some()
    {
        return None;
    }
    // A recorded time ahead of `now` (another operator replica's clock) counts from now.
    let since = p.healthy_since.filter(|t| *t <= now).unwrap_or(now);
    let healthy_for = elapsed(now, since);
    let required = required_secs(o);
    if healthy_for >= required {
        return None;
    }
    let others: Vec<&str> = sick
        .iter()
        .filter(|(n, _)| n.as_str() != pod)
        .map(|(_, w)| w.as_str())
        .collect();
    let also = if others.is_empty() {
        String::new()
    } else {
        format!("; also {}", others.join("; "))
    };
    Some(Plan {
        phase: Phase::Waiting,
        message: format!(
            "{}: waiting until {pod} is stable: an unsealed, caught-up voter for {healthy_for} s, {required} s required (autopilot server stabilization time){also}",
            p.step
        ),
        progress: Some(Progress {
            healthy_since: Some(since),
            ..p.clone()
        }),
        action: None,
    })
}

/// Before acting without a recorded step: the waiting plan that starts the clock now for the
/// updated pod replaced last (the lowest ordinal at `rev`, as standbys go highest first),
/// recorded as its replacement step so that the next observation continues it. `None` when no
/// pod runs `rev` yet (the upgrade's first step) or for one replica.
pub fn unrecorded(o: &Observed, rev: &str, leader_commit: u64, now: Timestamp) -> Option<Plan> {
    let updated = |n: &str| {
        o.members
            .iter()
            .any(|m| m.name == n && !m.terminating && m.revision.as_deref() == Some(rev))
    };
    let names: Vec<String> = (0..o.replicas).map(|i| format!("{}-{i}", o.name)).collect();
    let mut done: Vec<&String> = names.iter().filter(|n| updated(n)).collect();
    done.sort_by_key(|n| ordinal(n));
    let pod = done.first()?;
    let step = Progress {
        revision: rev.to_owned(),
        step: Step {
            kind: StepKind::ReplaceStandby,
            pod: (*pod).clone(),
            index: u32::try_from(done.len()).unwrap_or(u32::MAX),
            of: o.replicas,
        },
        since: now,
        acted_at: None,
        healthy_since: None,
    };
    let mut plan = wait(o, Some(&step), leader_commit, &[], now)?;
    plan.message
        .push_str("; when it became one is not recorded, so the operator counts from now");
    Some(plan)
}
