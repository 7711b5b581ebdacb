//! Formation of a raft cluster: the operator initializes ordinal 0 only, and treats the other
//! ordinals' "not initialized yet" as joining, never as a reason to initialize them.

use super::*;

/// A 3-replica awskms raft server.
fn raft3() -> Validated {
    validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  replicas: 3\n  storage:\n    type: raft\n  seal:\n    awsKms:\n      keyId: alias/k\n      region: eu-west-1\n",
    )
}

/// A 1-replica file server (storage type set explicitly).
fn file1() -> Validated {
    validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  storage:\n    type: file\n  seal:\n    awsKms:\n      keyId: alias/k\n      region: eu-west-1\n",
    )
}

fn ip(i: usize) -> String {
    format!("198.18.9.{}", 10 + i)
}

/// Three uninitialized pods with healthy KMS keys, listed in `order`.
fn three_uninitialized(order: [usize; 3]) -> Vec<PodObservation> {
    order
        .iter()
        .map(|&i| answering(&format!("vault-{i}"), &ip(i), false))
        .collect()
}

/// A seal status with a cluster id: the pod joined a cluster and waits for its log.
fn joined(name: &str, i: usize) -> PodObservation {
    let mut s = seal(false);
    s.cluster_id = Some("c0ffee".into());
    pod(
        name,
        Some(&ip(i)),
        Answer::Answered {
            seal: s,
            health: None,
            backend: Some(kms_backend(true, "")),
        },
    )
}

#[test]
fn raft_initializes_ordinal_zero_whatever_the_listing_order() {
    let v = raft3();
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
        assert_eq!(
            decide(&v, &three_uninitialized(order), SecretState::Absent),
            Decision::Initialize {
                pod: "vault-0".into(),
                ip: ip(0),
            },
            "{order:?}"
        );
    }
}

#[test]
fn raft_never_initializes_another_ordinal_when_zero_is_missing_or_silent() {
    let v = raft3();
    // Ordinal 0 absent: 1 and 2 wait for it to form the cluster.
    let pods = vec![
        answering("vault-1", &ip(1), false),
        answering("vault-2", &ip(2), false),
    ];
    assert_eq!(
        decide(&v, &pods, SecretState::Absent),
        Decision::Report(InitState::Pending)
    );
    // Ordinal 0 listed but not answering.
    let mut pods = pods;
    pods.insert(
        0,
        pod(
            "vault-0",
            Some(&ip(0)),
            Answer::Unreachable("refused".into()),
        ),
    );
    assert_eq!(
        decide(&v, &pods, SecretState::Pending),
        Decision::Report(InitState::Pending)
    );
}

#[test]
fn raft_joiners_uninitialized_after_formation_are_not_a_reason_to_initialize() {
    let v = raft3();
    // Ordinal 0 formed the cluster; 1 and 2 are still joining.
    let pods = vec![
        answering("vault-0", &ip(0), true),
        answering("vault-1", &ip(1), false),
        joined("vault-2", 2),
    ];
    assert_eq!(
        decide(&v, &pods, SecretState::Done),
        Decision::Report(InitState::Initialized {
            secret: Some("vault-init".into())
        })
    );
    // Ordinal 0 restarting while 1 and 2 are still joining: the Secret of the earlier init is
    // no conflict, since ordinal 0 may hold the data.
    let pods = vec![
        pod("vault-0", None, Answer::NotAsked),
        answering("vault-1", &ip(1), false),
        answering("vault-2", &ip(2), false),
    ];
    assert_eq!(
        decide(&v, &pods, SecretState::Done),
        Decision::Report(InitState::AwaitingPods {
            pods: vec!["vault-0".into()]
        })
    );
    // Every pod answers with empty storage: that one is a conflict.
    assert_eq!(
        decide(&v, &three_uninitialized([0, 1, 2]), SecretState::Done),
        Decision::Report(InitState::Conflict {
            secret: "vault-init".into()
        })
    );
}

#[test]
fn raft_a_pod_with_a_cluster_id_means_the_cluster_exists() {
    let v = raft3();
    let pods = vec![
        answering("vault-0", &ip(0), false),
        answering("vault-1", &ip(1), false),
        joined("vault-2", 2),
    ];
    for secret in [SecretState::Absent, SecretState::Pending] {
        assert_eq!(
            decide(&v, &pods, secret),
            Decision::Report(InitState::Pending)
        );
    }
}

#[test]
fn raft_awskms_needs_only_ordinal_zero_to_prove_its_key() {
    let v = raft3();
    let mut pods = three_uninitialized([0, 1, 2]);
    // A joiner still checking its key does not hold formation back.
    pods[2] = answering_with("vault-2", &ip(2), false, Some(kms_backend(false, "")));
    assert_eq!(
        decide(&v, &pods, SecretState::Absent),
        Decision::Initialize {
            pod: "vault-0".into(),
            ip: ip(0),
        }
    );
    // Ordinal 0 without a usable key: wait.
    pods[0] = answering_with(
        "vault-0",
        &ip(0),
        false,
        Some(kms_backend(false, "KMSKeyNotFound")),
    );
    assert_eq!(
        decide(&v, &pods, SecretState::Absent),
        Decision::Report(InitState::Pending)
    );
}

#[test]
fn raft_waits_for_every_desired_pod_before_forming() {
    let v = raft3();
    // A pod that is not listed yet may come back with a volume that holds the cluster's data.
    let pods = vec![
        answering("vault-0", &ip(0), false),
        answering("vault-1", &ip(1), false),
    ];
    assert_eq!(
        decide(&v, &pods, SecretState::Absent),
        Decision::Report(InitState::Pending)
    );
}

#[test]
fn raft_refusals_are_the_file_servers_ones() {
    let mut v = raft3();
    v.init.auto = false;
    assert_eq!(
        decide(&v, &three_uninitialized([0, 1, 2]), SecretState::Absent),
        Decision::Report(InitState::Manual)
    );
    let v = raft3();
    assert!(matches!(
        decide(
            &v,
            &three_uninitialized([0, 1, 2]),
            SecretState::Foreign("not ours".into())
        ),
        Decision::Report(InitState::Failed {
            reason: InitFailure::SecretForeign,
            ..
        })
    ));
}

#[test]
fn file_server_keeps_its_rules() {
    let v = file1();
    assert_eq!(v.storage, Storage::File);
    assert_eq!(
        decide(&v, &uninitialized(), SecretState::Absent),
        Decision::Initialize {
            pod: "vault-0".into(),
            ip: "198.18.9.5".into(),
        }
    );
    assert_eq!(
        decide(&v, &uninitialized(), SecretState::Done),
        Decision::Report(InitState::Conflict {
            secret: "vault-init".into()
        })
    );
    // A file server checks every pod's key, not only ordinal 0's.
    let pods = vec![answering_with("vault-0", "198.18.9.5", false, None)];
    assert_eq!(
        decide(&v, &pods, SecretState::Absent),
        Decision::Report(InitState::Pending)
    );
}
