use super::*;
use crate::operator::build::fixtures;
use crate::operator::status::summary::Summary;
use crate::operator::status::testkit::{POD, answered, facts, initialized as init_done, starting};

#[track_caller]
fn check(c: &Cond, status: CondStatus, reason: Reason) {
    assert_eq!((c.status, c.reason), (status, reason), "{c:#?}");
}

fn init_cond(init: InitState, pods: &[crate::operator::observe::PodObservation]) -> Cond {
    let v = fixtures::awskms_role();
    let f = facts(&v, pods, init);
    let s = Summary::of(&f);
    initialized(&f, s.problem.as_ref())
}

#[test]
fn initialized_follows_the_init_state() {
    let up = [answered(true, false, Some((true, "")))];
    let c = init_cond(init_done(), &up);
    check(&c, CondStatus::True, Reason::Initialized);
    assert!(c.message.contains("Secret vault-init"), "{}", c.message);
    let c = init_cond(InitState::Initialized { secret: None }, &up);
    check(&c, CondStatus::True, Reason::Initialized);
    assert_eq!(c.message, "storage is initialized");
    let keys_lost = InitState::KeysLost {
        secret: "vault-init".into(),
    };
    check(
        &init_cond(keys_lost, &up),
        CondStatus::True,
        Reason::InitKeysLost,
    );
    check(
        &init_cond(InitState::Pending, &up),
        CondStatus::False,
        Reason::Initializing,
    );
    let c = init_cond(InitState::Manual, &up);
    check(&c, CondStatus::False, Reason::InitRequired);
    assert!(c.message.contains("against pod vault-0"), "{}", c.message);
    let conflict = InitState::Conflict {
        secret: "vault-init".into(),
    };
    check(
        &init_cond(conflict, &up),
        CondStatus::False,
        Reason::InitSecretConflict,
    );
    let failed = |reason| InitState::Failed {
        reason,
        message: "boom".into(),
    };
    let c = init_cond(failed(InitFailure::InitFailed), &up);
    check(&c, CondStatus::False, Reason::InitFailed);
    assert_eq!(c.message, "auto-init failed: boom");
    let c = init_cond(failed(InitFailure::SecretForbidden), &up);
    check(&c, CondStatus::False, Reason::InitSecretForbidden);
    assert_eq!(c.message, "boom");
}

#[test]
fn initialized_unknown_says_why_no_pod_answered() {
    check(
        &init_cond(InitState::Unknown, &[]),
        CondStatus::Unknown,
        Reason::PodsNotCreated,
    );
    check(
        &init_cond(InitState::Unknown, &[starting()]),
        CondStatus::Unknown,
        Reason::PodStarting,
    );
    let up = [answered(true, false, Some((true, "")))];
    check(
        &init_cond(InitState::Unknown, &up),
        CondStatus::Unknown,
        Reason::NoPodAnswered,
    );
}

fn seal_cond(v: &Validated, pods: &[crate::operator::observe::PodObservation]) -> Cond {
    let f = facts(v, pods, init_done());
    seal_healthy(v, &Summary::of(&f))
}

#[test]
fn seal_healthy_is_true_for_shamir_without_asking() {
    check(
        &seal_cond(&fixtures::shamir(), &[]),
        CondStatus::True,
        Reason::ShamirSeal,
    );
}

#[test]
fn seal_healthy_reports_the_kms_backend() {
    let v = fixtures::awskms_role();
    check(
        &seal_cond(&v, &[]),
        CondStatus::Unknown,
        Reason::PodsNotCreated,
    );
    let c = seal_cond(&v, &[answered(true, false, Some((true, "")))]);
    check(&c, CondStatus::True, Reason::KMSHealthy);
    assert!(c.message.contains("alias/sealkeep-unseal"), "{}", c.message);
    let c = seal_cond(&v, &[answered(true, true, Some((false, "")))]);
    check(&c, CondStatus::Unknown, Reason::KMSCheckPending);
    let c = seal_cond(&v, &[answered(true, true, Some((false, "AccessDenied")))]);
    check(&c, CondStatus::False, Reason::KMSAccessDenied);
    assert_eq!(c.message, format!("pod {POD}: kms said no"));
    // Answered without a backend report: nothing to judge yet.
    check(
        &seal_cond(&v, &[answered(true, false, None)]),
        CondStatus::Unknown,
        Reason::NoPodAnswered,
    );
}

fn unsealed_cond(v: &Validated, pods: &[crate::operator::observe::PodObservation]) -> Cond {
    let f = facts(v, pods, init_done());
    unsealed(&f, &Summary::of(&f))
}

#[test]
fn unsealed_names_what_a_sealed_pod_waits_for() {
    let kms = fixtures::awskms_role();
    check(
        &unsealed_cond(&kms, &[starting()]),
        CondStatus::Unknown,
        Reason::PodStarting,
    );
    check(
        &unsealed_cond(&kms, &[answered(false, true, Some((true, "")))]),
        CondStatus::False,
        Reason::NotInitialized,
    );
    check(
        &unsealed_cond(&kms, &[answered(true, true, Some((true, "")))]),
        CondStatus::False,
        Reason::AutoUnsealing,
    );
    let c = unsealed_cond(&kms, &[answered(true, true, Some((false, "KeyDisabled")))]);
    check(&c, CondStatus::False, Reason::KMSKeyDisabled);
    assert!(
        c.message.contains("retries auto-unseal: kms said no"),
        "{}",
        c.message
    );
    let c = unsealed_cond(&fixtures::shamir(), &[answered(true, true, None)]);
    check(&c, CondStatus::False, Reason::AwaitingUnsealKeys);
    assert!(
        c.message.contains("send 3 of 5 unseal keys"),
        "{}",
        c.message
    );
    assert!(c.message.contains("progress 1/3"), "{}", c.message);
    assert!(
        c.message.contains("the keys are in Secret vault-init"),
        "{}",
        c.message
    );
    let c = unsealed_cond(&kms, &[answered(true, false, Some((true, "")))]);
    check(&c, CondStatus::True, Reason::Unsealed);
    assert_eq!(c.message, "1 of 1 pods unsealed");
}

#[test]
fn awaiting_pods_is_unknown_and_names_the_silent_pods() {
    let up = [answered(false, true, Some((true, "")))];
    let c = init_cond(
        InitState::AwaitingPods {
            pods: vec!["vault-0".into()],
        },
        &up,
    );
    check(&c, CondStatus::Unknown, Reason::AwaitingPods);
    assert!(
        c.message.contains("pod vault-0 has not answered"),
        "{}",
        c.message
    );
    assert!(c.message.contains("Secret vault-init"), "{}", c.message);
    let c = init_cond(
        InitState::AwaitingPods {
            pods: vec!["vault-0".into(), "vault-2".into()],
        },
        &up,
    );
    assert!(
        c.message.contains("pods vault-0, vault-2 have"),
        "{}",
        c.message
    );
}
