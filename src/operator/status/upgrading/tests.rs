use super::*;
use crate::operator::build::fixtures;
use crate::operator::status::testkit::{answered, facts, initialized as init_done};
use crate::operator::status::{
    DEGRADED, PROGRESSING, REQUEUE_UPGRADING, UPGRADING, compute, requeue_after,
};
use crate::operator::upgrade::Plan;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
}

fn progress(kind: StepKind, pod: &str, acted: Option<i64>) -> Progress {
    Progress {
        revision: "vault-7c9b".into(),
        step: Step {
            kind,
            pod: pod.into(),
            index: 1,
            of: 3,
        },
        since: t(0),
        acted_at: acted.map(t),
        healthy_since: None,
    }
}

fn plan(phase: Phase, action: Option<Action>, progress: Option<Progress>) -> Plan {
    Plan {
        phase,
        progress,
        action,
        message: format!("{phase:?} message"),
    }
}

fn facts_of(p: &Plan) -> UpgradeFacts<'_> {
    UpgradeFacts {
        plan: p,
        revision_known: true,
        act_error: None,
    }
}

#[track_caller]
fn check(c: &Cond, status: super::super::CondStatus, reason: Reason) {
    assert_eq!((c.status, c.reason), (status, reason), "{c:#?}");
    assert_eq!(c.type_, UPGRADING);
}

#[test]
fn upgrading_says_which_step_and_why() {
    use super::super::CondStatus::{False, True, Unknown};
    let replace = progress(StepKind::ReplaceStandby, "vault-2", Some(0));
    let cases = [
        (plan(Phase::Idle, None, None), False, Reason::UpToDate),
        (
            plan(
                Phase::Acting,
                Some(Action::DeletePod("vault-2".into())),
                Some(replace.clone()),
            ),
            True,
            Reason::ReplacingPod,
        ),
        (
            plan(
                Phase::Acting,
                Some(Action::StepDown("vault-0".into())),
                Some(progress(StepKind::StepDown, "vault-0", Some(0))),
            ),
            True,
            Reason::SteppingDown,
        ),
        (
            plan(Phase::Waiting, None, Some(replace.clone())),
            True,
            Reason::AwaitingUpgradedPod,
        ),
        (
            plan(Phase::Blocked, None, None),
            True,
            Reason::UpgradeBlocked,
        ),
        (
            plan(Phase::Halted, None, Some(replace)),
            True,
            Reason::UpgradeHalted,
        ),
    ];
    for (p, status, reason) in &cases {
        let c = upgrading(&facts_of(p));
        check(&c, *status, *reason);
        assert_eq!(c.message, p.message);
    }
    let idle = plan(Phase::Idle, None, None);
    let unknown = UpgradeFacts {
        revision_known: false,
        ..facts_of(&idle)
    };
    check(&upgrading(&unknown), Unknown, Reason::RevisionPending);
    let acting = plan(
        Phase::Acting,
        Some(Action::StepDown("vault-0".into())),
        None,
    );
    let failed = UpgradeFacts {
        act_error: Some("sys/step-down on vault-0 failed: 403".into()),
        ..facts_of(&acting)
    };
    let c = upgrading(&failed);
    check(&c, True, Reason::UpgradeActionFailed);
    assert!(
        c.message.contains("sys/step-down on vault-0 failed: 403"),
        "{c:?}"
    );
}

