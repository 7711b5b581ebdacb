//! Storage-level tests: openraft's conformance suite on the redb log store and state machine,
//! and the snapshot build/install round trip.

use std::io;

use futures::stream;
use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{RaftSnapshotBuilder, StorageError};
use tempfile::TempDir;

use super::super::log_store::LogStore;
use super::super::state_machine::{self, StateMachine};
use super::super::types::{Entry, Request, TypeConfig};
use crate::server::physical::TxnOp;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir =
            tempfile::tempdir().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let log = LogStore::open(dir.path())
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let sm = StateMachine::open(dir.path())
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(Builder)
        .await
        .expect("openraft's storage suite on the redb log store and state machine");
}

fn put(key: &str, value: &[u8]) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

fn normal(index: u64, ops: Vec<TxnOp>) -> Entry {
    Entry::new_normal(
        openraft::testing::log_id::<TypeConfig>(1, 1, index),
        Request::Ops(ops),
    )
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) {
    let items: Vec<io::Result<_>> = entries.into_iter().map(|e| Ok((e, None))).collect();
    sm.apply(stream::iter(items)).await.expect("apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_build_then_install_replaces_the_whole_state() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut leader = StateMachine::open(dir_a.path()).expect("open");
    let membership = openraft::testing::membership_ent::<TypeConfig>(
        1,
        1,
        1,
        vec![std::collections::BTreeSet::from([1])],
    );
    let bin: Vec<u8> = (0..=255u8).collect();
    apply(
        &mut leader,
        vec![
            membership,
            normal(2, vec![put("a/1", b"one"), put("a/2", b"two")]),
            normal(
                3,
                vec![put("bin", &bin), TxnOp::Delete { key: "a/2".into() }],
            ),
        ],
    )
    .await;
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    assert_eq!(
        snapshot.meta.last_log_id.as_ref().map(|id| id.index()),
        Some(3)
    );

    // The follower holds a key the leader never had: installing must drop it.
    let mut follower = StateMachine::open(dir_b.path()).expect("open");
    apply(&mut follower, vec![normal(1, vec![put("stale", b"x")])]).await;
    let current = leader
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(current.meta, snapshot.meta);
    follower
        .install_snapshot(&current.meta, current.snapshot)
        .await
        .expect("install");

    let db = follower.db();
    assert_eq!(
        state_machine::read_value(db, "a/1").expect("get"),
        Some(b"one".to_vec())
    );
    assert_eq!(state_machine::read_value(db, "a/2").expect("get"), None);
    assert_eq!(
        state_machine::read_value(db, "bin").expect("get"),
        Some(bin)
    );
    assert_eq!(state_machine::read_value(db, "stale").expect("get"), None);
    assert_eq!(
        follower.applied_state().await.expect("state"),
        leader.applied_state().await.expect("state")
    );
    let installed = follower
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(installed.meta, snapshot.meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_with_mismatched_metadata_is_refused_and_changes_nothing() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut leader = StateMachine::open(dir_a.path()).expect("open");
    apply(&mut leader, vec![normal(1, vec![put("k", b"v")])]).await;
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    let mut follower = StateMachine::open(dir_b.path()).expect("open");
    apply(&mut follower, vec![normal(1, vec![put("mine", b"v")])]).await;
    let mut meta = snapshot.meta.clone();
    meta.last_log_id = Some(openraft::testing::log_id::<TypeConfig>(1, 1, 9));
    let err = follower
        .install_snapshot(&meta, snapshot.snapshot)
        .await
        .expect_err("mismatched metadata");
    assert!(err.to_string().contains("metadata"), "{err}");
    let db = follower.db();
    assert_eq!(
        state_machine::read_value(db, "mine").expect("get"),
        Some(b"v".to_vec())
    );
    assert_eq!(state_machine::read_value(db, "k").expect("get"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_survives_reopen_with_vote_and_purge() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let mut log = LogStore::open(dir.path()).expect("open");
        for i in 0..5 {
            let (tx, rx) = TypeConfig::oneshot();
            log.append(
                [normal(i, vec![put("k", b"v")])],
                openraft::storage::IOFlushed::signal(tx),
            )
            .await
            .expect("append");
            rx.await.expect("callback called").expect("flushed");
        }
        let vote = openraft::impls::Vote::new_committed(1, 1);
        log.save_vote(&vote).await.expect("vote");
        log.purge(openraft::testing::log_id::<TypeConfig>(1, 1, 1))
            .await
            .expect("purge");
    }
    let mut log = LogStore::open(dir.path()).expect("reopen");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id.map(|id| id.index()), Some(1));
    assert_eq!(state.last_log_id.map(|id| id.index()), Some(4));
    let mut reader = log.get_log_reader().await;
    let entries = openraft::RaftLogReader::try_get_log_entries(&mut reader, 0..10)
        .await
        .expect("read");
    let indexes: Vec<u64> = entries.iter().map(|e| e.index()).collect();
    assert_eq!(indexes, vec![2, 3, 4]);
    assert!(
        openraft::RaftLogReader::read_vote(&mut reader)
            .await
            .expect("vote")
            .is_some()
    );
}
