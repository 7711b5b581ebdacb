//! Operator layer, HA step: the safe-upgrade planner of a raft SecretServer. Its StatefulSet
//! uses `updateStrategy: OnDelete`, so a changed pod template reaches a pod only when the
//! operator deletes it; [`plan`] decides which pod, when, and whether to move leadership first.
//! Pure: a function from what observe saw (pod revisions and raft state) and the step recorded
//! in status to the next action. The sequence is derived from the observation, so an operator
//! restart resumes it; the recorded step only carries its start time (for the timeouts) and its
//! label.
//!
//! Order (issue 14, step 5; ha.md §5.3): preconditions (every voter healthy, failure
//! tolerance >= 1, no membership change pending, one leader that every pod agrees on); outdated
//! standbys one at a time, highest ordinal first, each time waiting until the new pod is
//! unsealed, a voter, caught up and stable (it has been all that for autopilot's server
//! stabilization time, counted from the first observation that saw it healthy, which the step
//! records; see [`stable`]); then `sys/step-down` on the outdated leader, wait until the
//! pods agree on a new leader, and replace the old leader. Never delete a pod while another
//! voter is unhealthy. One replica: the pod is replaced, there is no other. A step that times
//! out halts the upgrade (the status says Degraded) instead of pressing on.

use std::fmt;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// How long a replaced pod may take to become an unsealed, caught-up voter.
pub const NEW_POD_TIMEOUT_SECS: i64 = 600;
/// How long the pods may take to agree on a new leader after `sys/step-down`.
pub const LEADER_CHANGE_TIMEOUT_SECS: i64 = 120;
/// How long after a `sys/step-down` that left the same leader in office before asking again.
pub const STEP_DOWN_RETRY_SECS: i64 = 20;

/// One server pod as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The pod's name, which is also its raft node id (`VAULT_RAFT_NODE_ID=$(POD_NAME)`).
    pub name: String,
    /// The pod's `controller-revision-hash` label.
    pub revision: Option<String>,
    /// The pod is being deleted.
    pub terminating: bool,
    /// What the server answered; `None` when it did not answer.
    pub server: Option<RaftNode>,
}

/// A server's own view of raft (`sys/seal-status` and `sys/leader`, both unauthenticated).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RaftNode {
    pub unsealed: bool,
    /// `sys/leader`'s `is_self`.
    pub leader: bool,
    /// The pod this server follows (from `sys/leader`'s `leader_address`); `None`: none known.
    pub follows: Option<String>,
    pub applied_index: u64,
    pub committed_index: u64,
}

/// The raft configuration (`sys/storage/raft/configuration`), by node id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    pub voters: Vec<String>,
    pub non_voters: Vec<String>,
}

/// What the planner reads.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The SecretServer's (and StatefulSet's) name.
    pub name: String,
    pub replicas: u32,
    /// The StatefulSet's `status.updateRevision`, once its controller observed the current
    /// generation; `None` otherwise.
    pub update_revision: Option<String>,
    /// The listed pods.
    pub members: Vec<Member>,
    /// The raft configuration, or why it is unknown.
    pub membership: Result<Membership, String>,
    /// How many entries a voter may trail the leader's commit index and count as caught up
    /// (autopilot's `max_trailing_logs`).
    pub max_lag: u64,
    /// How long a replaced pod must have been an unsealed, caught-up voter before the next pod
    /// is replaced or leadership moves (autopilot's `server_stabilization_time`).
    pub stabilization: Duration,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StepKind {
    /// Replace a standby.
    ReplaceStandby,
    /// Move leadership away from the outdated leader with `sys/step-down`.
    StepDown,
    /// Replace the former leader, after it stepped down.
    ReplaceLeader,
    /// Replace the only pod of a 1-replica server.
    ReplacePod,
}

impl StepKind {
    const ALL: [StepKind; 4] = [
        StepKind::ReplaceStandby,
        StepKind::StepDown,
        StepKind::ReplaceLeader,
        StepKind::ReplacePod,
    ];

    /// The name recorded in `status.upgrade.step`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReplaceStandby => "ReplaceStandby",
            Self::StepDown => "StepDown",
            Self::ReplaceLeader => "ReplaceLeader",
            Self::ReplacePod => "ReplacePod",
        }
    }

    /// The kind named `s` (as [`StepKind::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One step of an upgrade: what, on which pod, and the how-many-th pod of the server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub kind: StepKind,
    pub pod: String,
    /// 1-based: the how-many-th pod of the server this step updates.
    pub index: u32,
    pub of: u32,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pod, i, n) = (&self.pod, self.index, self.of);
        match self.kind {
            StepKind::ReplaceStandby => write!(f, "replacing {pod} (standby, {i} of {n})"),
            StepKind::StepDown => write!(
                f,
                "stepping down {pod} so that an updated voter leads ({i} of {n})"
            ),
            StepKind::ReplaceLeader => write!(f, "replacing {pod} (former leader, {i} of {n})"),
            StepKind::ReplacePod => write!(f, "replacing {pod} (the only pod)"),
        }
    }
}

