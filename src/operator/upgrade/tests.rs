use super::*;

// ---------------------------------------------------------------------------------------------
// Fixtures: a healthy 3-pod cluster at revision "old", the StatefulSet at revision "new".

const OLD: &str = "vault-5d4f";
const NEW: &str = "vault-7c9b";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
}

fn healthy(name: &str, rev: &str, leader: &str) -> Member {
    Member {
        name: name.into(),
        revision: Some(rev.into()),
        terminating: false,
        server: Some(RaftNode {
            unsealed: true,
            leader: name == leader,
            follows: Some(leader.into()),
            applied_index: 100,
            committed_index: 100,
        }),
    }
}

fn voters(n: u32) -> Membership {
    Membership {
        voters: (0..n).map(|i| format!("vault-{i}")).collect(),
        non_voters: Vec::new(),
    }
}

/// `n` healthy pods; `revs[i]` is pod i's revision; `leader` leads.
fn cluster(revs: &[&str], leader: &str) -> Observed {
    let n = u32::try_from(revs.len()).expect("small");
    Observed {
        name: "vault".into(),
        replicas: n,
        update_revision: Some(NEW.into()),
        members: revs
            .iter()
            .enumerate()
            .map(|(i, rev)| healthy(&format!("vault-{i}"), rev, leader))
            .collect(),
        membership: Ok(voters(n)),
        max_lag: 1000,
        stabilization: Duration::from_secs(10),
    }
}

fn member<'a>(o: &'a mut Observed, name: &str) -> &'a mut Member {
    o.members
        .iter_mut()
        .find(|m| m.name == name)
        .expect("member exists")
}

fn remove(o: &mut Observed, name: &str) {
    o.members.retain(|m| m.name != name);
    if let Ok(ms) = &mut o.membership {
        ms.voters.retain(|v| v != name);
    }
}

fn progress(kind: StepKind, pod: &str, index: u32, since: i64) -> Progress {
    Progress {
        revision: NEW.into(),
        step: Step {
            kind,
            pod: pod.into(),
            index,
            of: 3,
        },
        since: t(since),
        acted_at: Some(t(since)),
        healthy_since: None,
    }
}

/// The recorded step after `pod` was replaced, healthy and stable since long before `t(0)`.
fn settled(pod: &str, index: u32) -> Progress {
    Progress {
        healthy_since: Some(t(-600)),
        ..progress(StepKind::ReplaceStandby, pod, index, -900)
    }
}

fn assert_acts(p: &Plan, action: Action, message: &str) {
    assert_eq!(p.phase, Phase::Acting, "{p:?}");
    assert_eq!(p.action, Some(action), "{p:?}");
    assert_eq!(p.message, message);
}

fn assert_no_action(p: &Plan, phase: Phase, needle: &str) {
    assert_eq!(p.phase, phase, "{p:?}");
    assert_eq!(p.action, None, "{p:?}");
    assert!(
        p.message.contains(needle),
        "{:?} lacks {needle:?}",
        p.message
    );
}

// ---------------------------------------------------------------------------------------------
// Order

#[test]
fn nothing_to_do_when_every_pod_runs_the_update_revision() {
    let p = plan(&cluster(&[NEW, NEW, NEW], "vault-0"), None, t(0));
    assert_no_action(&p, Phase::Idle, "every pod runs revision");
    // A StatefulSet whose controller has not caught up: no decision on a stale revision.
    let mut o = cluster(&[OLD, OLD, OLD], "vault-0");
    o.update_revision = None;
    assert_no_action(&plan(&o, None, t(0)), Phase::Idle, "has not observed");
}

#[test]
fn standbys_go_first_highest_ordinal_first() {
    let p = plan(&cluster(&[OLD, OLD, OLD], "vault-0"), None, t(0));
    assert_acts(
        &p,
        Action::DeletePod("vault-2".into()),
        "replacing vault-2 (standby, 1 of 3)",
    );
    let recorded = p.progress.expect("a step is recorded");
    assert_eq!((recorded.since, recorded.acted_at), (t(0), Some(t(0))));
    // The leader is skipped whatever its ordinal.
    let p = plan(&cluster(&[OLD, OLD, OLD], "vault-2"), None, t(0));
    assert_acts(
        &p,
        Action::DeletePod("vault-1".into()),
        "replacing vault-1 (standby, 1 of 3)",
    );
    let p = plan(
        &cluster(&[OLD, OLD, NEW], "vault-0"),
        Some(&settled("vault-2", 1)),
        t(0),
    );
    assert_acts(
        &p,
        Action::DeletePod("vault-1".into()),
        "replacing vault-1 (standby, 2 of 3)",
    );
}

