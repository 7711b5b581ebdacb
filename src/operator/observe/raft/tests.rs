use super::*;
use crate::api_client::{RaftServer, SealStatus};
use crate::operator::build::fixtures::validated;
use crate::operator::observe::{Answer, PodView};
use crate::operator::upgrade::{self, Action, Phase};

fn raft3() -> Validated {
    validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  replicas: 3\n  storage:\n    type: raft\n  seal:\n    awsKms:\n      keyId: alias/k\n      region: eu-west-1\n",
    )
}

fn unsealed() -> SealStatus {
    serde_json::from_value(serde_json::json!({
        "type": "awskms", "initialized": true, "sealed": false, "t": 1, "n": 1, "progress": 0,
    }))
    .expect("seal status")
}

fn pod(i: u32, rev: &str) -> PodObservation {
    PodObservation {
        pod: PodView {
            name: format!("vault-{i}"),
            ip: Some(format!("198.18.9.{}", 10 + i)),
            phase: "Running".into(),
            ready: true,
            revision: Some(rev.into()),
            uid: Some(format!("uid-{i}")),
            ..PodView::default()
        },
        answer: Answer::Answered {
            seal: unsealed(),
            health: None,
            backend: None,
        },
    }
}

fn leader_answer(i: u32, leader: u32) -> Leader {
    Leader {
        ha_enabled: true,
        is_self: i == leader,
        leader_address: format!("http://vault-{leader}.vault-internal:8200"),
        leader_cluster_address: format!("https://vault-{leader}.vault-internal:8201"),
        raft_committed_index: Some(120),
        raft_applied_index: Some(120),
    }
}

fn config(voters: &[u32], non_voters: &[u32]) -> RaftConfiguration {
    let server = |i: &u32, voter| RaftServer {
        node_id: format!("vault-{i}"),
        address: format!("vault-{i}.vault-internal:8201"),
        leader: false,
        voter,
    };
    RaftConfiguration {
        index: 7,
        servers: voters
            .iter()
            .map(|i| server(i, true))
            .chain(non_voters.iter().map(|i| server(i, false)))
            .collect(),
    }
}

/// Three pods at `revs`, pod `leader` leads, all voters.
fn observed(revs: [&str; 3], leader: u32) -> (Vec<PodObservation>, RaftObservation) {
    let pods: Vec<PodObservation> = (0..3u32).map(|i| pod(i, revs[i as usize])).collect();
    let raft = RaftObservation {
        leaders: (0..3)
            .map(|i| (format!("vault-{i}"), Some(leader_answer(i, leader))))
            .collect(),
        configuration: Ok(config(&[0, 1, 2], &[])),
    };
    (pods, raft)
}

#[test]
fn the_leader_address_names_the_pod() {
    assert_eq!(
        pod_of_address("https://vault-1.vault-internal:8200").as_deref(),
        Some("vault-1")
    );
    assert_eq!(
        pod_of_address("http://vault-2.vault-internal.team.svc:8200/").as_deref(),
        Some("vault-2")
    );
    assert_eq!(pod_of_address("vault-0:8200").as_deref(), Some("vault-0"));
    assert_eq!(pod_of_address(""), None);
    assert_eq!(pod_of_address("https://"), None);
}

#[test]
fn planner_input_from_leaders_revisions_and_configuration() {
    let v = raft3();
    let (pods, raft) = observed(["old", "old", "new"], 1);
    let o = planner_input(&v, Some("new".into()), &pods, &raft);
    assert_eq!(o.name, "vault");
    assert_eq!(o.replicas, 3);
    assert_eq!(o.update_revision.as_deref(), Some("new"));
    assert_eq!(o.max_lag, AutopilotConfig::default().max_trailing_logs);
    assert_eq!(o.stabilization, Duration::from_secs(10));
    let m1 = &o.members[1];
    assert_eq!(m1.revision.as_deref(), Some("old"));
    let s1 = m1.server.as_ref().expect("answered");
    assert!(s1.unsealed && s1.leader);
    assert_eq!(s1.follows.as_deref(), Some("vault-1"));
    assert_eq!((s1.applied_index, s1.committed_index), (120, 120));
    let s0 = o.members[0].server.as_ref().expect("answered");
    assert!(!s0.leader);
    assert_eq!(s0.follows.as_deref(), Some("vault-1"));
    assert_eq!(
        o.membership,
        Ok(Membership {
            voters: vec!["vault-0".into(), "vault-1".into(), "vault-2".into()],
            non_voters: vec![],
        })
    );
}

