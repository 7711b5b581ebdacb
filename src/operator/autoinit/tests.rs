use super::*;

use kube::Resource;

use crate::operator::initsecret::kms::FakeKms;
use crate::operator::initsecret::{Stored, open, parse};

mod formation;
mod initialize;
mod operator_role;

use crate::api_client::{SealBackendStatus, SealStatus};
use crate::operator::crd::SecretServer;
use crate::operator::observe::{Answer, PodView};
use crate::operator::validate::validate;

// ---------------------------------------------------------------------------------------------
// Fixtures (local, so these tests do not depend on the builders' fixture module).

const UID: &str = "3f1f6c1e-8d2a-4d4e-9a55-0c7f0f1e2a01";

fn validated(yaml: &str) -> Validated {
    let mut ss: SecretServer = serde_yaml::from_str(yaml).expect("fixture parses");
    let meta = ss.meta_mut();
    meta.namespace = Some("secrets".into());
    meta.uid = Some(UID.into());
    meta.generation = Some(3);
    validate(&ss, Some("ghcr.io/sealkeep/sealkeep:test")).expect("fixture validates")
}

fn awskms() -> Validated {
    validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  seal:\n    awsKms:\n      keyId: alias/k\n      region: eu-west-1\n  init:\n    recoveryShares: 7\n    recoveryThreshold: 4\n",
    )
}

fn shamir() -> Validated {
    validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: shamir\nspec:\n  seal:\n    shamir: {}\n",
    )
}

fn seal(initialized: bool) -> SealStatus {
    serde_json::from_value(serde_json::json!({
        "type": "awskms",
        "initialized": initialized,
        "sealed": !initialized,
        "t": 1,
        "n": 1,
        "progress": 0,
    }))
    .expect("seal status")
}

fn pod(name: &str, ip: Option<&str>, answer: Answer) -> PodObservation {
    PodObservation {
        pod: PodView {
            name: name.into(),
            ip: ip.map(str::to_owned),
            phase: "Running".into(),
            ..PodView::default()
        },
        answer,
    }
}

fn answering(name: &str, ip: &str, initialized: bool) -> PodObservation {
    answering_with(name, ip, initialized, Some(kms_backend(true, "")))
}

fn answering_with(
    name: &str,
    ip: &str,
    initialized: bool,
    backend: Option<SealBackendStatus>,
) -> PodObservation {
    pod(
        name,
        Some(ip),
        Answer::Answered {
            seal: seal(initialized),
            health: None,
            backend,
        },
    )
}

/// `sys/seal-backend-status` of an awskms server.
fn kms_backend(healthy: bool, last_error_class: &str) -> SealBackendStatus {
    SealBackendStatus {
        healthy,
        last_error_class: last_error_class.into(),
        ..SealBackendStatus::default()
    }
}

fn uninitialized() -> Vec<PodObservation> {
    vec![answering("vault-0", "198.18.9.5", false)]
}

fn initialized() -> Vec<PodObservation> {
    vec![answering("vault-0", "198.18.9.5", true)]
}

fn init_response() -> InitResponse {
    serde_json::from_value(serde_json::json!({
        "keys": ["00aa", "00bb"],
        "keys_base64": ["UNSEAL-SHARE-1", "UNSEAL-SHARE-2"],
        "recovery_keys": ["11aa"],
        "recovery_keys_base64": ["RECOVERY-SHARE-1", "RECOVERY-SHARE-2", "RECOVERY-SHARE-3"],
        "root_token": "hvs.SUPER-SECRET-ROOT-TOKEN",
    }))
    .expect("init response")
}

fn secret_with(annotation: Option<&str>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("vault-init".into()),
            annotations: annotation
                .map(|a| BTreeMap::from([(INIT_STATE_ANNOTATION.to_owned(), a.to_owned())])),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}

/// A pending marker with the label and owner annotation set to `label_uid`/`annotation_uid`.
fn marker(label_uid: Option<&str>, annotation_uid: Option<&str>) -> Secret {
    let mut s = secret_with(Some("pending"));
    if let Some(u) = label_uid {
        s.metadata.labels = Some(BTreeMap::from([(
            INIT_SECRET_FOR_LABEL.to_owned(),
            u.to_owned(),
        )]));
    }
    if let (Some(u), Some(a)) = (annotation_uid, s.metadata.annotations.as_mut()) {
        a.insert(OWNER_UID_ANNOTATION.to_owned(), u.to_owned());
    }
    s
}

fn done(v: &Validated, dk: Option<&DataKey>) -> Secret {
    done_secret(v, &contents(v, &init_response()), dk).expect("done secret")
}