#[test]
fn the_outdated_leader_steps_down_before_it_is_replaced() {
    let p = plan(
        &cluster(&[OLD, NEW, NEW], "vault-0"),
        Some(&settled("vault-1", 2)),
        t(0),
    );
    assert_acts(
        &p,
        Action::StepDown("vault-0".into()),
        "stepping down vault-0 so that an updated voter leads (3 of 3)",
    );
    // Once every pod follows the new leader, the former one is replaced.
    let prev = p.progress.expect("step-down recorded");
    let p = plan(&cluster(&[OLD, NEW, NEW], "vault-2"), Some(&prev), t(3));
    assert_acts(
        &p,
        Action::DeletePod("vault-0".into()),
        "replacing vault-0 (former leader, 3 of 3)",
    );
    assert_eq!(p.progress.expect("recorded").since, t(3));
}

#[test]
fn after_step_down_it_waits_until_the_pods_agree_then_halts() {
    let prev = progress(StepKind::StepDown, "vault-0", 3, 0);
    let mut o = cluster(&[OLD, NEW, NEW], "vault-2");
    member(&mut o, "vault-0")
        .server
        .as_mut()
        .expect("answers")
        .follows = None;
    let p = plan(&o, Some(&prev), t(5));
    assert_no_action(&p, Phase::Waiting, "waiting until every pod agrees");
    assert_eq!(p.progress.as_ref(), Some(&prev));
    // Two pods claiming leadership is no agreement either.
    member(&mut o, "vault-0")
        .server
        .as_mut()
        .expect("answers")
        .leader = true;
    let p = plan(&o, Some(&prev), t(5));
    assert_no_action(&p, Phase::Waiting, "vault-0, vault-2 claim leadership");
    let p = plan(&o, Some(&prev), t(LEADER_CHANGE_TIMEOUT_SECS + 1));
    assert_no_action(&p, Phase::Halted, "upgrade halted");
}

#[test]
fn a_step_down_that_left_the_leader_in_office_is_retried_then_halts() {
    let prev = progress(StepKind::StepDown, "vault-0", 3, 0);
    let o = cluster(&[OLD, NEW, NEW], "vault-0");
    assert_no_action(
        &plan(&o, Some(&prev), t(STEP_DOWN_RETRY_SECS - 1)),
        Phase::Waiting,
        "vault-0 still leads",
    );
    let p = plan(&o, Some(&prev), t(STEP_DOWN_RETRY_SECS));
    assert_eq!(p.action, Some(Action::StepDown("vault-0".into())));
    let again = p.progress.expect("recorded");
    assert_eq!(again.since, t(0), "the step keeps its start");
    assert_eq!(again.acted_at, Some(t(STEP_DOWN_RETRY_SECS)));
    assert_no_action(
        &plan(&o, Some(&again), t(LEADER_CHANGE_TIMEOUT_SECS + 1)),
        Phase::Halted,
        "does not delete a leader",
    );
}

// ---------------------------------------------------------------------------------------------
// Waiting for a replaced pod

