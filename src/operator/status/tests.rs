use super::*;

use kube::Resource;

use crate::api_client::{Health, SealBackendStatus, SealStatus};
use crate::operator::crd::SecretServer;
use crate::operator::observe::PodView;
use crate::operator::validate::validate;

// ---------------------------------------------------------------------------------------------
// Fixtures (local, so these tests do not depend on the builders' fixture module).

const KEY_ID: &str = "alias/sealkeep-unseal";

fn validated(yaml: &str) -> Validated {
    let mut ss: SecretServer = serde_yaml::from_str(yaml).expect("fixture parses");
    let meta = ss.meta_mut();
    meta.namespace = Some("secrets".into());
    meta.uid = Some("3f1f6c1e-8d2a-4d4e-9a55-0c7f0f1e2a01".into());
    meta.generation = Some(3);
    validate(&ss, Some("ghcr.io/sealkeep/sealkeep:test")).expect("fixture validates")
}

fn awskms() -> Validated {
    validated(&format!(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  seal:\n    awsKms:\n      keyId: {KEY_ID}\n      region: eu-west-1\n"
    ))
}

fn shamir() -> Validated {
    validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: shamir\nspec:\n  seal:\n    shamir: {}\n",
    )
}

fn view(name: &str, ip: Option<&str>, ready: bool) -> PodView {
    PodView {
        name: name.into(),
        ip: ip.map(str::to_owned),
        phase: if ip.is_some() { "Running" } else { "Pending" }.into(),
        ready,
        ..PodView::default()
    }
}

fn seal(seal_type: &str, initialized: bool, sealed: bool) -> SealStatus {
    serde_json::from_value(serde_json::json!({
        "type": seal_type,
        "initialized": initialized,
        "sealed": sealed,
        "t": 1,
        "n": 1,
        "progress": 0,
        "version": "0.1.0",
    }))
    .expect("seal status")
}

fn health(sealed: bool) -> Health {
    serde_json::from_value(serde_json::json!({
        "initialized": true, "sealed": sealed, "standby": false, "version": "0.1.0"
    }))
    .expect("health")
}

fn backend(healthy: bool, class: &str, error: &str) -> SealBackendStatus {
    SealBackendStatus {
        healthy,
        last_error_class: class.into(),
        last_error: error.into(),
        ..SealBackendStatus::default()
    }
}

fn answered(view: PodView, seal: SealStatus, backend: Option<SealBackendStatus>) -> PodObservation {
    let sealed = seal.sealed;
    PodObservation {
        pod: view,
        answer: Answer::Answered {
            seal,
            health: Some(health(sealed)),
            backend,
        },
    }
}

fn facts<'a>(v: &'a Validated, pods: &'a [PodObservation], init: InitState) -> Facts<'a> {
    Facts {
        v,
        pods,
        init,
        rolling: false,
        apply_error: None,
        upgrade: None,
    }
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("timestamp")
}

fn now() -> Timestamp {
    t(1_700_000_000)
}

fn c<'a>(s: &'a SecretServerStatus, type_: &str) -> &'a Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("condition {type_} missing from {:#?}", s.conditions))
}

/// Asserts a condition's status and reason.
#[track_caller]
fn assert_cond(s: &SecretServerStatus, type_: &str, status: &str, reason: &str) {
    let cond = c(s, type_);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        (status, reason),
        "condition {type_}: {cond:#?}"
    );
}

/// An awskms pod that is initialized, unsealed, ready and whose backend is healthy.
fn healthy_pod() -> PodObservation {
    answered(
        view("vault-0", Some("198.18.9.5"), true),
        seal("awskms", true, false),
        Some(backend(true, "", "")),
    )
}

const KMS_ERROR: &str = "Post \"https://kms.eu-west-1.amazonaws.com/\": dial tcp 10.9.9.9:443: connect: connection refused";

/// An awskms pod that is initialized but sealed because KMS fails with `class`.
fn kms_failing_pod(class: &str) -> PodObservation {
    answered(
        view("vault-0", Some("198.18.9.5"), false),
        seal("awskms", true, true),
        Some(backend(false, class, KMS_ERROR)),
    )
}

fn initialized(v: &Validated) -> InitState {
    InitState::Initialized {
        secret: Some(v.init_secret_name()),
    }
}

// ---------------------------------------------------------------------------------------------
// compute

