//! Tests of the raft backend's administration on one node: snapshot export and restore
//! through the log, step-down with no other voter, the cluster state, and the restore
//! entry's encoding.

use super::super::types::{Request, decode, encode};
use super::{node, single_node};
use crate::server::physical::{Physical, RaftSnapshot, TxnOp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_export_then_restore_brings_the_old_state_back() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    b.put("a", b"1".to_vec()).await.expect("put a");
    b.put("dir/b", b"2".to_vec()).await.expect("put b");
    let snap = b.export_snapshot().await.expect("export");
    assert_eq!(snap.get("a"), Some(&b"1"[..]));
    assert!(snap.index > 0, "{snap:?}");
    let archive = snap.encode().expect("encode");

    b.put("c", b"3".to_vec()).await.expect("put c");
    b.delete("a").await.expect("delete a");
    b.put("dir/b", b"changed".to_vec())
        .await
        .expect("overwrite b");

    let replaced = b.state_replaced();
    assert_eq!(*replaced.borrow(), 0);
    let parsed = RaftSnapshot::decode(&archive).expect("decode");
    b.restore_snapshot(parsed).await.expect("restore");
    assert_eq!(*replaced.borrow(), 1, "the restore is announced");
    assert_eq!(b.get("a").await.expect("get a"), Some(b"1".to_vec()));
    assert_eq!(b.get("dir/b").await.expect("get b"), Some(b"2".to_vec()));
    assert_eq!(
        b.get("c").await.expect("get c"),
        None,
        "keys written after the snapshot are gone"
    );
    assert_eq!(
        b.list("").await.expect("list"),
        vec!["a".to_owned(), "dir/".to_owned()]
    );
    // Writes go on normally after a restore.
    b.put("d", b"4".to_vec()).await.expect("put d");
    assert_eq!(b.get("d").await.expect("get d"), Some(b"4".to_vec()));
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_with_an_invalid_key_is_refused_before_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    let before = b.status().last_log_index;
    let bad = RaftSnapshot {
        index: 1,
        term: 1,
        kv: vec![("".into(), b"x".to_vec())],
    };
    assert!(b.restore_snapshot(bad).await.is_err());
    assert_eq!(b.status().last_log_index, before, "nothing reached the log");
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_down_on_a_lone_voter_says_there_is_no_other_voter() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    let err = b
        .step_down(std::time::Duration::from_secs(2))
        .await
        .expect_err("no other voter");
    assert!(err.to_string().contains("only voter"), "{err}");
    assert!(b.is_leader(), "still the leader");
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_state_of_a_single_node() {
    let dir = tempfile::tempdir().expect("dir");
    let b = single_node(dir.path()).await;
    b.put("k", b"v".to_vec()).await.expect("put");
    let st = b.cluster_state();
    assert!(st.is_leader);
    assert_eq!(st.leader_id, Some(b.node_id()));
    // `initialize` writes the first membership at log index 0.
    assert!(st.membership_index <= st.last_log_index, "{st:?}");
    assert_eq!(st.voter_ids().collect::<Vec<_>>(), vec![b.node_id()]);
    let [me] = st.servers.as_slice() else {
        panic!("one server expected: {st:?}");
    };
    assert_eq!(me.node, node());
    assert!(me.leader && me.voter);
    assert_eq!(me.last_contact, Some(std::time::Duration::ZERO));
    let (index, term) = me.matched.expect("own progress");
    assert_eq!(index, st.last_log_index);
    assert_eq!(term, st.term);
    b.shutdown().await.expect("shutdown");
}

#[test]
fn restore_entries_encode_apart_from_operation_entries() {
    let ops = Request::Ops(vec![
        TxnOp::Put {
            key: "a".into(),
            value: b"1".to_vec(),
        },
        TxnOp::Delete { key: "b".into() },
    ]);
    let restore = Request::Restore(vec![("a".into(), b"1".to_vec())]);
    for r in [
        &ops,
        &restore,
        &Request::Ops(Vec::new()),
        &Request::Restore(Vec::new()),
    ] {
        let bytes = encode(r).expect("encode");
        let back: Request = decode(&bytes, "request").expect("decode");
        assert_eq!(&back, r);
    }
    assert!(
        restore.to_string().starts_with("restore(1 keys"),
        "{restore}"
    );
}