#[test]
fn waits_for_the_replaced_pod_to_become_a_caught_up_voter() {
    let prev = progress(StepKind::ReplaceStandby, "vault-2", 1, 0);
    // Deleted, not re-created yet.
    let mut o = cluster(&[OLD, OLD, OLD], "vault-0");
    remove(&mut o, "vault-2");
    let p = plan(&o, Some(&prev), t(2));
    assert_no_action(&p, Phase::Waiting, "vault-2 does not exist yet");
    assert_eq!(p.progress.as_ref(), Some(&prev), "same step, same start");
    // Back at the new revision, unsealed, but a learner.
    let mut o = cluster(&[OLD, OLD, NEW], "vault-0");
    if let Ok(ms) = &mut o.membership {
        ms.voters.retain(|v| v != "vault-2");
        ms.non_voters.push("vault-2".into());
    }
    assert_no_action(
        &plan(&o, Some(&prev), t(20)),
        Phase::Waiting,
        "vault-2 is not a raft voter yet",
    );
    // A voter, but far behind.
    let mut o = cluster(&[OLD, OLD, NEW], "vault-0");
    o.max_lag = 10;
    member(&mut o, "vault-2")
        .server
        .as_mut()
        .expect("answers")
        .applied_index = 5;
    assert_no_action(
        &plan(&o, Some(&prev), t(30)),
        Phase::Waiting,
        "trails the leader by 95 entries",
    );
    // Sealed.
    member(&mut o, "vault-2")
        .server
        .as_mut()
        .expect("answers")
        .unsealed = false;
    assert_no_action(&plan(&o, Some(&prev), t(30)), Phase::Waiting, "is sealed");
    // Healthy: it has to stay healthy for the stabilization time before the next standby.
    let o = cluster(&[OLD, OLD, NEW], "vault-0");
    let p = plan(&o, Some(&prev), t(40));
    assert_no_action(&p, Phase::Waiting, "waiting until vault-2 is stable");
    let prev = p.progress.expect("recorded");
    assert_eq!(prev.healthy_since, Some(t(40)));
    let p = plan(&o, Some(&prev), t(50));
    assert_acts(
        &p,
        Action::DeletePod("vault-1".into()),
        "replacing vault-1 (standby, 2 of 3)",
    );
    let next = p.progress.expect("recorded");
    assert_eq!((next.since, next.healthy_since), (t(50), None));
}

#[test]
fn a_replaced_pod_that_does_not_become_a_voter_halts_the_upgrade() {
    let prev = progress(StepKind::ReplaceStandby, "vault-2", 1, 0);
    let mut o = cluster(&[OLD, OLD, NEW], "vault-0");
    member(&mut o, "vault-2").server = None;
    assert_no_action(
        &plan(&o, Some(&prev), t(NEW_POD_TIMEOUT_SECS)),
        Phase::Waiting,
        "vault-2 does not answer",
    );
    let p = plan(&o, Some(&prev), t(NEW_POD_TIMEOUT_SECS + 1));
    assert_no_action(&p, Phase::Halted, "upgrade halted at replacing vault-2");
    assert!(
        p.message.contains("No other pod is deleted"),
        "{}",
        p.message
    );
    // It stays halted, and resumes by itself once the pod is healthy (and stable).
    let p = plan(&o, p.progress.as_ref(), t(NEW_POD_TIMEOUT_SECS + 100));
    assert_eq!(p.phase, Phase::Halted);
    let o = cluster(&[OLD, OLD, NEW], "vault-0");
    let p = plan(&o, p.progress.as_ref(), t(NEW_POD_TIMEOUT_SECS + 200));
    assert_no_action(&p, Phase::Waiting, "waiting until vault-2 is stable");
    let p = plan(&o, p.progress.as_ref(), t(NEW_POD_TIMEOUT_SECS + 210));
    assert_eq!(p.action, Some(Action::DeletePod("vault-1".into())));
}

#[test]
fn the_former_leaders_replacement_keeps_its_label_until_it_is_a_voter() {
    let prev = progress(StepKind::ReplaceLeader, "vault-0", 3, 0);
    let mut o = cluster(&[NEW, NEW, NEW], "vault-2");
    member(&mut o, "vault-0").terminating = true;
    let p = plan(&o, Some(&prev), t(1));
    assert_no_action(
        &p,
        Phase::Waiting,
        "replacing vault-0 (former leader, 3 of 3)",
    );
    // The upgrade is over once the former leader's replacement is stable too (a next
    // template change would otherwise replace a pod at once).
    let o = cluster(&[NEW, NEW, NEW], "vault-2");
    let p = plan(&o, Some(&prev), t(30));
    assert_no_action(
        &p,
        Phase::Waiting,
        "replacing vault-0 (former leader, 3 of 3): waiting until vault-0 is stable",
    );
    let p = plan(&o, p.progress.as_ref(), t(40));
    assert_no_action(&p, Phase::Idle, "every pod runs revision");
}