#[test]
fn no_pods_yet() {
    let v = awskms();
    let s = compute(&facts(&v, &[], InitState::Unknown), None, now());
    assert_cond(&s, READY, "False", "PodsNotCreated");
    assert_cond(&s, INITIALIZED, "Unknown", "PodsNotCreated");
    assert_cond(&s, UNSEALED, "Unknown", "PodsNotCreated");
    assert_cond(&s, SEAL_HEALTHY, "Unknown", "PodsNotCreated");
    assert_cond(&s, PROGRESSING, "True", "PodsStarting");
    assert_cond(&s, DEGRADED, "False", "AsExpected");
    assert!(c(&s, READY).message.contains("StatefulSet vault"));
    assert_eq!(s.ready.as_deref(), Some("0/1"));
    assert_eq!(s.replicas, 1);
    assert_eq!(s.ready_replicas, 0);
    assert_eq!(s.unsealed_replicas, 0);
    assert_eq!(s.sealed, None);
    assert_eq!(s.initialized, None);
    assert_eq!(s.active, None);
    assert_eq!(s.seal_type.as_deref(), Some("awskms"));
    assert_eq!(s.reason.as_deref(), Some("PodsNotCreated"));
    assert_eq!(s.observed_generation, Some(3));
    assert!(s.pods.is_empty());
}

#[test]
fn conditions_come_in_a_fixed_order_with_the_generation() {
    let v = awskms();
    let pods = [healthy_pod()];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            INITIALIZED,
            UNSEALED,
            SEAL_HEALTHY,
            READY,
            PROGRESSING,
            DEGRADED
        ]
    );
    assert!(
        s.conditions
            .iter()
            .all(|c| c.observed_generation == Some(3))
    );
}

#[test]
fn pod_without_ip_is_starting() {
    let v = awskms();
    let pods = [PodObservation {
        pod: view("vault-0", None, false),
        answer: Answer::NotAsked,
    }];
    let s = compute(&facts(&v, &pods, InitState::Unknown), None, now());
    assert_cond(&s, READY, "False", "PodStarting");
    assert_cond(&s, UNSEALED, "Unknown", "PodStarting");
    assert_cond(&s, INITIALIZED, "Unknown", "PodStarting");
    assert_cond(&s, PROGRESSING, "True", "PodsStarting");
    assert_cond(&s, DEGRADED, "False", "AsExpected");
    assert!(
        c(&s, UNSEALED).message.contains("vault-0 is Pending"),
        "{}",
        c(&s, UNSEALED).message
    );
    assert_eq!(s.pods.len(), 1);
    assert_eq!(s.pods[0].name, "vault-0");
    assert_eq!(s.pods[0].ip, None);
    assert_eq!(s.pods[0].sealed, None);
    assert_eq!(s.pods[0].last_unseal_error, None);
}

#[test]
fn crash_looping_pod_is_degraded() {
    let v = awskms();
    let mut pod = view("vault-0", Some("198.18.9.5"), false);
    pod.waiting_reason = Some("CrashLoopBackOff".into());
    pod.restarts = 7;
    let pods = [PodObservation {
        pod,
        answer: Answer::Unreachable("connection refused".into()),
    }];
    let s = compute(&facts(&v, &pods, InitState::Unknown), None, now());
    assert_cond(&s, DEGRADED, "True", "PodCrashLooping");
    assert_cond(&s, READY, "False", "PodCrashLooping");
    assert_cond(&s, UNSEALED, "Unknown", "PodCrashLooping");
    let msg = &c(&s, DEGRADED).message;
    assert!(msg.contains("7 restarts"), "{msg}");
    assert!(msg.contains("kubectl logs vault-0 -n secrets"), "{msg}");
    // A crash loop does not resolve itself: not Progressing.
    assert_cond(&s, PROGRESSING, "False", "Stable");
}

#[test]
fn other_waiting_reason_is_degraded_pod_waiting() {
    let v = awskms();
    let mut pod = view("vault-0", None, false);
    pod.waiting_reason = Some("ImagePullBackOff".into());
    let pods = [PodObservation {
        pod,
        answer: Answer::NotAsked,
    }];
    let s = compute(&facts(&v, &pods, InitState::Unknown), None, now());
    assert_cond(&s, DEGRADED, "True", "PodWaiting");
    assert!(c(&s, DEGRADED).message.contains("ImagePullBackOff"));
}

