//! Unit tests of container restart policy and back-off (pure).

use super::*;
use crate::state::{ContainerRecord, ProcRecord};

fn term(code: i32) -> Terminated {
    Terminated {
        exit_code: code,
        signal: None,
        reason: "Error".into(),
        message: None,
        started_at: None,
        finished_at: Timestamp::now(),
        pid: 1,
    }
}

fn rt(kind: Kind) -> ContainerRt {
    ContainerRt::new(
        Container {
            name: "c".into(),
            ..Default::default()
        },
        kind,
    )
}

#[test]
fn backoff_grows_caps_and_policy() {
    let now = Instant::now();
    let mut c = rt(Kind::Regular);
    let mut delays = Vec::new();
    for _ in 0..8 {
        c.finish(term(1), "Always", now);
        delays.push(c.next_start.map(|t| t.duration_since(now).as_secs()));
    }
    assert_eq!(
        delays,
        [0, 10, 20, 40, 80, 160, 300, 300].map(Some).to_vec()
    );
    assert_eq!(
        c.waiting.as_ref().map(|w| w.0.as_str()),
        Some("CrashLoopBackOff")
    );
    assert!(c.terminated.is_none());

    let mut never = rt(Kind::Regular);
    never.finish(term(1), "Never", now);
    assert!(never.terminated.is_some() && !never.may_start(now));
    let mut on_failure = rt(Kind::Regular);
    on_failure.finish(term(0), "OnFailure", now);
    assert_eq!(on_failure.terminated.as_ref().map(|t| t.exit_code), Some(0));
}

#[test]
fn init_containers_complete_or_retry() {
    let now = Instant::now();
    let mut ok = rt(Kind::Init);
    ok.finish(term(0), "Always", now);
    assert!(ok.completed && !ok.may_start(now));
    let mut bad = rt(Kind::Init);
    bad.finish(term(2), "Always", now);
    assert!(
        !bad.completed && bad.may_start(now),
        "failed init container is retried"
    );
    let mut bad_never = rt(Kind::Init);
    bad_never.finish(term(2), "Never", now);
    assert!(bad_never.terminated.is_some());
    let mut sidecar = rt(Kind::Sidecar);
    sidecar.finish(term(0), "Never", now);
    assert!(sidecar.may_start(now), "sidecars always restart");
}

#[test]
fn adoption_restores_state() {
    let now = Instant::now();
    let done = ContainerRecord {
        final_exit: Some(0),
        started: true,
        ..Default::default()
    };
    let mut c = rt(Kind::Regular);
    c.adopt(&done, "Never", now);
    assert_eq!(c.terminated.as_ref().map(|t| t.exit_code), Some(0));
    assert!(!c.may_start(now));

    let looping = ContainerRecord {
        restart_count: 4,
        started: true,
        backoff_secs: 40,
        ..Default::default()
    };
    let mut c = rt(Kind::Regular);
    c.adopt(&looping, "Always", now);
    assert_eq!(c.restart_count, 4);
    assert!(!c.may_start(now) && c.may_start(now + Duration::from_secs(40)));
    assert_eq!(
        c.waiting.as_ref().map(|w| w.0.as_str()),
        Some("CrashLoopBackOff")
    );

    let pid = i32::try_from(std::process::id()).expect("pid");
    let (_, start_ticks) = crate::proc::stat(pid).expect("stat");
    let started_at = "2026-01-01T00:00:00Z".to_string();
    let live = ContainerRecord {
        started: true,
        proc: Some(ProcRecord {
            pid,
            start_ticks,
            started_at: started_at.clone(),
        }),
        ..Default::default()
    };
    let mut c = rt(Kind::Regular);
    c.adopt(&live, "Always", now);
    assert_eq!(c.running.as_ref().map(|r| r.pid), Some(pid));
    assert!(
        c.running.as_ref().is_some_and(|r| r.child.is_none()),
        "adopted: polled via /proc"
    );

    let dead = ContainerRecord {
        started: true,
        proc: Some(ProcRecord {
            pid,
            start_ticks: start_ticks + 1,
            started_at,
        }),
        ..Default::default()
    };
    let mut c = rt(Kind::Regular);
    c.adopt(&dead, "Always", now);
    assert!(c.running.is_none());
    assert_eq!(
        c.last_state.as_ref().map(|t| t.reason.as_str()),
        Some("ContainerStatusUnknown")
    );
    assert!(
        c.may_start(now),
        "first restart after a lost process is immediate"
    );
    assert!(c.started_before, "the next process counts as a restart");
}
