//! Tests of the redb file backend: the shared contract, durability across reopen, and group
//! commit (batching, isolation of a failing request, failed commits, shutdown).

use std::future::Future;
use std::pin::Pin;

use super::writer::testing::{self, Inject};
use super::*;
use crate::server::physical::contract;

fn put(key: &str, value: &[u8]) -> TxnOp {
    TxnOp::Put {
        key: key.to_owned(),
        value: value.to_vec(),
    }
}

/// A redb database with the backend's table, for driving batches directly.
fn raw_db(dir: &Path) -> (Database, PathBuf) {
    let file = dir.join(DB_FILE);
    let db = Database::create(&file).expect("create");
    let txn = db.begin_write().expect("begin");
    txn.open_table(TABLE).expect("table");
    txn.commit().expect("commit");
    (db, file)
}

fn read(db: &Database, key: &str) -> Option<Vec<u8>> {
    let txn = db.begin_read().expect("read txn");
    let table = txn.open_table(TABLE).expect("table");
    table.get(key).expect("get").map(|v| v.value().to_vec())
}

#[tokio::test]
async fn contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = FileBackend::open(dir.path()).expect("open");
    contract::run(&backend).await;
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let backend = FileBackend::open(dir.path()).expect("open");
        backend.put("a/b", b"one".to_vec()).await.expect("put");
    }
    let backend = FileBackend::open(dir.path()).expect("reopen");
    assert_eq!(
        backend.get("a/b").await.expect("get"),
        Some(b"one".to_vec())
    );
}

#[test]
fn unwritable_directory_is_a_clear_error() {
    let err = FileBackend::open(Path::new("/proc/sealkeep-cannot-exist")).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("/proc/sealkeep-cannot-exist"), "{msg}");
    assert!(msg.contains("writable"), "{msg}");
}

type Write<'a> = Pin<Box<dyn Future<Output = Result<(), PhysicalError>> + Send + 'a>>;