/// The upgrade's progress as the status records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The revision the pods are moved to.
    pub revision: String,
    pub step: Step,
    /// When this step began.
    pub since: Timestamp,
    /// When the operator last acted in this step (deleted the pod, called `sys/step-down`).
    pub acted_at: Option<Timestamp>,
    /// When the pod this step replaced was first seen an unsealed, caught-up voter at the
    /// step's revision (and at every observation since); `None` until then, and again when an
    /// observation sees it unhealthy.
    pub healthy_since: Option<Timestamp>,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete this pod; the StatefulSet controller re-creates it at the update revision.
    DeletePod(String),
    /// `PUT sys/step-down` on this pod, the leader.
    StepDown(String),
}

/// Where the upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Every pod runs the update revision and the last step finished (or none ran).
    Idle,
    /// Acting now: [`Plan::action`] is set.
    Acting,
    /// Inside a step, waiting for the pods (a replaced pod to become a voter, a new leader).
    Waiting,
    /// A precondition does not hold: no pod is deleted until it does.
    Blocked,
    /// A step timed out: nothing more is done until the cause is gone (Degraded).
    Halted,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub phase: Phase,
    /// The step the upgrade is in (recorded in status); `None` when idle or blocked before a
    /// step began.
    pub progress: Option<Progress>,
    pub action: Option<Action>,
    /// What is happening, or why not, naming pods and causes.
    pub message: String,
}

impl Plan {
    fn idle(message: String) -> Self {
        Self {
            phase: Phase::Idle,
            progress: None,
            action: None,
            message,
        }
    }
    fn blocked(progress: Option<Progress>, message: String) -> Self {
        Self {
            phase: Phase::Blocked,
            progress,
            action: None,
            message,
        }
    }
}