// ---------------------------------------------------------------------------------------------
// Stability: a replaced pod must have been a healthy voter for the stabilization time

/// The recorded step after vault-2 (a standby) was replaced at `t(0)`, first seen healthy at
/// `healthy` (`None`: not yet).
fn replaced_vault_2(healthy: Option<i64>) -> Progress {
    Progress {
        healthy_since: healthy.map(t),
        ..progress(StepKind::ReplaceStandby, "vault-2", 1, 0)
    }
}

#[test]
fn a_replaced_pod_healthy_for_less_than_the_stabilization_time_holds_the_next_step() {
    // vault-2 came back and has been a healthy voter for 2 s (first seen at t(20)).
    let o = cluster(&[OLD, OLD, NEW], "vault-0");
    let p = plan(&o, Some(&replaced_vault_2(Some(20))), t(22));
    assert_eq!(p.phase, Phase::Waiting, "{p:?}");
    assert_eq!(
        p.action, None,
        "vault-1 is not deleted 2 s after vault-2 came back"
    );
    assert_eq!(
        p.message,
        "replacing vault-2 (standby, 1 of 3): waiting until vault-2 is stable: an unsealed, caught-up voter for 2 s, 10 s required (autopilot server stabilization time)"
    );
    let kept = p.progress.expect("the step stays recorded");
    assert_eq!(
        kept,
        replaced_vault_2(Some(20)),
        "same step, start and clock"
    );
    // 9 s: still waiting. 10 s and 11 s: the next standby.
    assert_no_action(
        &plan(&o, Some(&kept), t(29)),
        Phase::Waiting,
        "for 9 s, 10 s required",
    );
    for now in [30, 31] {
        assert_acts(
            &plan(&o, Some(&kept), t(now)),
            Action::DeletePod("vault-1".into()),
            "replacing vault-1 (standby, 2 of 3)",
        );
    }
}

#[test]
fn the_first_healthy_observation_starts_the_clock_and_an_unhealthy_one_resets_it() {
    let mut o = cluster(&[OLD, OLD, NEW], "vault-0");
    // First seen healthy at t(20): recorded, nothing deleted.
    let p = plan(&o, Some(&replaced_vault_2(None)), t(20));
    assert_no_action(&p, Phase::Waiting, "for 0 s, 10 s required");
    let seen = p.progress.expect("recorded");
    assert_eq!(seen.healthy_since, Some(t(20)));
    // Sealed again at t(25): the clock is cleared, the step (and its timeout) kept.
    member(&mut o, "vault-2")
        .server
        .as_mut()
        .expect("answers")
        .unsealed = false;
    let p = plan(&o, Some(&seen), t(25));
    assert_no_action(&p, Phase::Waiting, "vault-2 is sealed");
    let reset = p.progress.expect("recorded");
    assert_eq!((reset.since, reset.healthy_since), (t(0), None));
    // Healthy again at t(31): 10 s after it was first seen healthy, but only just now again.
    let o = cluster(&[OLD, OLD, NEW], "vault-0");
    let p = plan(&o, Some(&reset), t(31));
    assert_no_action(&p, Phase::Waiting, "for 0 s, 10 s required");
    assert_eq!(p.progress.expect("recorded").healthy_since, Some(t(31)));
}

#[test]
fn the_stabilization_time_is_the_configured_one_and_guards_the_step_down() {
    // spec.raft.autopilot.serverStabilizationTime: 30s (rounded up to whole seconds).
    let mut o = cluster(&[OLD, NEW, NEW], "vault-0");
    o.stabilization = Duration::from_millis(29_500);
    let prev = Progress {
        healthy_since: Some(t(10)),
        ..progress(StepKind::ReplaceStandby, "vault-1", 2, 0)
    };
    assert_no_action(
        &plan(&o, Some(&prev), t(21)),
        Phase::Waiting,
        "waiting until vault-1 is stable: an unsealed, caught-up voter for 11 s, 30 s required",
    );
    // Leadership moves to an updated voter only once the last replaced standby is stable.
    assert_acts(
        &plan(&o, Some(&prev), t(40)),
        Action::StepDown("vault-0".into()),
        "stepping down vault-0 so that an updated voter leads (3 of 3)",
    );
}

