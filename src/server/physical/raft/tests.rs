//! Tests of the raft backend: the physical contract on a one-node cluster, durability across
//! orderly and crash-like restarts, cluster formation only on request, and the node id file.
//! Storage-level tests (openraft's suite, snapshots) are in `tests/storage.rs`; multi-node
//! tests over the cluster port in `tests/cluster.rs`.

mod admin;
mod cluster;
mod storage;

use std::path::Path;
use std::time::{Duration, Instant};

use super::{NodeInfo, RaftBackend, RaftRole, RaftTiming};
use crate::server::physical::{Physical, PhysicalError, TxnOp, contract};

/// Faster than production so the tests spend little time electing; still far above the
/// heartbeat, so a loaded machine does not see spurious elections.
fn timing() -> RaftTiming {
    RaftTiming {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(300),
        election_max: Duration::from_millis(600),
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        name: "sealkeep-0".into(),
        api_addr: "http://127.0.0.1:8200".into(),
        cluster_addr: "https://127.0.0.1:8201".into(),
    }
}

/// Opens `dir`, retrying (bounded) while a dropped predecessor's tasks still hold the files.
async fn reopen(dir: &Path) -> RaftBackend {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RaftBackend::open(dir, None, node(), timing()).await {
            Ok(b) => return b,
            Err(e) if Instant::now() < deadline && e.to_string().contains("already open") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

async fn single_node(dir: &Path) -> RaftBackend {
    let b = RaftBackend::open(dir, None, node(), timing())
        .await
        .expect("open");
    b.initialize_single().await.expect("initialize");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_passes_on_a_single_node_cluster() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    assert_eq!(b.kind(), "raft");
    let status = b.status();
    assert_eq!(status.role, RaftRole::Leader);
    assert_eq!(status.leader_id, Some(b.node_id()));
    assert_eq!(status.leader, Some(node()));
    assert_eq!(status.voters, vec![(b.node_id(), node())]);
    contract::run(&b).await;
    // Metrics are published a moment after a write returns: wait (bounded) for them to settle.
    b.inner
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.last_applied.is_some() && m.local_committed == m.last_applied,
            "applied catches up with committed",
        )
        .await
        .expect("metrics settle");
    let after = b.status();
    assert!(after.applied_index > status.applied_index);
    assert_eq!(after.committed_index, after.applied_index);
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_shutdown_and_crash_like_drop() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    let id = b.node_id();
    for i in 0..20 {
        b.put(&format!("k/{i}"), vec![i as u8; 64])
            .await
            .expect("put");
    }
    b.delete("k/0").await.expect("delete");
    b.shutdown().await.expect("shutdown");
    drop(b);

    // Orderly restart: same id, still initialized, leads again by itself, data intact.
    let b = reopen(dir.path()).await;
    assert_eq!(b.node_id(), id, "the node id must survive a restart");
    assert!(b.is_initialized().await.expect("initialized"));
    b.wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    assert_eq!(b.get("k/0").await.expect("get"), None);
    for i in 1..20 {
        assert_eq!(
            b.get(&format!("k/{i}")).await.expect("get"),
            Some(vec![i as u8; 64])
        );
    }
    b.transaction(vec![
        TxnOp::Put {
            key: "crash/a".into(),
            value: b"a".to_vec(),
        },
        TxnOp::Delete { key: "k/1".into() },
    ])
    .await
    .expect("txn");

    // Crash-like: no shutdown, the handle is just dropped.
    drop(b);
    let b = reopen(dir.path()).await;
    assert_eq!(b.node_id(), id);
    b.wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    assert_eq!(b.get("crash/a").await.expect("get"), Some(b"a".to_vec()));
    assert_eq!(b.get("k/1").await.expect("get"), None);
    assert_eq!(b.get("k/19").await.expect("get"), Some(vec![19u8; 64]));
    assert_eq!(b.list("crash/").await.expect("list"), vec!["a"]);
    b.shutdown().await.expect("shutdown");
}

/// Copies every file under `from` into `to` (same layout).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_crash_that_loses_unsynced_applies() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    for i in 0..20 {
        b.put(&format!("k/{i}"), vec![i as u8; 64])
            .await
            .expect("put");
    }
    // The image a power loss would leave: redb writes a commit made without an fsync into the
    // file, but points the file's header at it only with the next durable commit, so a copy of
    // the files taken now holds only what was synced.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let image = tempfile::tempdir().expect("image");
    copy_tree(dir.path(), image.path());
    b.shutdown().await.expect("shutdown");
    {
        // The state machine's applies were not synced, so the image's state machine is behind:
        // what follows exercises the replay from the log, not a state machine that kept it all.
        use openraft::storage::RaftStateMachine;
        let mut sm = super::state_machine::StateMachine::open(&image.path().join(super::RAFT_DIR))
            .expect("open the image's state machine");
        let (applied, _) = sm.applied_state().await.expect("applied state");
        assert!(
            applied.is_none_or(|id| id.index() < 20),
            "the image's state machine has every write applied ({applied:?}); the test cannot tell a replay from a kept state"
        );
    }
    let c = reopen(image.path()).await;
    c.wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    for i in 0..20 {
        assert_eq!(
            c.get(&format!("k/{i}")).await.expect("get"),
            Some(vec![i as u8; 64]),
            "acknowledged write k/{i} lost in the crash"
        );
    }
    c.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_snapshot_and_log_purge_through_raft() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    for i in 0..10 {
        b.put(&format!("s/{i}"), vec![i as u8]).await.expect("put");
    }
    let raft = &b.inner.raft;
    raft.trigger().snapshot().await.expect("trigger snapshot");
    let m = raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.snapshot.is_some(), "a snapshot")
        .await
        .expect("snapshot built");
    let upto = m.snapshot.map(|id| id.index()).expect("snapshot index");
    raft.trigger().purge_log(upto).await.expect("trigger purge");
    raft.wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.map(|id| id.index()) == Some(upto),
            "purged log",
        )
        .await
        .expect("log purged");
    b.put("s/after", b"x".to_vec())
        .await
        .expect("put after purge");
    b.shutdown().await.expect("shutdown");
    drop(b);

    let b = reopen(dir.path()).await;
    b.wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    for i in 0..10 {
        assert_eq!(
            b.get(&format!("s/{i}")).await.expect("get"),
            Some(vec![i as u8])
        );
    }
    assert_eq!(b.get("s/after").await.expect("get"), Some(b"x".to_vec()));
    b.shutdown().await.expect("shutdown");
}