/// The pod's ordinal (the number after the last `-`).
fn ordinal(pod: &str) -> Option<u32> {
    pod.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// Why a pod is not a healthy voter, or `None` when it is one.
fn unhealthy(o: &Observed, m: Option<&Member>, name: &str, leader_commit: u64) -> Option<String> {
    let Some(m) = m else {
        return Some(format!("pod {name} does not exist yet"));
    };
    if m.terminating {
        return Some(format!("pod {name} is terminating"));
    }
    let Some(s) = &m.server else {
        return Some(format!("pod {name} does not answer"));
    };
    if !s.unsealed {
        return Some(format!("pod {name} is sealed (or has not joined yet)"));
    }
    if o.replicas > 1 {
        let voter = o
            .membership
            .as_ref()
            .is_ok_and(|ms| ms.voters.iter().any(|v| v == name));
        if !voter {
            return Some(format!("pod {name} is not a raft voter yet"));
        }
        let lag = leader_commit.saturating_sub(s.applied_index);
        if lag > o.max_lag {
            return Some(format!(
                "pod {name} trails the leader by {lag} entries (at most {} allowed)",
                o.max_lag
            ));
        }
    }
    None
}

fn elapsed(now: Timestamp, since: Timestamp) -> i64 {
    now.as_second() - since.as_second()
}

/// The next action of the upgrade of `o`, given the step recorded in status (`prev`) and the
/// time. Pure.
pub fn plan(o: &Observed, prev: Option<&Progress>, now: Timestamp) -> Plan {
    let Some(rev) = o.update_revision.clone() else {
        return Plan::idle(format!(
            "the StatefulSet controller has not observed StatefulSet {}'s current generation yet",
            o.name
        ));
    };
    let recorded = prev;
    // A step recorded for another revision (the template changed again) is over (but the pod
    // it replaced must still be stable before the next deletion, see below).
    let prev = prev.filter(|p| p.revision == rev);
    let names: Vec<String> = (0..o.replicas).map(|i| format!("{}-{i}", o.name)).collect();
    let member = |name: &str| o.members.iter().find(|m| m.name == name);
    let outdated = |name: &str| {
        member(name).is_some_and(|m| !m.terminating && m.revision.as_deref() != Some(&rev))
    };
    let leader_commit = o
        .members
        .iter()
        .filter_map(|m| m.server.as_ref())
        .filter(|s| s.leader)
        .map(|s| s.committed_index)
        .max()
        .unwrap_or(0);
    let sick: Vec<(&String, String)> = names
        .iter()
        .filter_map(|n| unhealthy(o, member(n), n, leader_commit).map(|why| (n, why)))
        .collect();
    // The pod the last step replaced must be stable before anything else happens (even when
    // the template changed again since, or every pod is updated: a next upgrade would start
    // at once).
    if let Some(wait) = stable::wait(o, recorded, leader_commit, &sick, now) {
        return wait;
    }
    let any_outdated = names.iter().any(|n| outdated(n));
    if !any_outdated && (prev.is_none() || sick.is_empty()) {
        return Plan::idle(format!("every pod runs revision {rev}"));
    }
    // Without the raft configuration no pod can be shown to be a voter: say that, rather than
    // "not a voter", and keep the recorded step (its timeout does not run on our blindness).
    if o.replicas > 1
        && let Err(why) = &o.membership
    {
        return Plan::blocked(
            prev.cloned(),
            format!("the raft membership is unknown: {why}"),
        );
    }
    let updated_others = |pod: &str| {
        let n = names
            .iter()
            .filter(|n| n.as_str() != pod)
            .filter(|n| member(n).is_some_and(|m| m.revision.as_deref() == Some(&rev)))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let step = |kind, pod: &str| Step {
        kind,
        pod: pod.to_owned(),
        index: updated_others(pod) + 1,
        of: o.replicas,
    };
    // Keeps the recorded step's start time when the step is the same one.
    let progress = |step: Step, acted: bool| {
        let replacing = |k| k != StepKind::StepDown;
        let same = prev.filter(|p| {
            p.step.pod == step.pod
                && (p.step.kind == step.kind || replacing(p.step.kind) && replacing(step.kind))
        });
        Progress {
            revision: rev.clone(),
            since: same.map_or(now, |p| p.since),
            acted_at: if acted {
                Some(now)
            } else {
                same.and_then(|p| p.acted_at)
            },
            step: same.map_or(step, |p| p.step.clone()),
            // A new step, or a pod that is not healthy (yet, or again): not stable.
            healthy_since: None,
        }
    };
    let act = |step: Step, action: Action| {
        // No step recorded (status lost, or a precondition blocked the upgrade): nothing shows
        // how long the updated pods have been healthy, so the clock starts now.
        if recorded.is_none()
            && let Some(wait) = stable::unrecorded(o, &rev, leader_commit, now)
        {
            return wait;
        }
        let progress = progress(step, true);
        Plan {
            phase: Phase::Acting,
            message: progress.step.to_string(),
            progress: Some(progress),
            action: Some(action),
        }
    };

    // A pod that is missing, terminating, or updated but not a healthy voter yet is the one
    // the last step replaced: wait for it, up to the timeout.
    let in_flight: Vec<&(&String, String)> = sick.iter().filter(|(n, _)| !outdated(n)).collect();
    if let Some((pod, why)) = in_flight
        .iter()
        .find(|(n, _)| prev.is_some_and(|p| &p.step.pod == *n))
        .or_else(|| in_flight.first())
    {
        let kind = if o.replicas == 1 {
            StepKind::ReplacePod
        } else {
            StepKind::ReplaceStandby
        };
        let progress = progress(step(kind, pod), false);
        let waited = elapsed(now, progress.since);
        let others: Vec<&str> = sick
            .iter()
            .filter(|(n, _)| n != pod)
            .map(|(_, w)| w.as_str())
            .collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!("; also {}", others.join("; "))
        };
        if waited > NEW_POD_TIMEOUT_SECS {
            return Plan {
                phase: Phase::Halted,
                message: format!(
                    "upgrade halted at {}: {why} {waited} s after it was replaced (at most {NEW_POD_TIMEOUT_SECS} s){also}. No other pod is deleted; see `kubectl logs {pod}`, and the upgrade resumes once it is an unsealed, caught-up voter",
                    progress.step
                ),
                progress: Some(progress),
                action: None,
            };
        }
        return Plan {
            phase: Phase::Waiting,
            message: format!(
                "{}: waiting until {pod} is an unsealed, caught-up voter ({why}){also}",
                progress.step
            ),
            progress: Some(progress),
            action: None,
        };
    }

    // One replica: nothing else to keep healthy.
    if o.replicas == 1 {
        return match names.first() {
            Some(pod) if outdated(pod) => act(
                step(StepKind::ReplacePod, pod),
                Action::DeletePod(pod.clone()),
            ),
            _ => Plan::idle(format!("every pod runs revision {rev}")),
        };
    }

    // Preconditions: never delete a pod while another voter is unhealthy.
    if !sick.is_empty() {
        let whys: Vec<&str> = sick.iter().map(|(_, w)| w.as_str()).collect();
        return Plan::blocked(
            None,
            format!(
                "not replacing any pod while a voter is unhealthy: {}",
                whys.join("; ")
            ),
        );
    }
    let membership = match &o.membership {
        Ok(m) => m,
        Err(why) => {
            return Plan::blocked(None, format!("the raft membership is unknown: {why}"));
        }
    };
    if !membership.non_voters.is_empty() {
        return Plan::blocked(
            None,
            format!(
                "a membership change is pending: {} not voters yet",
                membership.non_voters.join(", ")
            ),
        );
    }
    let strangers: Vec<&str> = membership
        .voters
        .iter()
        .filter(|v| !names.contains(v))
        .map(String::as_str)
        .collect();
    if !strangers.is_empty() {
        return Plan::blocked(
            None,
            format!(
                "a membership change is pending: voters {} are not pods of the {} desired replicas (scaling, or a removed server still listed)",
                strangers.join(", "),
                o.replicas
            ),
        );
    }
    let extra: Vec<&str> = o
        .members
        .iter()
        .filter(|m| !names.contains(&m.name))
        .map(|m| m.name.as_str())
        .collect();
    if !extra.is_empty() {
        return Plan::blocked(
            None,
            format!(
                "pods {} are beyond the {} desired replicas: waiting for the scale-down to finish",
                extra.join(", "),
                o.replicas
            ),
        );
    }
    let voters = membership.voters.len();
    let tolerance = voters.saturating_sub(voters / 2 + 1);
    if tolerance < 1 {
        return Plan::blocked(
            None,
            format!(
                "failure tolerance is {tolerance} with {voters} voters: replacing a pod would lose quorum"
            ),
        );
    }

    // The leader, as every pod must agree.
    let leaders: Vec<&str> = o
        .members
        .iter()
        .filter(|m| m.server.as_ref().is_some_and(|s| s.leader))
        .map(|m| m.name.as_str())
        .collect();
    let stepping_down = prev.filter(|p| p.step.kind == StepKind::StepDown);
    let agreed = match leaders.as_slice() {
        [l] => o
            .members
            .iter()
            .filter_map(|m| m.server.as_ref())
            .all(|s| s.leader || s.follows.as_deref() == Some(l))
            .then_some(*l),
        _ => None,
    };
    let Some(leader) = agreed else {
        let seen = if leaders.is_empty() {
            "no pod is the leader".to_owned()
        } else {
            format!("{} claim leadership", leaders.join(", "))
        };
        if let Some(p) = stepping_down {
            let waited = elapsed(now, p.since);
            let phase = if waited > LEADER_CHANGE_TIMEOUT_SECS {
                Phase::Halted
            } else {
                Phase::Waiting
            };
            return Plan {
                phase,
                message: format!(
                    "{}: waiting until every pod agrees on a new leader ({seen}, {waited} s after sys/step-down{})",
                    p.step,
                    if phase == Phase::Halted {
                        format!("; at most {LEADER_CHANGE_TIMEOUT_SECS} s, upgrade halted")
                    } else {
                        String::new()
                    }
                ),
                progress: Some(p.clone()),
                action: None,
            };
        }
        return Plan::blocked(None, format!("the pods do not agree on one leader: {seen}"));
    };

    // Outdated standbys first, highest ordinal first; the former leader once it stepped down.
    let mut standbys: Vec<&String> = names
        .iter()
        .filter(|n| n.as_str() != leader && outdated(n))
        .collect();
    standbys.sort_by_key(|n| std::cmp::Reverse(ordinal(n)));
    if let Some(pod) = standbys.first() {
        // The pod that just stepped down (or whose replacement began as the former leader's).
        let former_leader = prev.is_some_and(|p| {
            &p.step.pod == *pod
                && matches!(p.step.kind, StepKind::StepDown | StepKind::ReplaceLeader)
        });
        let kind = if former_leader {
            StepKind::ReplaceLeader
        } else {
            StepKind::ReplaceStandby
        };
        return act(step(kind, pod), Action::DeletePod((*pod).clone()));
    }
    // Only the leader is outdated: move leadership to an updated voter first.
    if let Some(p) = stepping_down.filter(|p| p.step.pod == leader) {
        let waited = elapsed(now, p.since);
        if waited > LEADER_CHANGE_TIMEOUT_SECS {
            return Plan {
                phase: Phase::Halted,
                message: format!(
                    "upgrade halted at {}: {leader} is still the leader {waited} s after sys/step-down (at most {LEADER_CHANGE_TIMEOUT_SECS} s); the operator does not delete a leader",
                    p.step
                ),
                progress: Some(p.clone()),
                action: None,
            };
        }
        let since_act = p.acted_at.map_or(i64::MAX, |t| elapsed(now, t));
        if since_act < STEP_DOWN_RETRY_SECS {
            return Plan {
                phase: Phase::Waiting,
                message: format!(
                    "{}: waiting for leadership to move ({leader} still leads {since_act} s after sys/step-down)",
                    p.step
                ),
                progress: Some(p.clone()),
                action: None,
            };
        }
    }
    act(
        step(StepKind::StepDown, leader),
        Action::StepDown(leader.to_owned()),
    )
}

mod stable;
#[cfg(test)]
mod tests;