fn fake_data_key() -> DataKey {
    DataKey {
        key_id: FakeKms::KEY_ARN.into(),
        plaintext: zeroize::Zeroizing::new((100u8..132).collect()),
        wrapped: (100u8..132).rev().collect(),
    }
}

fn data(s: &Secret, key: &str) -> String {
    let bytes = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("data key {key} missing"));
    String::from_utf8(bytes.0.clone()).expect("utf-8")
}

// ---------------------------------------------------------------------------------------------
// decide

#[test]
fn no_pod_answered_is_unknown() {
    let v = awskms();
    assert_eq!(
        decide(&v, &[], SecretState::Absent),
        Decision::Report(InitState::Unknown)
    );
    let pods = [
        pod("vault-0", None, Answer::NotAsked),
        pod(
            "vault-1",
            Some("198.18.9.6"),
            Answer::Unreachable("refused".into()),
        ),
    ];
    for secret in [SecretState::Absent, SecretState::Pending, SecretState::Done] {
        assert_eq!(
            decide(&v, &pods, secret),
            Decision::Report(InitState::Unknown)
        );
    }
}

#[test]
fn uninitialized_pod_with_absent_secret_is_initialized_through_it() {
    let v = awskms();
    assert_eq!(
        decide(&v, &uninitialized(), SecretState::Absent),
        Decision::Initialize {
            pod: "vault-0".into(),
            ip: "198.18.9.5".into()
        }
    );
}

#[test]
fn awskms_waits_until_every_pod_has_proven_its_key() {
    let v = awskms();
    let initialize = Decision::Initialize {
        pod: "vault-0".into(),
        ip: "198.18.9.5".into(),
    };
    let with = |backend| vec![answering_with("vault-0", "198.18.9.5", false, backend)];
    for (backend, why) in [
        (None, "backend status not read"),
        (Some(kms_backend(false, "")), "first key check not finished"),
        (Some(kms_backend(false, "KMSKeyNotFound")), "key missing"),
        (
            Some(kms_backend(false, "KMSUnreachable")),
            "KMS unreachable",
        ),
    ] {
        assert_eq!(
            decide(&v, &with(backend), SecretState::Absent),
            Decision::Report(InitState::Pending),
            "{why}"
        );
    }
    assert_eq!(
        decide(&v, &with(Some(kms_backend(true, ""))), SecretState::Absent),
        initialize
    );
    // Shamir has no key to prove: a missing backend status does not hold it back.
    let pods = vec![answering_with("shamir-0", "198.18.9.7", false, None)];
    assert_eq!(
        decide(&shamir(), &pods, SecretState::Absent),
        Decision::Initialize {
            pod: "shamir-0".into(),
            ip: "198.18.9.7".into(),
        }
    );
}

#[test]
fn own_pending_marker_is_resumed() {
    let v = awskms();
    assert_eq!(
        decide(&v, &uninitialized(), SecretState::Pending),
        Decision::Initialize {
            pod: "vault-0".into(),
            ip: "198.18.9.5".into()
        }
    );
}

#[test]
fn done_secret_with_empty_storage_is_a_conflict() {
    let v = awskms();
    assert_eq!(
        decide(&v, &uninitialized(), SecretState::Done),
        Decision::Report(InitState::Conflict {
            secret: "vault-init".into()
        })
    );
    // Even with auto-init off: the conflict is the more useful report.
    let mut manual = awskms();
    manual.init.auto = false;
    assert_eq!(
        decide(&manual, &uninitialized(), SecretState::Done),
        Decision::Report(InitState::Conflict {
            secret: "vault-init".into()
        })
    );
}

#[test]
fn auto_off_is_manual() {
    let mut v = awskms();
    v.init.auto = false;
    for secret in [SecretState::Absent, SecretState::Pending] {
        assert_eq!(
            decide(&v, &uninitialized(), secret),
            Decision::Report(InitState::Manual)
        );
    }
}

#[test]
fn initialized_server_reports_its_secret() {
    let v = awskms();
    assert_eq!(
        decide(&v, &initialized(), SecretState::Done),
        Decision::Report(InitState::Initialized {
            secret: Some("vault-init".into())
        })
    );
    assert_eq!(
        decide(&v, &initialized(), SecretState::Absent),
        Decision::Report(InitState::Initialized { secret: None })
    );
    assert_eq!(
        decide(&v, &initialized(), SecretState::Pending),
        Decision::Report(InitState::KeysLost {
            secret: "vault-init".into()
        })
    );
}

#[test]
fn initialized_server_is_never_initialized_again_even_with_auto_off() {
    let mut v = awskms();
    v.init.auto = false;
    assert_eq!(
        decide(&v, &initialized(), SecretState::Absent),
        Decision::Report(InitState::Initialized { secret: None })
    );
}