#[test]
fn unreachable_pod_names_the_error() {
    let v = awskms();
    let err = "cannot reach the server at http://198.18.9.5:8200: connection refused";
    let pods = [PodObservation {
        pod: view("vault-0", Some("198.18.9.5"), false),
        answer: Answer::Unreachable(err.into()),
    }];
    let s = compute(&facts(&v, &pods, InitState::Unknown), None, now());
    assert_cond(&s, READY, "False", "PodUnreachable");
    assert_cond(&s, UNSEALED, "Unknown", "PodUnreachable");
    assert!(c(&s, UNSEALED).message.contains(err));
    assert!(c(&s, READY).message.contains(err));
    assert_eq!(
        s.pods[0].last_unseal_error.as_deref(),
        Some(format!("not answering: {err}").as_str())
    );
    assert_eq!(s.sealed, None);
    assert_eq!(s.initialized, None);
}

#[test]
fn terminating_pod_without_answer() {
    let v = awskms();
    let mut pod = view("vault-0", Some("198.18.9.5"), true);
    pod.terminating = true;
    let pods = [PodObservation {
        pod,
        answer: Answer::NotAsked,
    }];
    let s = compute(&facts(&v, &pods, InitState::Unknown), None, now());
    assert_cond(&s, UNSEALED, "Unknown", "PodTerminating");
    // A terminating pod never counts as ready.
    assert_eq!(s.ready_replicas, 0);
    assert_eq!(s.ready.as_deref(), Some("0/1"));
}

#[test]
fn awskms_all_ready() {
    let v = awskms();
    let pods = [healthy_pod()];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    assert_cond(&s, INITIALIZED, "True", "Initialized");
    assert!(c(&s, INITIALIZED).message.contains("Secret vault-init"));
    assert_cond(&s, UNSEALED, "True", "Unsealed");
    assert_eq!(c(&s, UNSEALED).message, "1 of 1 pods unsealed");
    assert_cond(&s, SEAL_HEALTHY, "True", "KMSHealthy");
    assert!(c(&s, SEAL_HEALTHY).message.contains(KEY_ID));
    assert_cond(&s, READY, "True", "Ready");
    assert_eq!(c(&s, READY).message, "1/1 pods ready and unsealed");
    assert_cond(&s, PROGRESSING, "False", "Stable");
    assert_cond(&s, DEGRADED, "False", "AsExpected");

    assert_eq!(s.ready.as_deref(), Some("1/1"));
    assert_eq!(s.ready_replicas, 1);
    assert_eq!(s.unsealed_replicas, 1);
    assert_eq!(s.initialized, Some(true));
    assert_eq!(s.sealed, Some(false));
    assert_eq!(s.active.as_deref(), Some("vault-0"));
    assert_eq!(s.init_secret_name.as_deref(), Some("vault-init"));
    assert_eq!(s.seal_type.as_deref(), Some("awskms"));
    assert_eq!(s.reason.as_deref(), Some("Ready"));

    assert_eq!(s.pods.len(), 1);
    let p = &s.pods[0];
    assert_eq!(p.name, "vault-0");
    assert_eq!(p.ip.as_deref(), Some("198.18.9.5"));
    assert_eq!(p.initialized, Some(true));
    assert_eq!(p.sealed, Some(false));
    assert_eq!(p.seal_type.as_deref(), Some("awskms"));
    assert_eq!(p.version.as_deref(), Some("0.1.0"));
    assert_eq!(p.last_unseal_error, None);
}

#[test]
fn standby_pod_is_not_active() {
    let v = awskms();
    let mut pod = healthy_pod();
    if let Answer::Answered { health, .. } = &mut pod.answer {
        health.as_mut().expect("health").standby = true;
    }
    let s = compute(&facts(&v, &[pod], initialized(&v)), None, now());
    assert_eq!(s.active, None);
    assert_cond(&s, READY, "True", "Ready");
}

#[test]
fn initialized_without_secret() {
    let v = awskms();
    let pods = [healthy_pod()];
    let s = compute(
        &facts(&v, &pods, InitState::Initialized { secret: None }),
        None,
        now(),
    );
    assert_cond(&s, INITIALIZED, "True", "Initialized");
    assert_eq!(c(&s, INITIALIZED).message, "storage is initialized");
    assert_eq!(s.init_secret_name, None);
}