fn assert_uninitialized_error(e: PhysicalError) {
    match &e {
        PhysicalError::NotLeader {
            leader_api_addr: None,
            reason,
        } => assert!(
            reason.contains("sys/init") && reason.contains("join"),
            "{e}"
        ),
        other => panic!("expected NotLeader without a leader, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_never_forms_a_cluster_by_itself() {
    let dir = tempfile::tempdir().expect("dir");
    let b = RaftBackend::open(dir.path(), None, node(), timing())
        .await
        .expect("open");
    assert!(!b.is_initialized().await.expect("initialized"));
    // Longer than several election timeouts: still nobody's leader, still no cluster.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = b.status();
    assert!(!status.initialized);
    assert_eq!(status.leader_id, None);
    assert_ne!(status.role, RaftRole::Leader);
    assert_uninitialized_error(b.put("k", b"v".to_vec()).await.expect_err("put"));
    assert_uninitialized_error(b.get("k").await.expect_err("get"));
    assert_uninitialized_error(b.list("").await.expect_err("list"));
    b.shutdown().await.expect("shutdown");
    drop(b);

    // Reopening does not initialize either; only initialize_single does, exactly once.
    let b = reopen(dir.path()).await;
    assert!(!b.is_initialized().await.expect("initialized"));
    b.initialize_single().await.expect("initialize");
    b.put("k", b"v".to_vec()).await.expect("put after init");
    let again = b.initialize_single().await.expect_err("second initialize");
    assert!(again.to_string().contains("already initialized"), "{again}");
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_oversized_requests_propose_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    let before = b.status().last_log_index;
    let err = b
        .transaction(vec![
            TxnOp::Put {
                key: "ok".into(),
                value: b"1".to_vec(),
            },
            TxnOp::Put {
                key: "/abs".into(),
                value: b"2".to_vec(),
            },
        ])
        .await
        .expect_err("invalid key");
    assert!(matches!(err, PhysicalError::InvalidKey { .. }), "{err}");
    let err = b
        .put("big", vec![0; super::MAX_ENTRY_SIZE])
        .await
        .expect_err("oversized");
    assert!(err.to_string().contains("1 MiB"), "{err}");
    assert_eq!(b.status().last_log_index, before, "nothing reached the log");
    assert_eq!(b.get("ok").await.expect("get"), None);
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_id_is_persisted_and_a_different_configured_id_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let b = RaftBackend::open(dir.path(), Some(42), node(), timing())
        .await
        .expect("open");
    assert_eq!(b.node_id(), 42);
    b.shutdown().await.expect("shutdown");
    drop(b);
    let b = reopen(dir.path()).await;
    assert_eq!(
        b.node_id(),
        42,
        "the persisted id is used when none is configured"
    );
    b.shutdown().await.expect("shutdown");
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match RaftBackend::open(dir.path(), Some(7), node(), timing()).await {
            Err(e) if e.to_string().contains("already open") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => break e,
            Ok(_) => panic!("a different configured id must be refused"),
        }
    };
    assert!(
        err.to_string().contains("42") && err.to_string().contains("node_id"),
        "{err}"
    );
}

#[test]
fn performance_multiplier_scales_and_is_bounded() {
    let t = RaftTiming::with_performance_multiplier(3).expect("valid");
    assert_eq!(t.heartbeat, Duration::from_millis(300));
    assert_eq!(t.election_min, Duration::from_millis(1200));
    assert_eq!(t.election_max, Duration::from_millis(2400));
    assert_eq!(
        RaftTiming::with_performance_multiplier(1).expect("valid"),
        RaftTiming::default()
    );
    for bad in [0, 11] {
        let e = RaftTiming::with_performance_multiplier(bad).expect_err("out of range");
        assert!(e.to_string().contains("performance_multiplier"), "{e}");
    }
    let config = RaftTiming::default().config().expect("config");
    assert_eq!(config.heartbeat_interval, 100);
    assert_eq!(
        (config.election_timeout_min, config.election_timeout_max),
        (400, 800)
    );
    assert_eq!(config.enable_pre_vote, Some(true));
}