#[test]
fn a_new_template_does_not_skip_the_stability_wait() {
    // vault-2 was replaced to NEW and is settling when the template changes again.
    let mut o = cluster(&[OLD, OLD, NEW], "vault-0");
    o.update_revision = Some("vault-99aa".into());
    let p = plan(&o, Some(&replaced_vault_2(Some(20))), t(25));
    assert_no_action(&p, Phase::Waiting, "waiting until vault-2 is stable");
    let p = plan(&o, p.progress.as_ref(), t(30));
    assert_acts(
        &p,
        Action::DeletePod("vault-2".into()),
        "replacing vault-2 (standby, 1 of 3)",
    );
    assert_eq!(p.progress.expect("recorded").revision, "vault-99aa");
}

#[test]
fn the_stability_wait_names_other_unhealthy_pods_and_ignores_the_deleted_old_pod() {
    // While vault-2 settles, vault-1 stops answering: both are said.
    let mut o = cluster(&[OLD, OLD, NEW], "vault-0");
    member(&mut o, "vault-1").server = None;
    assert_no_action(
        &plan(&o, Some(&replaced_vault_2(Some(20))), t(22)),
        Phase::Waiting,
        "waiting until vault-2 is stable: an unsealed, caught-up voter for 2 s, 10 s required (autopilot server stabilization time); also pod vault-1 does not answer",
    );
    // Right after the deletion the old vault-2 (old revision) may still be listed, healthy:
    // that is not the replaced pod, and its health starts no clock.
    let o = cluster(&[OLD, OLD, OLD], "vault-0");
    let p = plan(&o, Some(&replaced_vault_2(None)), t(1));
    assert_ne!(p.phase, Phase::Waiting, "{p:?}");
    assert!(p.progress.is_none_or(|p| p.healthy_since.is_none()));
    // One replica: there is no other pod to protect, so no wait.
    let o = cluster(&[NEW], "vault-0");
    let prev = Progress {
        step: Step {
            kind: StepKind::ReplacePod,
            pod: "vault-0".into(),
            index: 1,
            of: 1,
        },
        ..replaced_vault_2(None)
    };
    assert_eq!(plan(&o, Some(&prev), t(1)).phase, Phase::Idle);
}