#[test]
fn answered_but_readiness_probe_not_passed_yet() {
    let v = awskms();
    let pods = [answered(
        view("vault-0", Some("198.18.9.5"), false),
        seal("awskms", true, false),
        Some(backend(true, "", "")),
    )];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    assert_cond(&s, UNSEALED, "True", "Unsealed");
    assert_cond(&s, READY, "False", "PodsNotReady");
    assert_eq!(c(&s, READY).message, "0/1 pods pass their readiness probe");
    assert_eq!(s.ready.as_deref(), Some("0/1"));
}

#[test]
fn kms_unreachable() {
    let v = awskms();
    let pods = [kms_failing_pod("Unreachable")];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    assert_cond(&s, SEAL_HEALTHY, "False", "KMSUnreachable");
    assert_eq!(
        c(&s, SEAL_HEALTHY).message,
        format!("pod vault-0: {KMS_ERROR}")
    );
    assert_cond(&s, UNSEALED, "False", "KMSUnreachable");
    assert!(
        c(&s, UNSEALED)
            .message
            .contains("kms.eu-west-1.amazonaws.com")
    );
    assert!(c(&s, UNSEALED).message.contains("retries auto-unseal"));
    assert_cond(&s, READY, "False", "KMSUnreachable");
    assert!(c(&s, READY).message.contains("kms.eu-west-1.amazonaws.com"));
    assert_cond(&s, DEGRADED, "True", "KMSUnreachable");
    assert_cond(&s, INITIALIZED, "True", "Initialized");
    assert_cond(&s, PROGRESSING, "False", "Stable");
    assert_eq!(s.sealed, Some(true));
    assert_eq!(s.initialized, Some(true));
    assert_eq!(s.unsealed_replicas, 0);
    assert_eq!(s.active, None);
    assert_eq!(s.reason.as_deref(), Some("KMSUnreachable"));
    let err = s.pods[0].last_unseal_error.as_deref().expect("error");
    assert!(err.starts_with("KMSUnreachable:"), "{err}");
    assert!(err.contains(KMS_ERROR), "{err}");
    assert_eq!(s.pods[0].sealed, Some(true));
}

#[test]
fn kms_error_classes_map_to_reasons_in_every_condition() {
    for (class, reason) in [
        ("KeyNotFound", "KMSKeyNotFound"),
        ("AccessDenied", "KMSAccessDenied"),
        ("WebIdentityDenied", "WebIdentityDenied"),
    ] {
        let v = awskms();
        let pods = [kms_failing_pod(class)];
        let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
        assert_cond(&s, SEAL_HEALTHY, "False", reason);
        assert_cond(&s, UNSEALED, "False", reason);
        assert_cond(&s, READY, "False", reason);
        assert_cond(&s, DEGRADED, "True", reason);
        let err = s.pods[0].last_unseal_error.as_deref().expect("error");
        assert!(err.starts_with(&format!("{reason}:")), "{err}");
    }
}

#[test]
fn kms_reason_table() {
    for (class, reason) in [
        ("Unreachable", "KMSUnreachable"),
        ("AccessDenied", "KMSAccessDenied"),
        ("KeyNotFound", "KMSKeyNotFound"),
        ("KeyDisabled", "KMSKeyDisabled"),
        ("InvalidCiphertext", "KMSInvalidCiphertext"),
        ("WebIdentityDenied", "WebIdentityDenied"),
        ("MissingCredentials", "AWSCredentialsMissing"),
        ("Throttled", "KMSThrottled"),
        ("Corrupt", "SealDataCorrupt"),
        ("SomethingNew", "KMSError"),
        ("", "KMSError"),
        ("unreachable", "KMSError"),
    ] {
        assert_eq!(kms_reason(class), reason, "class {class:?}");
    }
}

#[test]
fn backend_unhealthy_without_class_is_pending_check() {
    let v = awskms();
    let pods = [answered(
        view("vault-0", Some("198.18.9.5"), false),
        seal("awskms", true, true),
        Some(backend(false, "", "")),
    )];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    assert_cond(&s, SEAL_HEALTHY, "Unknown", "KMSCheckPending");
    assert!(c(&s, SEAL_HEALTHY).message.contains(KEY_ID));
    assert!(c(&s, SEAL_HEALTHY).message.contains("vault-0"));
    // Sealed without a classified error: auto-unseal is still in progress.
    assert_cond(&s, UNSEALED, "False", "AutoUnsealing");
    assert_cond(&s, PROGRESSING, "True", "AutoUnsealing");
    assert_cond(&s, DEGRADED, "False", "AsExpected");
    assert_eq!(s.pods[0].last_unseal_error, None);
}