#[test]
fn never_initializes_while_another_pod_is_silent() {
    let v = awskms();
    let pods = [
        answering("vault-0", "198.18.9.5", false),
        pod(
            "vault-1",
            Some("198.18.9.6"),
            Answer::Unreachable("timeout".into()),
        ),
    ];
    for secret in [SecretState::Absent, SecretState::Pending] {
        assert_eq!(
            decide(&v, &pods, secret),
            Decision::Report(InitState::Pending)
        );
    }
    let pods = [
        answering("vault-0", "198.18.9.5", false),
        pod("vault-1", None, Answer::NotAsked),
    ];
    assert_eq!(
        decide(&v, &pods, SecretState::Absent),
        Decision::Report(InitState::Pending)
    );
}

#[test]
fn never_initializes_before_every_desired_pod_answered() {
    let mut v = awskms();
    v.replicas = 3;
    assert_eq!(
        decide(&v, &uninitialized(), SecretState::Absent),
        Decision::Report(InitState::Pending)
    );
}

#[test]
fn one_initialized_pod_wins_over_uninitialized_ones() {
    let v = awskms();
    let pods = [
        answering("vault-0", "198.18.9.5", false),
        answering("vault-1", "198.18.9.6", true),
    ];
    assert_eq!(
        decide(&v, &pods, SecretState::Absent),
        Decision::Report(InitState::Initialized { secret: None })
    );
}

// ---------------------------------------------------------------------------------------------
// secret_state

#[test]
fn secret_state_from_annotation() {
    assert_eq!(secret_state(None, UID), SecretState::Absent);
    assert_eq!(
        secret_state(Some(&marker(Some(UID), Some(UID))), UID),
        SecretState::Pending
    );
    assert_eq!(
        secret_state(Some(&secret_with(Some("done"))), UID),
        SecretState::Done
    );
}

#[test]
fn a_secret_the_operator_did_not_create_is_foreign() {
    let foreign = |s: &Secret| match secret_state(Some(s), UID) {
        SecretState::Foreign(why) => why,
        other => panic!("expected Foreign, got {other:?}"),
    };
    // Someone else's Secret of that name, or an unknown marker value: never overwritten.
    assert!(foreign(&secret_with(None)).contains("did not create it"));
    assert!(foreign(&secret_with(Some("Pending"))).contains("\"Pending\""));
    // A pending marker without the operator's label and owner annotation.
    let why = foreign(&secret_with(Some("pending")));
    assert!(
        why.contains(&format!("{INIT_SECRET_FOR_LABEL}={UID}"))
            && why.contains(OWNER_UID_ANNOTATION),
        "{why}"
    );
    assert!(!foreign(&marker(Some(UID), None)).is_empty());
    assert!(!foreign(&marker(None, Some(UID))).is_empty());
    assert!(!foreign(&marker(Some(UID), Some("other-uid"))).is_empty());
    // A marker of an earlier SecretServer of the same name (another uid).
    let why = foreign(&marker(Some("old-uid"), Some("old-uid")));
    assert!(
        why.contains("another SecretServer") && why.contains("old-uid"),
        "{why}"
    );
}

#[test]
fn foreign_secret_blocks_init_with_its_own_reason() {
    let v = awskms();
    let d = decide(
        &v,
        &uninitialized(),
        SecretState::Foreign("it has no annotation".into()),
    );
    let Decision::Report(InitState::Failed { reason, message }) = d else {
        panic!("expected a refusal, got {d:?}");
    };
    assert_eq!(reason, InitFailure::SecretForeign);
    assert_eq!(reason.reason(), "InitSecretForeign");
    assert!(
        message.contains("Secret vault-init exists") && message.contains("it has no annotation"),
        "{message}"
    );
    assert!(message.contains("delete it"), "{message}");
    // An initialized server is not touched: the foreign Secret is simply not ours.
    assert_eq!(
        decide(&v, &initialized(), SecretState::Foreign("x".into())),
        Decision::Report(InitState::Initialized { secret: None })
    );
}

#[test]
fn built_secrets_round_trip_through_secret_state() {
    let v = awskms();
    assert_eq!(
        secret_state(Some(&pending_secret(&v)), UID),
        SecretState::Pending
    );
    assert_eq!(
        secret_state(Some(&done(&v, Some(&fake_data_key()))), UID),
        SecretState::Done
    );
}

// ---------------------------------------------------------------------------------------------
// init_request

#[test]
fn init_request_by_seal() {
    assert_eq!(
        init_request(&shamir()),
        InitRequest::Shamir {
            shares: 5,
            threshold: 3
        }
    );
    assert_eq!(
        init_request(&awskms()),
        InitRequest::Recovery {
            shares: 7,
            threshold: 4
        }
    );
}

// ---------------------------------------------------------------------------------------------
// pending_secret and done_secret