#[test]
fn without_a_recorded_step_the_clock_starts_before_any_action() {
    // The status lost the step (or a blocked precondition cleared it) while vault-1 and vault-2
    // run the new revision: how long they have been healthy is unknown, so the last replaced
    // one (the lowest ordinal) gets the full stabilization time from now.
    let o = cluster(&[OLD, NEW, NEW], "vault-0");
    let p = plan(&o, None, t(100));
    assert_no_action(
        &p,
        Phase::Waiting,
        "replacing vault-1 (standby, 2 of 3): waiting until vault-1 is stable: an unsealed, caught-up voter for 0 s, 10 s required (autopilot server stabilization time); when it became one is not recorded, so the operator counts from now",
    );
    let recorded = p.progress.expect("recorded");
    assert_eq!(recorded.healthy_since, Some(t(100)));
    assert_no_action(
        &plan(&o, Some(&recorded), t(105)),
        Phase::Waiting,
        "for 5 s, 10 s required",
    );
    assert_acts(
        &plan(&o, Some(&recorded), t(110)),
        Action::StepDown("vault-0".into()),
        "stepping down vault-0 so that an updated voter leads (3 of 3)",
    );
    // The first step of an upgrade has no updated pod to wait for.
    assert_eq!(
        plan(&cluster(&[OLD, OLD, OLD], "vault-0"), None, t(0)).action,
        Some(Action::DeletePod("vault-2".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// Preconditions

#[test]
fn never_deletes_a_pod_while_another_voter_is_unhealthy() {
    let mut o = cluster(&[OLD, OLD, OLD], "vault-0");
    member(&mut o, "vault-1").server = None;
    assert_no_action(
        &plan(&o, None, t(0)),
        Phase::Blocked,
        "not replacing any pod while a voter is unhealthy: pod vault-1 does not answer",
    );
    // Even the unhealthy pod itself is not replaced: it would be a second voter down
    // (and it may be the only copy of recent entries).
    let mut o = cluster(&[OLD, OLD, OLD], "vault-0");
    member(&mut o, "vault-2")
        .server
        .as_mut()
        .expect("answers")
        .unsealed = false;
    assert_eq!(plan(&o, None, t(0)).action, None);
    // While a replaced pod is still joining, another unhealthy voter is named too.
    let prev = progress(StepKind::ReplaceStandby, "vault-2", 1, 0);
    let mut o = cluster(&[OLD, OLD, NEW], "vault-0");
    member(&mut o, "vault-2").server = None;
    member(&mut o, "vault-1").server = None;
    let p = plan(&o, Some(&prev), t(5));
    assert_no_action(&p, Phase::Waiting, "also pod vault-1 does not answer");
}

#[test]
fn a_pending_membership_change_blocks_the_upgrade() {
    let mut o = cluster(&[OLD, OLD, OLD], "vault-0");
    o.membership = Err("no token for sys/storage/raft/configuration".into());
    assert_no_action(
        &plan(&o, None, t(0)),
        Phase::Blocked,
        "the raft membership is unknown: no token for sys/storage/raft/configuration",
    );
    // Mid-upgrade, losing sight of the configuration keeps the recorded step and never
    // halts on it: the pods may be fine, the operator just cannot tell.
    let prev = progress(StepKind::ReplaceStandby, "vault-2", 1, 0);
    let mut o = cluster(&[OLD, OLD, NEW], "vault-0");
    o.membership = Err("no token".into());
    let p = plan(&o, Some(&prev), t(NEW_POD_TIMEOUT_SECS + 60));
    assert_no_action(
        &p,
        Phase::Blocked,
        "the raft membership is unknown: no token",
    );
    assert_eq!(p.progress, Some(prev));
    // A stale voter (a removed server still listed) leaves failure tolerance at 0 for 3 pods.
    let mut o = cluster(&[OLD, OLD, OLD], "vault-0");
    if let Ok(ms) = &mut o.membership {
        ms.voters.push("vault-3".into());
    }
    assert_no_action(&plan(&o, None, t(0)), Phase::Blocked, "voters vault-3");
    let mut o = cluster(&[OLD, OLD, OLD], "vault-0");
    if let Ok(ms) = &mut o.membership {
        ms.non_voters.push("vault-3".into());
    }
    assert_no_action(
        &plan(&o, None, t(0)),
        Phase::Blocked,
        "a membership change is pending: vault-3",
    );
    // A pod beyond the desired replicas: a scale-down is not finished.
    let mut o = cluster(&[OLD, OLD, OLD, OLD, OLD], "vault-0");
    o.replicas = 3;
    if let Ok(ms) = &mut o.membership {
        ms.voters.truncate(3);
    }
    assert_no_action(
        &plan(&o, None, t(0)),
        Phase::Blocked,
        "pods vault-3, vault-4",
    );
}

#[test]
fn disagreement_on_the_leader_blocks_before_any_deletion() {
    let mut o = cluster(&[OLD, OLD, OLD], "vault-0");
    member(&mut o, "vault-1")
        .server
        .as_mut()
        .expect("answers")
        .follows = Some("vault-2".into());
    assert_no_action(&plan(&o, None, t(0)), Phase::Blocked, "do not agree");
    let mut o = cluster(&[OLD, OLD, OLD], "nobody");
    assert_no_action(
        &plan(&o, None, t(0)),
        Phase::Blocked,
        "no pod is the leader",
    );
    member(&mut o, "vault-1")
        .server
        .as_mut()
        .expect("answers")
        .leader = true;
    member(&mut o, "vault-2")
        .server
        .as_mut()
        .expect("answers")
        .leader = true;
    assert_no_action(
        &plan(&o, None, t(0)),
        Phase::Blocked,
        "vault-1, vault-2 claim leadership",
    );
}

#[test]
fn an_unhealthy_pod_without_an_upgrade_is_not_an_upgrade() {
    let mut o = cluster(&[NEW, NEW, NEW], "vault-0");
    member(&mut o, "vault-1").server = None;
    assert_eq!(plan(&o, None, t(0)).phase, Phase::Idle);
}

// ---------------------------------------------------------------------------------------------
// One replica

#[test]
fn a_single_pod_is_simply_replaced() {
    let mut o = cluster(&[OLD], "vault-0");
    // Even sealed: there is no other pod to keep serving, and the new revision may be the fix.
    member(&mut o, "vault-0")
        .server
        .as_mut()
        .expect("answers")
        .unsealed = false;
    o.membership = Err("no token".into());
    let p = plan(&o, None, t(0));
    assert_acts(
        &p,
        Action::DeletePod("vault-0".into()),
        "replacing vault-0 (the only pod)",
    );
    let prev = p.progress.expect("recorded");
    let mut o = cluster(&[NEW], "vault-0");
    o.membership = Err("no token".into());
    member(&mut o, "vault-0")
        .server
        .as_mut()
        .expect("answers")
        .unsealed = false;
    assert_no_action(&plan(&o, Some(&prev), t(30)), Phase::Waiting, "is sealed");
    assert_no_action(
        &plan(&o, Some(&prev), t(NEW_POD_TIMEOUT_SECS + 1)),
        Phase::Halted,
        "upgrade halted",
    );
    let mut o = cluster(&[NEW], "vault-0");
    o.membership = Err("no token".into());
    assert_eq!(plan(&o, Some(&prev), t(60)).phase, Phase::Idle);
}

// ---------------------------------------------------------------------------------------------
// A whole upgrade, simulated, with and without operator restarts

/// A simulated 3- or 5-pod cluster: deleting a pod brings it back at the new revision, healthy
/// after `join_ticks` ticks; step-down moves leadership to the highest updated voter.
struct Sim {
    o: Observed,
    joining: Vec<(String, u32)>,
    leader_changes: u32,
    /// The simulated time (seconds after `t(0)`).
    now: i64,
    /// When each replaced pod was first observable back as a healthy voter.
    back_at: Vec<(String, i64)>,
}

impl Sim {
    fn new(n: usize) -> Self {
        Self {
            o: cluster(&vec![OLD; n], "vault-0"),
            joining: Vec::new(),
            leader_changes: 0,
            now: 0,
            back_at: Vec::new(),
        }
    }

    fn leader(&self) -> String {
        self.o
            .members
            .iter()
            .find(|m| m.server.as_ref().is_some_and(|s| s.leader))
            .map(|m| m.name.clone())
            .expect("a leader")
    }

    fn apply(&mut self, a: &Action) {
        // Issue 14, step 5: every replaced pod has been a healthy voter for the stabilization
        // time before the next pod is deleted or leadership moves.
        for (pod, at) in &self.back_at {
            assert!(
                self.now - at >= 10,
                "{a:?} at {} s, {} s after {pod} came back",
                self.now,
                self.now - at
            );
        }
        match a {
            Action::DeletePod(pod) => {
                assert_ne!(*pod, self.leader(), "never deletes the leader");
                remove(&mut self.o, pod);
                self.joining.push((pod.clone(), 2));
            }
            Action::StepDown(pod) => {
                let to = self
                    .o
                    .members
                    .iter()
                    .filter(|m| m.revision.as_deref() == Some(NEW))
                    .map(|m| m.name.clone())
                    .max()
                    .expect("an updated voter");
                assert_ne!(*pod, to);
                self.set_leader(&to);
            }
        }
    }

    fn set_leader(&mut self, to: &str) {
        self.leader_changes += 1;
        for m in &mut self.o.members {
            if let Some(s) = m.server.as_mut() {
                s.leader = m.name == to;
                s.follows = Some(to.into());
            }
        }
    }

    /// Time passes: joining pods come back, then become voters.
    fn tick(&mut self) {
        let leader = self.leader();
        let mut back = Vec::new();
        for (pod, left) in &mut self.joining {
            *left -= 1;
            if *left == 0 {
                back.push(pod.clone());
            }
        }
        self.joining.retain(|(_, left)| *left > 0);
        for pod in back {
            // Observable from the next round on.
            self.back_at.retain(|(p, _)| *p != pod);
            self.back_at.push((pod.clone(), self.now + ROUND_SECS));
            self.o.members.push(healthy(&pod, NEW, &leader));
            self.o.members.sort_by(|a, b| a.name.cmp(&b.name));
            if let Ok(ms) = &mut self.o.membership {
                ms.voters.push(pod);
            }
        }
    }

    /// Runs the planner to the end; `restart(i)` drops the recorded step before round `i`.
    fn run(self, restart: impl Fn(usize) -> bool) -> (Vec<Action>, Vec<String>, u32) {
        let (actions, steps, changes, finished) = self.run_rounds(100, restart);
        assert!(finished, "the upgrade did not finish: {actions:?}");
        (actions, steps, changes)
    }

    /// Runs the planner for at most `rounds` rounds of [`ROUND_SECS`]; the last value says
    /// whether the upgrade finished.
    fn run_rounds(
        mut self,
        rounds: usize,
        restart: impl Fn(usize) -> bool,
    ) -> (Vec<Action>, Vec<String>, u32, bool) {
        let (mut actions, mut steps) = (Vec::new(), Vec::new());
        let mut prev: Option<Progress> = None;
        for round in 0..rounds {
            if restart(round) {
                prev = None;
            }
            self.now = i64::try_from(round).expect("small") * ROUND_SECS;
            let p = plan(&self.o, prev.as_ref(), t(self.now));
            assert_ne!(p.phase, Phase::Halted, "{p:?}");
            assert_ne!(p.phase, Phase::Blocked, "{p:?}");
            if p.phase == Phase::Idle {
                return (actions, steps, self.leader_changes, true);
            }
            if let Some(a) = &p.action {
                self.apply(a);
                actions.push(a.clone());
                steps.push(p.message.clone());
            }
            prev = p.progress;
            self.tick();
        }
        (actions, steps, self.leader_changes, false)
    }
}

/// The simulated time between two reconciles (the operator requeues every 5 s while upgrading).
const ROUND_SECS: i64 = 5;

#[test]
fn a_three_pod_upgrade_replaces_standbys_then_the_leader_with_one_leadership_change() {
    let (actions, steps, changes) = Sim::new(3).run(|_| false);
    assert_eq!(
        actions,
        vec![
            Action::DeletePod("vault-2".into()),
            Action::DeletePod("vault-1".into()),
            Action::StepDown("vault-0".into()),
            Action::DeletePod("vault-0".into()),
        ]
    );
    assert_eq!(
        steps,
        vec![
            "replacing vault-2 (standby, 1 of 3)",
            "replacing vault-1 (standby, 2 of 3)",
            "stepping down vault-0 so that an updated voter leads (3 of 3)",
            "replacing vault-0 (former leader, 3 of 3)",
        ]
    );
    assert_eq!(changes, 1);
}

#[test]
fn a_five_pod_upgrade_follows_the_same_order() {
    let (actions, _, changes) = Sim::new(5).run(|_| false);
    let deleted: Vec<&Action> = actions.iter().collect();
    assert_eq!(
        deleted,
        [
            &Action::DeletePod("vault-4".into()),
            &Action::DeletePod("vault-3".into()),
            &Action::DeletePod("vault-2".into()),
            &Action::DeletePod("vault-1".into()),
            &Action::StepDown("vault-0".into()),
            &Action::DeletePod("vault-0".into()),
        ]
    );
    assert_eq!(changes, 1);
}

#[test]
fn an_operator_restart_at_any_point_resumes_the_same_sequence() {
    let (expected, _, _) = Sim::new(3).run(|_| false);
    for at in 0..20 {
        let (actions, _, changes) = Sim::new(3).run(|round| round == at);
        assert_eq!(actions, expected, "restart before round {at}");
        assert_eq!(changes, 1, "restart before round {at}");
    }
    // The record lost on every round: nothing shows that a replaced pod has been stable, so
    // the planner waits rather than deleting the next pod.
    let (actions, _, _, finished) = Sim::new(3).run_rounds(100, |_| true);
    assert!(!finished);
    assert_eq!(actions, expected[..1]);
    // Lost on every third round: the clock restarts, and the same sequence finishes.
    let (actions, _, _) = Sim::new(3).run(|round| round % 3 == 0);
    assert_eq!(actions, expected);
}