/// Queues `writes` while the test holds redb's write lock, so the writer thread cannot commit
/// until every request is in its channel; then releases the lock and awaits them all.
async fn queue_while_blocked(backend: &FileBackend, mut writes: Vec<Write<'_>>) {
    let blocker = backend.inner.db.begin_write().expect("hold the write lock");
    for w in &mut writes {
        // The first poll validates and sends the request; it cannot complete yet.
        assert!(futures::poll!(w.as_mut()).is_pending());
    }
    blocker.abort().expect("release the write lock");
    for (i, result) in futures::future::join_all(writes)
        .await
        .into_iter()
        .enumerate()
    {
        result.unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
}

#[tokio::test]
async fn queued_writes_share_commits_within_the_batch_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = FileBackend::open(dir.path()).expect("open");
    let keys: Vec<String> = (0..100).map(|i| format!("k/{i}")).collect();
    let writes = keys.iter().map(|k| backend.put(k, vec![1; 100])).collect();
    queue_while_blocked(&backend, writes).await;
    // The writer took one or more requests before it blocked, and everything else at once.
    let stats = backend.write_stats();
    assert_eq!(stats.requests, 100);
    assert!((1..=2).contains(&stats.commits), "{stats:?}");

    // 600 one-op requests cannot share fewer than three commits of MAX_BATCH_OPS (256).
    let keys: Vec<String> = (0..600).map(|i| format!("m/{i}")).collect();
    let writes = keys.iter().map(|k| backend.put(k, vec![2; 10])).collect();
    queue_while_blocked(&backend, writes).await;
    let after = backend.write_stats();
    assert_eq!(after.requests - stats.requests, 600);
    assert!(
        (3..=4).contains(&(after.commits - stats.commits)),
        "{after:?}"
    );
    for i in (0..100).step_by(7) {
        assert_eq!(
            backend.get(&format!("k/{i}")).await.expect("get"),
            Some(vec![1; 100])
        );
    }
    assert_eq!(backend.list("m/").await.expect("list").len(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_are_all_durable_and_visible_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = FileBackend::open(dir.path()).expect("open");
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32 {
        let b = backend.clone();
        tasks.spawn(async move {
            let mut acked = Vec::new();
            for j in 0..20 {
                let key = format!("w{w}/k{j}");
                if j % 5 == 4 {
                    // A multi-op transaction: a value and its marker, atomically.
                    b.transaction(vec![
                        put(&key, key.as_bytes()),
                        put(&format!("{key}.m"), b"m"),
                    ])
                    .await
                    .expect("transaction");
                } else {
                    b.put(&key, key.as_bytes().to_vec()).await.expect("put");
                }
                // Acknowledged means visible to any read that starts afterwards.
                assert_eq!(
                    b.get(&key).await.expect("get"),
                    Some(key.as_bytes().to_vec())
                );
                acked.push(key);
            }
            acked
        });
    }
    let mut acked = Vec::new();
    while let Some(keys) = tasks.join_next().await {
        acked.extend(keys.expect("writer task"));
    }
    assert_eq!(acked.len(), 640);
    let stats = backend.write_stats();
    assert_eq!(stats.requests, 640);
    assert!(stats.commits >= 1 && stats.commits <= 640, "{stats:?}");
    drop(backend);

    // The writer thread is gone with the last clone, so the file can be opened again at once,
    // and every acknowledged write is there.
    let reopened = FileBackend::open(dir.path()).expect("reopen after drop");
    for key in &acked {
        assert_eq!(
            reopened.get(key).await.expect("get"),
            Some(key.as_bytes().to_vec()),
            "{key} was acknowledged but is missing after reopen"
        );
    }
    assert_eq!(
        reopened.get("w3/k4.m").await.expect("get"),
        Some(b"m".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_do_not_fail_concurrent_valid_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = FileBackend::open(dir.path()).expect("open");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let b = backend.clone();
        tasks.spawn(async move {
            let key = format!("t/{i}");
            if i % 2 == 0 {
                (i, b.put(&key, b"ok".to_vec()).await.is_ok())
            } else {
                // One valid operation and one invalid key: refused as a whole.
                let ops = vec![put(&key, b"bad"), put("/abs", b"bad")];
                (i, b.transaction(ops).await.is_ok())
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (i, ok) = done.expect("task");
        assert_eq!(ok, i % 2 == 0, "request {i}");
    }
    for i in 0..32 {
        let expected = (i % 2 == 0).then(|| b"ok".to_vec());
        assert_eq!(backend.get(&format!("t/{i}")).await.expect("get"), expected);
    }
}

#[test]
fn a_request_failing_inside_the_batch_fails_alone_and_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, file) = raw_db(dir.path());
    let (a, a_done) = testing::request(vec![put("a/1", b"a"), put("a/2", b"a")], None);
    // B fails after its first operation was applied: neither of its puts may survive.
    let (b, b_done) = testing::request(
        vec![put("b/1", b"b"), put("b/2", b"b")],
        Some(Inject::ApplyAfter(1)),
    );
    let (c, c_done) = testing::request(vec![put("c/1", b"c")], None);
    let stats = testing::commit_batch(&db, file, vec![a, b, c]);

    a_done.blocking_recv().expect("reply").expect("a commits");
    let err = b_done.blocking_recv().expect("reply").expect_err("b fails");
    assert!(err.to_string().contains("injected failure"), "{err}");
    c_done.blocking_recv().expect("reply").expect("c commits");
    assert_eq!(read(&db, "a/1"), Some(b"a".to_vec()));
    assert_eq!(read(&db, "a/2"), Some(b"a".to_vec()));
    assert_eq!(read(&db, "b/1"), None);
    assert_eq!(read(&db, "b/2"), None);
    assert_eq!(read(&db, "c/1"), Some(b"c".to_vec()));
    // After the shared transaction failed, A and C were committed on their own.
    assert_eq!(
        stats,
        WriteStats {
            commits: 2,
            requests: 2
        }
    );
}

#[test]
fn a_failed_commit_fails_every_request_of_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, file) = raw_db(dir.path());
    let (a, a_done) = testing::request(vec![put("a", b"a")], None);
    let (b, b_done) = testing::request(vec![put("b", b"b")], Some(Inject::Commit));
    let (c, c_done) = testing::request(vec![TxnOp::Delete { key: "c".into() }], None);
    let stats = testing::commit_batch(&db, file, vec![a, b, c]);
    for done in [a_done, b_done, c_done] {
        let err = done.blocking_recv().expect("reply").expect_err("must fail");
        assert!(err.to_string().contains("injected commit failure"), "{err}");
    }
    assert_eq!(read(&db, "a"), None);
    assert_eq!(read(&db, "b"), None);
    assert_eq!(stats, WriteStats::default());
}

#[test]
fn one_batch_is_one_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, file) = raw_db(dir.path());
    let mut replies = Vec::new();
    let mut batch = Vec::new();
    for i in 0..10 {
        let (r, done) = testing::request(vec![put(&format!("k{i}"), b"v")], None);
        batch.push(r);
        replies.push(done);
    }
    // Later requests of a batch see the earlier ones, as if applied one after another.
    let (del, del_done) = testing::request(vec![TxnOp::Delete { key: "k3".into() }], None);
    batch.push(del);
    replies.push(del_done);
    let stats = testing::commit_batch(&db, file, batch);
    for done in replies {
        done.blocking_recv().expect("reply").expect("commit");
    }
    assert_eq!(
        stats,
        WriteStats {
            commits: 1,
            requests: 11
        }
    );
    assert_eq!(read(&db, "k2"), Some(b"v".to_vec()));
    assert_eq!(read(&db, "k3"), None);
}

#[tokio::test]
async fn a_clone_keeps_the_writer_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = FileBackend::open(dir.path()).expect("open");
    let clone = backend.clone();
    drop(backend);
    clone.put("still", b"here".to_vec()).await.expect("put");
    assert_eq!(
        clone.get("still").await.expect("get"),
        Some(b"here".to_vec())
    );
}