fn assert_common_meta(s: &Secret, state: &str) {
    let m = &s.metadata;
    assert_eq!(m.name.as_deref(), Some("vault-init"));
    assert_eq!(m.namespace.as_deref(), Some("secrets"));
    // Not owned: deleting the SecretServer must keep the keys.
    assert_eq!(m.owner_references, None);
    assert_eq!(m.finalizers, None);
    let labels = m.labels.as_ref().expect("labels");
    assert_eq!(
        labels.get("app.kubernetes.io/name").map(String::as_str),
        Some("sealkeep")
    );
    assert_eq!(
        labels.get("app.kubernetes.io/instance").map(String::as_str),
        Some("vault")
    );
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("sealkeep-operator")
    );
    assert_eq!(
        labels.get(INIT_SECRET_FOR_LABEL).map(String::as_str),
        Some(UID)
    );
    let annotations = m.annotations.as_ref().expect("annotations");
    assert_eq!(
        annotations.get(INIT_STATE_ANNOTATION).map(String::as_str),
        Some(state)
    );
    assert_eq!(
        annotations.get(OWNER_UID_ANNOTATION).map(String::as_str),
        Some(UID)
    );
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
}

#[test]
fn pending_secret_is_an_empty_marker() {
    let s = pending_secret(&awskms());
    assert_common_meta(&s, "pending");
    assert_eq!(s.data, None);
    assert_eq!(s.string_data, None);
    assert_eq!(INIT_STATE_ANNOTATION, "sealkeep.dev/init-state");
}

#[test]
fn done_secret_for_awskms_is_an_envelope_of_the_recovery_keys() {
    let v = awskms();
    let s = done(&v, Some(&fake_data_key()));
    assert_common_meta(&s, "done");
    let data = s.data.as_ref().expect("data");
    for (k, b) in data {
        let text = String::from_utf8_lossy(&b.0);
        assert!(
            !text.contains("SUPER-SECRET") && !text.contains("RECOVERY-SHARE"),
            "{k} is in clear"
        );
    }
    assert_eq!(self::data(&s, "format"), "awskms-envelope-v1");
    assert_eq!(self::data(&s, "key-type"), "recovery");
    assert_eq!(self::data(&s, "threshold"), "4");
    assert_eq!(self::data(&s, "kms-key-id"), FakeKms::KEY_ARN);
    assert_eq!(self::data(&s, "kms-region"), "eu-west-1");
    let Ok(Stored::Envelope(env)) = parse(data) else {
        panic!("an envelope");
    };
    let c = open(&env, &fake_data_key().plaintext, "secrets", "vault-init").expect("opens");
    assert_eq!(c.root_token.as_deref(), Some("hvs.SUPER-SECRET-ROOT-TOKEN"));
    assert_eq!(
        c.keys,
        ["RECOVERY-SHARE-1", "RECOVERY-SHARE-2", "RECOVERY-SHARE-3"]
    );
    assert_eq!(s.string_data, None);
}

#[test]
fn done_secret_for_shamir_holds_unseal_keys_in_clear() {
    let v = shamir();
    let s = done(&v, None);
    assert_eq!(s.metadata.name.as_deref(), Some("shamir-init"));
    assert_eq!(s.metadata.owner_references, None);
    assert_eq!(data(&s, "format"), "plain-v1");
    assert_eq!(data(&s, "keys"), "UNSEAL-SHARE-1\nUNSEAL-SHARE-2");
    assert_eq!(data(&s, "key-type"), "unseal");
    assert_eq!(data(&s, "threshold"), "3");
    assert_eq!(data(&s, "root-token"), "hvs.SUPER-SECRET-ROOT-TOKEN");
    assert_eq!(data(&s, "root-token-revoked"), "false");
}

#[test]
fn init_response_debug_hides_secrets() {
    let resp = init_response();
    let dbg = format!("{resp:?}");
    for secret in [
        "hvs.SUPER-SECRET-ROOT-TOKEN",
        "SUPER-SECRET",
        "UNSEAL-SHARE",
        "RECOVERY-SHARE",
    ] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
    assert!(dbg.contains("redacted"), "{dbg}");
    let pretty = format!("{resp:#?}");
    assert!(!pretty.contains("SUPER-SECRET"), "{pretty}");
}

#[test]
fn init_response_without_keys_defaults_to_empty() {
    let resp: InitResponse =
        serde_json::from_value(serde_json::json!({"root_token": "t"})).expect("decodes");
    assert!(resp.keys_base64.is_empty());
    assert!(resp.recovery_keys_base64.is_empty());
    let v = shamir();
    let s = done_secret(&v, &contents(&v, &resp), None).expect("secret");
    assert_eq!(data(&s, "keys"), "");
}