#[test]
fn the_recorded_step_reads_back_unchanged() {
    for kind in [
        StepKind::ReplaceStandby,
        StepKind::StepDown,
        StepKind::ReplaceLeader,
        StepKind::ReplacePod,
    ] {
        for (acted, healthy) in [(None, None), (Some(42), None), (Some(42), Some(57))] {
            let p = Progress {
                healthy_since: healthy.map(t),
                ..progress(kind, "vault-1", acted)
            };
            let status = SecretServerStatus {
                upgrade: Some(record(&p)),
                ..SecretServerStatus::default()
            };
            // Through JSON, as the API server stores it.
            let json = serde_json::to_value(&status).expect("serialise");
            assert_eq!(json["upgrade"]["step"], kind.as_str());
            // Absent until the replaced pod is seen healthy (what `kubectl get -o yaml` shows).
            assert_eq!(
                json["upgrade"].get("healthySince").is_some(),
                healthy.is_some(),
                "{json}"
            );
            let back: SecretServerStatus = serde_json::from_value(json).expect("deserialise");
            assert_eq!(recorded(Some(&back)), Some(p));
        }
    }
    assert_eq!(recorded(None), None);
    assert_eq!(recorded(Some(&SecretServerStatus::default())), None);
    let mut odd = record(&progress(StepKind::StepDown, "vault-0", None));
    odd.step = "Teleport".into();
    let status = SecretServerStatus {
        upgrade: Some(odd),
        ..SecretServerStatus::default()
    };
    assert_eq!(recorded(Some(&status)), None);
}

#[test]
fn whole_seconds_drops_the_fraction() {
    let t = Timestamp::from_millisecond(1_800_000_000_750).expect("ts");
    assert_eq!(whole_seconds(t).as_second(), 1_800_000_000);
    assert_eq!(whole_seconds(t).subsec_nanosecond(), 0);
}

fn raft1() -> crate::operator::validate::Validated {
    fixtures::validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  storage:\n    type: raft\n  seal:\n    awsKms:\n      keyId: alias/k\n      region: eu-west-1\n",
    )
}

#[test]
fn a_moving_upgrade_is_progressing_and_recorded_in_status() {
    let v = raft1();
    let pods = [answered(true, false, Some((true, "")))];
    let p = plan(
        Phase::Acting,
        Some(Action::DeletePod("vault-0".into())),
        Some(progress(StepKind::ReplacePod, "vault-0", Some(0))),
    );
    let mut f = facts(&v, &pods, init_done());
    f.upgrade = Some(facts_of(&p));
    let s = compute(&f, None, t(0));
    let cond = |type_: &str| {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("{type_} in {s:#?}"))
    };
    assert_eq!(cond(UPGRADING).reason, "ReplacingPod");
    assert_eq!(cond(PROGRESSING).status, "True");
    assert_eq!(cond(PROGRESSING).reason, "RollingOut");
    assert_eq!(cond(PROGRESSING).message, p.message);
    assert_eq!(cond(DEGRADED).status, "False");
    let u = s.upgrade.as_ref().expect("status.upgrade");
    assert_eq!((u.step.as_str(), u.pod.as_str()), ("ReplacePod", "vault-0"));
    assert_eq!(requeue_after(&s), REQUEUE_UPGRADING);
}

#[test]
fn a_halted_upgrade_is_degraded_and_not_progressing() {
    let v = raft1();
    let pods = [answered(true, false, Some((true, "")))];
    let p = plan(
        Phase::Halted,
        None,
        Some(progress(StepKind::ReplacePod, "vault-0", Some(0))),
    );
    let mut f = facts(&v, &pods, init_done());
    f.upgrade = Some(facts_of(&p));
    let s = compute(&f, None, t(700));
    let cond = |type_: &str| {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("cond")
    };
    assert_eq!(cond(DEGRADED).status, "True");
    assert_eq!(cond(DEGRADED).reason, "UpgradeHalted");
    assert_eq!(cond(DEGRADED).message, p.message);
    assert_eq!(cond(PROGRESSING).status, "False");
    assert_eq!(cond(UPGRADING).reason, "UpgradeHalted");
}

#[test]
fn a_file_server_has_no_upgrading_condition_nor_upgrade_status() {
    let v = fixtures::awskms_role();
    let pods = [answered(true, false, Some((true, "")))];
    let s = compute(&facts(&v, &pods, init_done()), None, t(0));
    assert!(s.conditions.iter().all(|c| c.type_ != UPGRADING), "{s:#?}");
    assert_eq!(s.conditions.len(), 6);
    assert_eq!(s.upgrade, None);
}