#[test]
fn awskms_pod_without_backend_answer() {
    let v = awskms();
    let pods = [answered(
        view("vault-0", Some("198.18.9.5"), true),
        seal("awskms", true, false),
        None,
    )];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    assert_cond(&s, SEAL_HEALTHY, "Unknown", "NoPodAnswered");
}

#[test]
fn shamir_sealed_awaits_unseal_keys() {
    let v = shamir();
    let mut st = seal("shamir", true, true);
    st.t = 3;
    st.n = 5;
    st.progress = 1;
    let pods = [answered(
        view("shamir-0", Some("198.18.9.7"), false),
        st,
        None,
    )];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    assert_cond(&s, UNSEALED, "False", "AwaitingUnsealKeys");
    let msg = &c(&s, UNSEALED).message;
    assert!(msg.contains("3 of 5"), "{msg}");
    assert!(msg.contains("progress 1/3"), "{msg}");
    assert!(msg.contains("Secret shamir-init"), "{msg}");
    assert!(msg.contains("shamir-0"), "{msg}");
    assert_cond(&s, SEAL_HEALTHY, "True", "ShamirSeal");
    assert_cond(&s, READY, "False", "AwaitingUnsealKeys");
    assert_cond(&s, DEGRADED, "False", "AsExpected");
    assert_eq!(s.seal_type.as_deref(), Some("shamir"));
    assert_eq!(s.sealed, Some(true));
    // A Shamir seal has no backend error to report.
    assert_eq!(s.pods[0].last_unseal_error, None);
}

#[test]
fn shamir_sealed_without_init_secret_does_not_name_one() {
    let v = shamir();
    let pods = [answered(
        view("shamir-0", Some("198.18.9.7"), false),
        seal("shamir", true, true),
        None,
    )];
    let s = compute(
        &facts(&v, &pods, InitState::Initialized { secret: None }),
        None,
        now(),
    );
    assert_cond(&s, UNSEALED, "False", "AwaitingUnsealKeys");
    assert!(!c(&s, UNSEALED).message.contains("Secret"));
}

/// An awskms pod that answered uninitialized (and therefore sealed), backend healthy.
fn uninitialized_pod() -> PodObservation {
    answered(
        view("vault-0", Some("198.18.9.5"), false),
        seal("awskms", false, true),
        Some(backend(true, "", "")),
    )
}

#[test]
fn init_states_map_to_initialized_reasons() {
    let v = awskms();
    let name = v.init_secret_name();
    let cases = [
        (InitState::Pending, "False", "Initializing", false),
        (InitState::Manual, "False", "InitRequired", false),
        (
            InitState::Conflict {
                secret: name.clone(),
            },
            "False",
            "InitSecretConflict",
            true,
        ),
        (
            InitState::Failed {
                reason: InitFailure::InitFailed,
                message: "sys/init answered 500".into(),
            },
            "False",
            "InitFailed",
            true,
        ),
        (
            InitState::Failed {
                reason: InitFailure::SecretForeign,
                message: "Secret vault-init exists but the operator did not create it".into(),
            },
            "False",
            "InitSecretForeign",
            true,
        ),
        (
            InitState::Failed {
                reason: InitFailure::SecretKms,
                message: "KMS denied GenerateDataKey".into(),
            },
            "False",
            "InitSecretKMSFailed",
            true,
        ),
        (
            InitState::Failed {
                reason: InitFailure::SecretForbidden,
                message: "the operator may not read Secrets".into(),
            },
            "False",
            "InitSecretForbidden",
            true,
        ),
    ];
    for (init, status, reason, degraded) in cases {
        let pods = [uninitialized_pod()];
        let s = compute(&facts(&v, &pods, init.clone()), None, now());
        assert_cond(&s, INITIALIZED, status, reason);
        assert_cond(&s, UNSEALED, "False", "NotInitialized");
        assert_cond(&s, READY, "False", reason);
        if degraded {
            assert_cond(&s, DEGRADED, "True", reason);
        } else {
            assert_cond(&s, DEGRADED, "False", "AsExpected");
        }
        assert_eq!(s.initialized, Some(false), "{init:?}");
    }
}

