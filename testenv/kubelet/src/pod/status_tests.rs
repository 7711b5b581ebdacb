//! Unit tests of pod status computation (pure).

use super::*;
use k8s_openapi::api::core::v1::Container;
use tokio::time::Instant;

use crate::pod::container::Running;

fn rt(name: &str, kind: Kind) -> ContainerRt {
    ContainerRt::new(
        Container {
            name: name.into(),
            image: Some("img".into()),
            ..Default::default()
        },
        kind,
    )
}

fn run(c: &mut ContainerRt) {
    c.running = Some(Running {
        pid: 4242,
        start_ticks: 1,
        started_at: Timestamp::now(),
        since: Instant::now(),
        child: None,
        kill_at: None,
        log_offset: 0,
    });
    c.started_before = true;
}

fn term(code: i32) -> Terminated {
    Terminated {
        exit_code: code,
        signal: None,
        reason: if code == 0 { "Completed" } else { "Error" }.into(),
        message: None,
        started_at: None,
        finished_at: Timestamp::now(),
        pid: 7,
    }
}

#[test]
fn phases() {
    let mut cs = vec![rt("init", Kind::Init), rt("main", Kind::Regular)];
    assert_eq!(phase(&cs, false), "Pending");
    assert_eq!(phase(&cs, true), "Pending", "init not done");
    cs[0].completed = true;
    assert_eq!(phase(&cs, true), "Pending", "main not started");
    run(&mut cs[1]);
    assert_eq!(phase(&cs, true), "Running");
    cs[1].running = None;
    cs[1].terminated = Some(term(0));
    assert_eq!(phase(&cs, true), "Succeeded");
    cs[1].terminated = Some(term(3));
    assert_eq!(phase(&cs, true), "Failed");
    let mut failed_init = vec![rt("init", Kind::Init), rt("main", Kind::Regular)];
    failed_init[0].terminated = Some(term(1));
    assert_eq!(phase(&failed_init, true), "Failed");
}

#[test]
fn container_states_and_readiness() {
    let mut c = rt("main", Kind::Regular);
    let s = container_status(&c, "ContainerCreating");
    assert_eq!(
        s.state.and_then(|s| s.waiting).and_then(|w| w.reason),
        Some("ContainerCreating".into())
    );
    assert!(!s.ready);
    run(&mut c);
    c.restart_count = 2;
    c.last_state = Some(term(1));
    let s = container_status(&c, "ContainerCreating");
    assert!(s.ready, "no readiness probe: ready when running");
    assert_eq!(s.started, Some(true));
    assert_eq!(s.container_id.as_deref(), Some("pkubelet://4242"));
    assert_eq!(s.restart_count, 2);
    assert!(s.state.and_then(|s| s.running).is_some());
    assert_eq!(
        s.last_state.and_then(|s| s.terminated).map(|t| t.exit_code),
        Some(1)
    );

    let mut probed = rt("p", Kind::Regular);
    probed.readiness = crate::probe::ProbeState::new(Some(Default::default()));
    run(&mut probed);
    assert!(
        !container_status(&probed, "x").ready,
        "readiness probe not passed yet"
    );
}

#[test]
fn conditions_keep_transition_times() {
    let mut conds = Conditions::default();
    conds.set("Ready", false, Some("ContainersNotReady"));
    let t0 = conds.to_vec(&OWN_CONDITIONS, &[])[0]
        .last_transition_time
        .clone();
    conds.set("Ready", false, Some("ContainersNotReady"));
    assert_eq!(
        conds.to_vec(&OWN_CONDITIONS, &[])[0].last_transition_time,
        t0
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    conds.set("Ready", true, None);
    let v = conds.to_vec(&OWN_CONDITIONS, &[]);
    assert_eq!(v[0].status, "True");
    assert_ne!(v[0].last_transition_time, t0);
    let foreign = PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        ..Default::default()
    };
    let v = conds.to_vec(&OWN_CONDITIONS, std::slice::from_ref(&foreign));
    assert_eq!(v.last().map(|c| c.type_.as_str()), Some("DisruptionTarget"));
}

#[test]
fn patch_document() {
    let mut cs = vec![rt("main", Kind::Regular)];
    run(&mut cs[0]);
    let conds = Conditions::default();
    let p = patch(&StatusInput {
        uid: "u-1",
        containers: &cs,
        conditions: &conds,
        foreign_conditions: &[],
        phase: "Running",
        pod_ip: Some(Ipv4Addr::new(198, 18, 1, 1)),
        host_ip: Ipv4Addr::new(198, 18, 0, 1),
        start_time: Timestamp::now(),
        message: None,
    });
    assert_eq!(p["metadata"]["uid"], "u-1");
    assert_eq!(p["status"]["podIP"], "198.18.1.1");
    assert_eq!(p["status"]["podIPs"][0]["ip"], "198.18.1.1");
    assert_eq!(p["status"]["hostIP"], "198.18.0.1");
    assert_eq!(
        p["status"]["containerStatuses"][0]["containerID"],
        "pkubelet://4242"
    );
    assert!(p["status"].get("initContainerStatuses").is_none());
}