#[test]
fn the_stabilization_time_and_lag_come_from_spec_raft_autopilot() {
    let v = validated(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n  replicas: 3\n  storage:\n    type: raft\n  raft:\n    autopilot:\n      serverStabilizationTime: 45s\n      maxTrailingLogs: 50\n  seal:\n    awsKms:\n      keyId: alias/k\n      region: eu-west-1\n",
    );
    let (pods, raft) = observed(["new"; 3], 0);
    let o = planner_input(&v, Some("new".into()), &pods, &raft);
    assert_eq!(o.stabilization, Duration::from_secs(45));
    assert_eq!(o.max_lag, 50);
}

#[test]
fn planner_input_keeps_why_the_configuration_is_unknown_and_silent_pods() {
    let v = raft3();
    let (mut pods, mut raft) = observed(["new"; 3], 0);
    raft.configuration = Err("no token".into());
    pods[2].answer = Answer::Unreachable("connection refused".into());
    raft.leaders[2].1 = None;
    let o = planner_input(&v, Some("new".into()), &pods, &raft);
    assert_eq!(o.membership, Err("no token".into()));
    assert_eq!(o.members[2].server, None);
    let non_voters = RaftObservation {
        configuration: Ok(config(&[0, 1], &[2])),
        ..raft
    };
    let o = planner_input(&v, Some("new".into()), &pods, &non_voters);
    assert_eq!(
        o.membership.expect("known").non_voters,
        vec!["vault-2".to_owned()]
    );
}

/// Observation and planner together: a 3-pod upgrade replaces the highest standby first,
/// moves leadership off the outdated leader, then replaces it.
#[test]
fn observed_pods_drive_the_planner_in_order() {
    let v = raft3();
    let now = k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("ts");
    let (pods, raft) = observed(["old"; 3], 0);
    let p = upgrade::plan(
        &planner_input(&v, Some("new".into()), &pods, &raft),
        None,
        now,
    );
    assert_eq!(p.action, Some(Action::DeletePod("vault-2".into())), "{p:?}");
    // Updated standbys: leadership moves once they have been stable for autopilot's
    // server_stabilization_time (the default 10 s here; no record of when they became healthy,
    // so it counts from the first observation).
    let (pods, raft) = observed(["old", "new", "new"], 0);
    let o = planner_input(&v, Some("new".into()), &pods, &raft);
    let p = upgrade::plan(&o, None, now);
    assert_eq!((p.phase, &p.action), (Phase::Waiting, &None), "{p:?}");
    assert!(p.message.contains("10 s required"), "{}", p.message);
    let later = k8s_openapi::jiff::Timestamp::from_second(1_800_000_010).expect("ts");
    let p = upgrade::plan(&o, p.progress.as_ref(), later);
    assert_eq!(p.action, Some(Action::StepDown("vault-0".into())), "{p:?}");
    let (pods, raft) = observed(["new"; 3], 2);
    let p = upgrade::plan(
        &planner_input(&v, Some("new".into()), &pods, &raft),
        None,
        now,
    );
    assert_eq!(p.phase, Phase::Idle, "{p:?}");
    // The StatefulSet controller has not observed the new template: nothing is done.
    let (pods, raft) = observed(["old"; 3], 0);
    let p = upgrade::plan(&planner_input(&v, None, &pods, &raft), None, now);
    assert_eq!((p.phase, p.action), (Phase::Idle, None));
}