#[test]
fn init_messages() {
    let v = awskms();
    let pods = [uninitialized_pod()];
    let msg = |init: InitState| {
        let s = compute(&facts(&v, &pods, init), None, now());
        c(&s, INITIALIZED).message.clone()
    };
    assert!(msg(InitState::Pending).contains("Secret vault-init"));
    let manual = msg(InitState::Manual);
    assert!(manual.contains("spec.init.auto is false"), "{manual}");
    assert!(manual.contains("vault-0"), "{manual}");
    let conflict = msg(InitState::Conflict {
        secret: "vault-init".into(),
    });
    assert!(conflict.contains("delete Secret vault-init"), "{conflict}");
    assert!(
        msg(InitState::Failed {
            reason: InitFailure::InitFailed,
            message: "boom 500".into()
        })
        .contains("auto-init failed: boom 500")
    );
    // The refusals carry their own message, which says what to do.
    let foreign = msg(InitState::Failed {
        reason: InitFailure::SecretForeign,
        message: "Secret vault-init exists; delete it".into(),
    });
    assert_eq!(foreign, "Secret vault-init exists; delete it");
}

#[test]
fn pending_init_is_progressing() {
    let v = awskms();
    let pods = [uninitialized_pod()];
    let s = compute(&facts(&v, &pods, InitState::Pending), None, now());
    assert_cond(&s, PROGRESSING, "True", "Initializing");
}

#[test]
fn conflict_reports_the_secret_name() {
    let v = awskms();
    let pods = [uninitialized_pod()];
    let s = compute(
        &facts(
            &v,
            &pods,
            InitState::Conflict {
                secret: "vault-init".into(),
            },
        ),
        None,
        now(),
    );
    assert_eq!(s.init_secret_name.as_deref(), Some("vault-init"));
}

#[test]
fn keys_lost_is_initialized_but_degraded() {
    let v = awskms();
    let pods = [healthy_pod()];
    let s = compute(
        &facts(
            &v,
            &pods,
            InitState::KeysLost {
                secret: "vault-init".into(),
            },
        ),
        None,
        now(),
    );
    assert_cond(&s, INITIALIZED, "True", "InitKeysLost");
    assert!(c(&s, INITIALIZED).message.contains("Secret vault-init"));
    assert_cond(&s, DEGRADED, "True", "InitKeysLost");
    // The server itself serves.
    assert_cond(&s, READY, "True", "Ready");
    assert_eq!(s.init_secret_name.as_deref(), Some("vault-init"));
}

#[test]
fn init_secret_name_is_kept_from_prev_while_unknown() {
    let v = awskms();
    let pods = [healthy_pod()];
    let first = compute(&facts(&v, &pods, initialized(&v)), None, now());
    let gone = [PodObservation {
        pod: view("vault-0", None, false),
        answer: Answer::NotAsked,
    }];
    let s = compute(&facts(&v, &gone, InitState::Unknown), Some(&first), now());
    assert_eq!(s.init_secret_name.as_deref(), Some("vault-init"));
}

#[test]
fn apply_error_is_degraded() {
    let v = awskms();
    let pods = [healthy_pod()];
    let mut f = facts(&v, &pods, initialized(&v));
    f.apply_error = Some("StatefulSet vault: field is immutable".into());
    let s = compute(&f, None, now());
    assert_cond(&s, DEGRADED, "True", "ApplyFailed");
    assert!(c(&s, DEGRADED).message.contains("field is immutable"));
    // The server keeps serving.
    assert_cond(&s, READY, "True", "Ready");
}

#[test]
fn apply_error_takes_precedence_over_seal_failure() {
    let v = awskms();
    let pods = [kms_failing_pod("Unreachable")];
    let mut f = facts(&v, &pods, initialized(&v));
    f.apply_error = Some("timeout".into());
    let s = compute(&f, None, now());
    assert_cond(&s, DEGRADED, "True", "ApplyFailed");
}

