use std::time::Duration;

use super::*;
use crate::operator::build::fixtures::{DEFAULT_IMAGE, server};
use crate::operator::crd::SecretServerStatus;
use crate::operator::validate::{Validated, validate};

fn ss(spec: &str) -> SecretServer {
    server(&format!(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  seal:\n    shamir: {{}}\n{spec}"
    ))
}

fn check(spec: &str) -> Result<Validated, ValidationError> {
    validate(&ss(spec), Some(DEFAULT_IMAGE))
}

fn raft(spec: &str) -> Raft {
    match check(spec).expect("valid").storage {
        Storage::Raft(r) => r,
        Storage::File => panic!("raft expected"),
    }
}

#[test]
fn a_new_server_gets_raft_and_an_explicit_type_wins() {
    assert_eq!(storage_type(&ss("")), StorageType::Raft);
    assert_eq!(
        check("").expect("valid").storage,
        Storage::Raft(Raft::default())
    );
    assert_eq!(
        storage_type(&ss("  storage:\n    type: file\n")),
        StorageType::File
    );
    assert_eq!(
        check("  storage:\n    type: file\n")
            .expect("valid")
            .storage,
        Storage::File
    );
    assert_eq!(
        storage_type(&ss("  storage:\n    type: raft\n")),
        StorageType::Raft
    );
}

#[test]
fn a_running_server_keeps_its_storage_while_the_type_is_unset() {
    let with = |status: SecretServerStatus| {
        let mut s = ss("");
        s.status = Some(status);
        storage_type(&s)
    };
    // Reconciled by an operator from before storage types: a file server.
    let legacy = SecretServerStatus {
        observed_generation: Some(4),
        seal_type: Some("awskms".into()),
        ..SecretServerStatus::default()
    };
    assert_eq!(with(legacy.clone()), StorageType::File);
    // What this operator recorded.
    for t in [StorageType::File, StorageType::Raft] {
        let recorded = SecretServerStatus {
            storage_type: Some(t),
            ..legacy.clone()
        };
        assert_eq!(with(recorded), t);
    }
    // Only ever refused as invalid (no sealType): it never ran, so it is new.
    let invalid_only = SecretServerStatus {
        observed_generation: Some(1),
        reason: Some("InvalidSpec".into()),
        ..SecretServerStatus::default()
    };
    assert_eq!(with(invalid_only), StorageType::Raft);
    // The spec wins over the status.
    let mut s = ss("  storage:\n    type: raft\n");
    s.status = Some(legacy);
    assert_eq!(storage_type(&s), StorageType::Raft);
}

#[test]
fn a_file_server_has_one_replica_and_no_raft_settings() {
    assert_eq!(
        check("  replicas: 3\n  storage:\n    type: file\n").expect_err("refused"),
        ValidationError::FileReplicas(3)
    );
    assert_eq!(
        check("  storage:\n    type: file\n  raft:\n    performanceMultiplier: 2\n")
            .expect_err("refused"),
        ValidationError::RaftWithFile
    );
    let e = ValidationError::FileReplicas(3).to_string();
    assert!(e.contains("sealkeep operator migrate"), "{e}");
}

#[test]
fn performance_multiplier_uses_the_servers_limit() {
    for n in [1, MAX_PERFORMANCE_MULTIPLIER] {
        let r = raft(&format!("  raft:\n    performanceMultiplier: {n}\n"));
        assert_eq!(r.performance_multiplier, Some(n));
    }
    let too_big = i32::try_from(MAX_PERFORMANCE_MULTIPLIER).expect("small") + 1;
    for n in [0, -1, too_big] {
        assert_eq!(
            check(&format!("  raft:\n    performanceMultiplier: {n}\n")).expect_err("refused"),
            ValidationError::PerformanceMultiplier(n)
        );
    }
}

#[test]
fn autopilot_applies_the_fields_over_the_servers_defaults() {
    let r = raft(
        "  raft:\n    autopilot:\n      lastContactThreshold: 5s\n      serverStabilizationTime: 30s\n      cleanupDeadServers: true\n      minQuorum: 3\n      deadServerLastContactThreshold: 1h\n      maxTrailingLogs: 200\n",
    );
    let a = r.autopilot.expect("autopilot");
    assert_eq!(a.last_contact_threshold, Duration::from_secs(5));
    assert_eq!(a.server_stabilization_time, Duration::from_secs(30));
    assert!(a.cleanup_dead_servers);
    assert_eq!(a.min_quorum, 3);
    assert_eq!(
        a.dead_server_last_contact_threshold,
        Duration::from_secs(3600)
    );
    assert_eq!(a.max_trailing_logs, 200);
    let defaults = raft("  raft:\n    autopilot: {}\n")
        .autopilot
        .expect("autopilot");
    assert_eq!(defaults, AutopilotConfig::default());
    assert_eq!(raft("  raft: {}\n").autopilot, None);
}

#[test]
fn autopilot_errors_are_the_servers_rules_with_the_specs_field_names() {
    for (spec, needle) in [
        (
            "cleanupDeadServers: true",
            "minQuorum must be set to at least 3",
        ),
        (
            "lastContactThreshold: soon",
            "lastContactThreshold must be a duration",
        ),
        (
            "deadServerLastContactThreshold: 10s",
            "deadServerLastContactThreshold must be at least 1m",
        ),
        (
            "serverStabilizationTime: 0s",
            "serverStabilizationTime must be greater than 0s",
        ),
    ] {
        let e = check(&format!("  raft:\n    autopilot:\n      {spec}\n")).expect_err(spec);
        let msg = e.to_string();
        assert!(matches!(e, ValidationError::Autopilot(_)), "{msg}");
        assert!(msg.starts_with("spec.raft.autopilot: "), "{msg}");
        assert!(msg.contains(needle), "{spec}: {msg}");
        assert!(!msg.contains('_'), "server field names leak: {msg}");
    }
}

#[test]
fn a_raft_server_refuses_env_the_operator_sets_for_raft() {
    for name in [
        "VAULT_CLUSTER_ADDR",
        "VAULT_RAFT_NODE_ID",
        "VAULT_RAFT_PATH",
    ] {
        let env = format!("  env:\n    - name: {name}\n      value: x\n");
        assert_eq!(
            check(&env).expect_err(name),
            ValidationError::RaftReservedEnv(name.into())
        );
        // A file server does not use them.
        check(&format!("{env}  storage:\n    type: file\n")).expect(name);
    }
}

#[test]
fn the_status_records_the_storage_so_an_unset_type_keeps_it() {
    use crate::operator::status::{Facts, InitState, compute};
    let mut s = ss("  storage:\n    type: file\n");
    let v = validate(&s, Some(DEFAULT_IMAGE)).expect("valid");
    let facts = Facts {
        v: &v,
        pods: &[],
        init: InitState::Unknown,
        rolling: false,
        apply_error: None,
        upgrade: None,
    };
    let status = compute(&facts, None, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    assert_eq!(status.storage_type, Some(StorageType::File));
    s.spec.storage.type_ = None;
    s.status = Some(status);
    assert_eq!(storage_type(&s), StorageType::File);
}
