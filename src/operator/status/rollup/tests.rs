use super::*;
use crate::operator::build::fixtures;
use crate::operator::status::conditions::{self, CondStatus};
use crate::operator::status::testkit::{answered, facts, initialized as init_done, starting};

#[track_caller]
fn check(c: &Cond, status: CondStatus, reason: Reason) {
    assert_eq!((c.status, c.reason), (status, reason), "{c:#?}");
}

fn cond(type_: &'static str, ok: bool, reason: Reason) -> Cond {
    Cond::new(type_, ok, reason, format!("{reason} message"))
}

#[test]
fn all_ready_needs_every_pod_ready_unsealed_and_initialized() {
    let v = fixtures::awskms_role();
    let up = [answered(true, false, Some((true, "")))];
    let f = facts(&v, &up, init_done());
    let s = Summary::of(&f);
    let init_ok = cond("Initialized", true, Reason::Initialized);
    assert!(all_ready(&v, &s, &init_ok));
    assert!(!all_ready(
        &v,
        &s,
        &cond("Initialized", false, Reason::Initializing)
    ));
    let sealed = [answered(true, true, Some((true, "")))];
    let f = facts(&v, &sealed, init_done());
    assert!(!all_ready(&v, &Summary::of(&f), &init_ok));
    let f = facts(&v, &[], init_done());
    assert!(!all_ready(&v, &Summary::of(&f), &init_ok));
}

#[test]
fn ready_takes_the_first_condition_that_is_not_true() {
    let v = fixtures::awskms_role();
    let up = [answered(true, false, Some((true, "")))];
    let f = facts(&v, &up, init_done());
    let s = Summary::of(&f);
    let c = ready(&v, &s, true, [&cond("a", true, Reason::KMSHealthy); 3]);
    check(&c, CondStatus::True, Reason::Ready);
    assert_eq!(c.message, "1/1 pods ready and unsealed");
    let seal = cond("SealHealthy", false, Reason::KMSAccessDenied);
    let init = cond("Initialized", false, Reason::InitFailed);
    let c = ready(&v, &s, false, [&seal, &init, &init]);
    check(&c, CondStatus::False, Reason::KMSAccessDenied);
    assert_eq!(c.message, seal.message);
    let ok = cond("x", true, Reason::Unsealed);
    let c = ready(&v, &s, false, [&ok, &init, &ok]);
    check(&c, CondStatus::False, Reason::InitFailed);
    let c = ready(&v, &s, false, [&ok, &ok, &ok]);
    check(&c, CondStatus::False, Reason::PodsNotReady);
    assert_eq!(c.message, "1/1 pods pass their readiness probe");
}

#[test]
fn progressing_is_true_only_for_what_resolves_itself() {
    let v = fixtures::awskms_role();
    let stable_unsealed = cond("Unsealed", true, Reason::Unsealed);
    let up = [answered(true, false, Some((true, "")))];
    let mut f = facts(&v, &up, init_done());
    f.rolling = true;
    let s = Summary::of(&f);
    check(
        &progressing(&f, &s, true, &stable_unsealed),
        CondStatus::True,
        Reason::RollingOut,
    );
    let f = facts(&v, &up, InitState::Pending);
    check(
        &progressing(&f, &s, false, &stable_unsealed),
        CondStatus::True,
        Reason::Initializing,
    );
    let pods = [starting()];
    let f = facts(&v, &pods, InitState::Unknown);
    let s = Summary::of(&f);
    check(
        &progressing(&f, &s, false, &stable_unsealed),
        CondStatus::True,
        Reason::PodsStarting,
    );
    let sealed = [answered(true, true, Some((true, "")))];
    let f = facts(&v, &sealed, init_done());
    let s = Summary::of(&f);
    let unsealing = conditions::unsealed(&f, &s);
    let c = progressing(&f, &s, false, &unsealing);
    check(&c, CondStatus::True, Reason::AutoUnsealing);
    assert_eq!(c.message, unsealing.message);
    let f = facts(&v, &up, init_done());
    let s = Summary::of(&f);
    check(
        &progressing(&f, &s, true, &stable_unsealed),
        CondStatus::False,
        Reason::Stable,
    );
}

#[test]
fn degraded_orders_apply_seal_init_then_pods() {
    let v = fixtures::awskms_role();
    let up = [answered(true, false, Some((true, "")))];
    let seal_ok = cond("SealHealthy", true, Reason::KMSHealthy);
    let seal_bad = cond("SealHealthy", false, Reason::KMSKeyNotFound);
    let init_ok = cond("Initialized", true, Reason::Initialized);
    let mut f = facts(&v, &up, init_done());
    f.apply_error = Some("quota exceeded".into());
    let s = Summary::of(&f);
    let c = degraded(&f, &s, &seal_bad, &init_ok);
    check(&c, CondStatus::True, Reason::ApplyFailed);
    assert!(c.message.contains("quota exceeded"), "{}", c.message);
    f.apply_error = None;
    check(
        &degraded(&f, &s, &seal_bad, &init_ok),
        CondStatus::True,
        Reason::KMSKeyNotFound,
    );
    // Unknown seal health is not a failure.
    let seal_unknown = Cond::unknown("SealHealthy", Reason::KMSCheckPending, String::new());
    check(
        &degraded(&f, &s, &seal_unknown, &init_ok),
        CondStatus::False,
        Reason::AsExpected,
    );
    let f = facts(
        &v,
        &up,
        InitState::Conflict {
            secret: "vault-init".into(),
        },
    );
    let conflict = cond("Initialized", false, Reason::InitSecretConflict);
    check(
        &degraded(&f, &s, &seal_ok, &conflict),
        CondStatus::True,
        Reason::InitSecretConflict,
    );
    let mut crashing = starting();
    crashing.pod.waiting_reason = Some("CrashLoopBackOff".into());
    let pods = [crashing];
    let f = facts(&v, &pods, InitState::Unknown);
    let s = Summary::of(&f);
    check(
        &degraded(&f, &s, &seal_ok, &init_ok),
        CondStatus::True,
        Reason::PodCrashLooping,
    );
    let pods = [starting()];
    let f = facts(&v, &pods, InitState::Unknown);
    let s = Summary::of(&f);
    check(
        &degraded(&f, &s, &seal_ok, &init_ok),
        CondStatus::False,
        Reason::AsExpected,
    );
}