#[test]
fn rolling_out_is_progressing() {
    let v = awskms();
    let pods = [healthy_pod()];
    let mut f = facts(&v, &pods, initialized(&v));
    f.rolling = true;
    let s = compute(&f, None, now());
    assert_cond(&s, PROGRESSING, "True", "RollingOut");
    assert!(c(&s, PROGRESSING).message.contains("StatefulSet vault"));
}

// ---------------------------------------------------------------------------------------------
// lastTransitionTime

#[test]
fn transition_time_is_now_truncated_to_seconds() {
    let v = awskms();
    let pods = [healthy_pod()];
    let now = Timestamp::new(1_700_000_000, 987_654_321).expect("timestamp");
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now);
    for cond in &s.conditions {
        assert_eq!(cond.last_transition_time.0, t(1_700_000_000), "{cond:?}");
    }
}

#[test]
fn transition_time_carried_over_while_status_unchanged() {
    let v = awskms();
    let starting = [PodObservation {
        pod: view("vault-0", None, false),
        answer: Answer::NotAsked,
    }];
    let first = compute(&facts(&v, &starting, InitState::Unknown), None, t(1000));
    assert_cond(&first, UNSEALED, "Unknown", "PodStarting");
    assert_cond(&first, PROGRESSING, "True", "PodsStarting");

    let unreachable = [PodObservation {
        pod: view("vault-0", Some("198.18.9.5"), false),
        answer: Answer::Unreachable("connection refused".into()),
    }];
    let second = compute(
        &facts(&v, &unreachable, InitState::Unknown),
        Some(&first),
        t(2000),
    );
    // Same status, different reason: the time is carried over.
    assert_cond(&second, UNSEALED, "Unknown", "PodUnreachable");
    assert_eq!(c(&second, UNSEALED).last_transition_time.0, t(1000));
    assert_cond(&second, READY, "False", "PodUnreachable");
    assert_eq!(c(&second, READY).last_transition_time.0, t(1000));
    assert_eq!(c(&second, DEGRADED).last_transition_time.0, t(1000));
    // Status changed: stamped now.
    assert_cond(&second, PROGRESSING, "False", "Stable");
    assert_eq!(c(&second, PROGRESSING).last_transition_time.0, t(2000));

    // And then everything becomes ready.
    let ready = [healthy_pod()];
    let third = compute(&facts(&v, &ready, initialized(&v)), Some(&second), t(3000));
    assert_eq!(c(&third, READY).last_transition_time.0, t(3000));
    assert_eq!(c(&third, UNSEALED).last_transition_time.0, t(3000));
    assert_eq!(c(&third, INITIALIZED).last_transition_time.0, t(3000));
    assert_eq!(c(&third, PROGRESSING).last_transition_time.0, t(2000));
    assert_eq!(c(&third, DEGRADED).last_transition_time.0, t(1000));
}

#[test]
fn steady_state_computes_an_identical_status() {
    let v = awskms();
    for pods in [
        vec![healthy_pod()],
        vec![kms_failing_pod("Unreachable")],
        vec![],
    ] {
        let f = facts(&v, &pods, initialized(&v));
        let first = compute(&f, None, t(1000));
        let second = compute(&f, Some(&first), t(5000));
        assert_eq!(first, second);
        assert!(transitions(Some(&first), &second).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// transitions

#[test]
fn first_observation_all_ready_announces_only_unsealed() {
    let v = awskms();
    let pods = [healthy_pod()];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    let events = transitions(None, &s);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].reason, "Unsealed");
    assert!(!events[0].warning);
    assert_eq!(events[0].note, "1 of 1 pods unsealed");
}

#[test]
fn losing_kms_emits_warnings() {
    let v = awskms();
    let ok = [healthy_pod()];
    let prev = compute(&facts(&v, &ok, initialized(&v)), None, t(1000));
    let failing = [kms_failing_pod("Unreachable")];
    let next = compute(&facts(&v, &failing, initialized(&v)), Some(&prev), t(2000));
    let events = transitions(Some(&prev), &next);
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e.warning), "{events:#?}");
    assert!(
        events.iter().all(|e| e.reason == "KMSUnreachable"),
        "{events:#?}"
    );
    // Unsealed, SealHealthy and Ready flipped; Initialized did not.
    assert_eq!(events.len(), 3, "{events:#?}");
    assert!(
        events
            .iter()
            .any(|e| e.note.contains("retries auto-unseal"))
    );
    assert!(
        events
            .iter()
            .any(|e| e.note == format!("pod vault-0: {KMS_ERROR}"))
    );
}

