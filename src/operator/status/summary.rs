//! Operator layer, status step: what the condition builders read from the pods, summarised once
//! (which pods answered, which are unsealed and ready, and why none answered). Pure.

use super::Facts;
use super::reason::Reason;
use crate::operator::observe::{Answer, PodObservation};

/// Why no pod answered: a reason and a message that names the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PodProblem {
    pub reason: Reason,
    pub message: String,
}

/// The pods as the conditions see them.
#[derive(Debug, Clone)]
pub(super) struct Summary<'a> {
    /// Pods whose server answered `sys/seal-status`.
    pub answered: Vec<&'a PodObservation>,
    /// Answering pods that are initialized and unsealed.
    pub unsealed: Vec<&'a PodObservation>,
    /// Pods whose Ready condition is True and that are not terminating.
    pub ready_replicas: usize,
    /// Why no pod answered; `None` when at least one did.
    pub problem: Option<PodProblem>,
}

impl<'a> Summary<'a> {
    pub fn of(facts: &Facts<'a>) -> Self {
        let answered: Vec<&PodObservation> =
            facts.pods.iter().filter(|p| p.seal().is_some()).collect();
        let unsealed = answered
            .iter()
            .copied()
            .filter(|p| p.seal().is_some_and(|s| s.initialized && !s.sealed))
            .collect();
        Self {
            unsealed,
            ready_replicas: facts
                .pods
                .iter()
                .filter(|p| p.pod.ready && !p.pod.terminating)
                .count(),
            problem: pod_problem(facts),
            answered,
        }
    }

    /// Every answering pod is initialized (false when none answered).
    pub fn all_initialized(&self) -> bool {
        !self.answered.is_empty()
            && self
                .answered
                .iter()
                .all(|p| p.seal().is_some_and(|s| s.initialized))
    }

    /// Some answering pod is sealed.
    pub fn any_sealed(&self) -> bool {
        self.answered
            .iter()
            .any(|p| p.seal().is_some_and(|s| s.sealed))
    }

    /// The unsealed pod that is not a standby.
    pub fn active(&self) -> Option<String> {
        self.unsealed
            .iter()
            .find(|p| !p.health().is_some_and(|h| h.standby))
            .map(|p| p.pod.name.clone())
    }
}

/// Why no pod answered, or `None` when at least one did.
pub(super) fn pod_problem(facts: &Facts<'_>) -> Option<PodProblem> {
    if facts.pods.iter().any(|p| p.seal().is_some()) {
        return None;
    }
    let problem = |reason, message| Some(PodProblem { reason, message });
    let Some(p) = facts.pods.first() else {
        return problem(
            Reason::PodsNotCreated,
            format!("no pod of StatefulSet {} exists yet", facts.v.name),
        );
    };
    let name = &p.pod.name;
    match (&p.answer, &p.pod.waiting_reason) {
        (_, Some(w)) if w == "CrashLoopBackOff" => problem(
            Reason::PodCrashLooping,
            format!(
                "pod {name} keeps crashing ({} restarts); see `kubectl logs {name} -n {}`",
                p.pod.restarts, facts.v.namespace
            ),
        ),
        (_, Some(w)) => problem(Reason::PodWaiting, format!("pod {name} is waiting: {w}")),
        (Answer::Unreachable(e), _) => problem(
            Reason::PodUnreachable,
            format!("pod {name} does not answer on its IP: {e}"),
        ),
        _ if p.pod.terminating => {
            problem(Reason::PodTerminating, format!("pod {name} is terminating"))
        }
        _ => problem(
            Reason::PodStarting,
            format!("pod {name} is {} and has no IP yet", p.pod.phase),
        ),
    }
}