#[test]
fn recovering_emits_normal_events() {
    let v = awskms();
    let failing = [kms_failing_pod("Unreachable")];
    let prev = compute(&facts(&v, &failing, initialized(&v)), None, t(1000));
    let ok = [healthy_pod()];
    let next = compute(&facts(&v, &ok, initialized(&v)), Some(&prev), t(2000));
    let events = transitions(Some(&prev), &next);
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Unsealed", "SealHealthy", "Ready"], "{events:#?}");
    assert!(events.iter().all(|e| !e.warning));
}

#[test]
fn same_status_twice_emits_nothing() {
    let v = awskms();
    let failing = [kms_failing_pod("Unreachable")];
    let s = compute(&facts(&v, &failing, initialized(&v)), None, now());
    assert!(transitions(Some(&s), &s).is_empty());
    let ok = [healthy_pod()];
    let s = compute(&facts(&v, &ok, initialized(&v)), None, now());
    assert!(transitions(Some(&s), &s).is_empty());
}

#[test]
fn new_failure_reason_emits_a_warning() {
    let v = awskms();
    let unreachable = [kms_failing_pod("Unreachable")];
    let prev = compute(&facts(&v, &unreachable, initialized(&v)), None, t(1000));
    let not_found = [kms_failing_pod("KeyNotFound")];
    let next = compute(
        &facts(&v, &not_found, initialized(&v)),
        Some(&prev),
        t(2000),
    );
    // The status stayed False: the transition time is kept.
    assert_eq!(c(&next, SEAL_HEALTHY).last_transition_time.0, t(1000));
    let events = transitions(Some(&prev), &next);
    let seal_event = events
        .iter()
        .find(|e| e.note == c(&next, SEAL_HEALTHY).message)
        .expect("SealHealthy event");
    assert!(seal_event.warning);
    assert_eq!(seal_event.reason, "KMSKeyNotFound");
    assert!(events.iter().all(|e| e.reason == "KMSKeyNotFound"));
}

#[test]
fn unknown_conditions_emit_nothing() {
    let v = awskms();
    let s = compute(&facts(&v, &[], InitState::Unknown), None, now());
    // Initialized, Unsealed and SealHealthy are Unknown: no event for them.
    let events = transitions(None, &s);
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["PodsNotCreated"], "{events:#?}");
    assert_eq!(events[0].note, c(&s, READY).message);
}

#[test]
fn starting_up_is_not_a_warning() {
    let v = awskms();
    let none = compute(&facts(&v, &[], InitState::Unknown), None, t(1000));
    let starting = [PodObservation {
        pod: view("vault-0", None, false),
        answer: Answer::NotAsked,
    }];
    let next = compute(
        &facts(&v, &starting, InitState::Unknown),
        Some(&none),
        t(2000),
    );
    let events: Vec<Transition> = transitions(None, &none)
        .into_iter()
        .chain(transitions(Some(&none), &next))
        .collect();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| !e.warning), "{events:#?}");
}

#[test]
fn auto_unsealing_is_a_normal_sealed_event() {
    let v = awskms();
    let ok = [healthy_pod()];
    let prev = compute(&facts(&v, &ok, initialized(&v)), None, t(1000));
    let sealed = [answered(
        view("vault-0", Some("198.18.9.5"), false),
        seal("awskms", true, true),
        Some(backend(true, "", "")),
    )];
    let next = compute(&facts(&v, &sealed, initialized(&v)), Some(&prev), t(2000));
    assert_cond(&next, UNSEALED, "False", "AutoUnsealing");
    let events = transitions(Some(&prev), &next);
    let unsealed = events
        .iter()
        .find(|e| e.reason == "Sealed")
        .expect("Sealed event");
    assert!(!unsealed.warning, "{events:#?}");
}

#[test]
fn shamir_sealed_event_is_named_sealed() {
    let v = shamir();
    let pods = [answered(
        view("shamir-0", Some("198.18.9.7"), false),
        seal("shamir", true, true),
        None,
    )];
    let s = compute(&facts(&v, &pods, initialized(&v)), None, now());
    let events = transitions(None, &s);
    assert!(events.iter().any(|e| e.reason == "Sealed"), "{events:#?}");
}
