//! Tests of the read cache: consistency under races and failures, and its bounds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;
use crate::server::physical::InmemBackend;

/// An in-memory backend that counts reads and fails writes on demand. With a gate set,
/// a read of `gated` stops between reading the value and returning it until the test
/// opens the gate, so a racing write can land in that window.
#[derive(Default)]
struct Flaky {
    inner: InmemBackend,
    gets: AtomicUsize,
    fail_writes: AtomicBool,
    gate: Option<(tokio::sync::Notify, tokio::sync::Semaphore)>,
}

impl Flaky {
    fn check(&self) -> Result<(), PhysicalError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            Err(PhysicalError::Io {
                backend: "flaky",
                path: String::new(),
                message: "injected write failure".into(),
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Physical for Flaky {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let value = self.inner.get(key).await;
        if let Some((reached, open)) = self.gate.as_ref().filter(|_| key == "gated") {
            reached.notify_one();
            open.acquire().await.expect("gate").forget();
        }
        value
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        self.check()?;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        self.check()?;
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        self.inner.list(prefix).await
    }
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        self.check()?;
        self.inner.transaction(ops).await
    }
    fn kind(&self) -> &'static str {
        "flaky"
    }
}

fn cached(capacity: usize) -> (Arc<Flaky>, CachedBackend) {
    let flaky = Arc::new(Flaky::default());
    let backend = CachedBackend::new(
        Arc::clone(&flaky) as Arc<dyn Physical>,
        capacity,
        DEFAULT_CACHE_BYTES,
    );
    (flaky, backend)
}

#[tokio::test]
async fn contract() {
    let (_, backend) = cached(DEFAULT_CACHE_SIZE);
    super::super::contract::run(&backend).await;
    // And with a cache too small to hold the contract's keys, so evictions happen mid-run.
    let (_, tiny) = cached(2);
    super::super::contract::run(&tiny).await;
    // And with a byte budget that holds only a few of them.
    let small = CachedBackend::new(Arc::new(InmemBackend::new()), 1000, 4096);
    super::super::contract::run(&small).await;
}

/// Many large values: the cache's weight stays under its byte bound after every write and
/// read, what is read back is what was written, and a value heavier than the per-item share
/// is not cached (and does not leave an older cached value behind).
#[tokio::test]
async fn large_values_keep_the_cache_under_its_byte_bound() {
    const BUDGET: u64 = 1024 * 1024;
    let flaky = Arc::new(Flaky::default());
    let backend = CachedBackend::new(Arc::clone(&flaky) as Arc<dyn Physical>, 100_000, BUDGET);
    let value = |i: usize, len: usize| vec![u8::try_from(i % 251).unwrap_or(0); len];
    // 48 KiB each (under the 64 KiB item limit): 400 of them are ~19 MiB.
    for i in 0..400 {
        let key = format!("big/{i}");
        backend.put(&key, value(i, 48 * 1024)).await.expect("put");
        assert!(
            backend.weight() <= BUDGET,
            "after put {i}: {}",
            backend.weight()
        );
    }
    assert!(backend.weight() > 0, "some of them are cached");
    for i in (0..400).step_by(7) {
        let got = backend.get(&format!("big/{i}")).await.expect("get");
        assert_eq!(got, Some(value(i, 48 * 1024)), "value {i}");
        assert!(
            backend.weight() <= BUDGET,
            "after get {i}: {}",
            backend.weight()
        );
    }
    // Heavier than BUDGET / 16: never cached, and it replaces a cached older value.
    backend.put("k", b"small".to_vec()).await.expect("put");
    assert_eq!(backend.cached("k"), Some(b"small".to_vec()));
    backend.put("k", value(1, 100 * 1024)).await.expect("put");
    assert_eq!(backend.cached("k"), None, "too heavy to cache");
    let before = flaky.gets.load(Ordering::SeqCst);
    assert_eq!(
        backend.get("k").await.expect("get"),
        Some(value(1, 100 * 1024))
    );
    assert_eq!(backend.cached("k"), None, "a read does not cache it either");
    assert_eq!(flaky.gets.load(Ordering::SeqCst), before + 1);
    backend
        .transaction(vec![TxnOp::Put {
            key: "big/0".into(),
            value: value(2, 200 * 1024),
        }])
        .await
        .expect("txn");
    assert_eq!(backend.cached("big/0"), None);
    assert!(backend.weight() <= BUDGET);
}

/// Tiny values still count against `cache_size`: each weighs at least bytes / entries.
#[tokio::test]
async fn the_entry_bound_holds_with_a_byte_budget() {
    let backend = CachedBackend::new(Arc::new(InmemBackend::new()), 4, 4096);
    for i in 0..100 {
        backend.put(&format!("t/{i}"), vec![1]).await.expect("put");
        assert!(
            backend.entries.len() <= 4,
            "{} entries",
            backend.entries.len()
        );
    }
    assert!(backend.weight() <= 4096);
}

#[tokio::test]
async fn a_hit_does_not_reach_the_backend_and_a_miss_fills_once() {
    let (flaky, backend) = cached(16);
    flaky.inner.put("k", b"v".to_vec()).await.expect("seed");
    assert_eq!(backend.get("k").await.expect("get"), Some(b"v".to_vec()));
    assert_eq!(backend.get("k").await.expect("get"), Some(b"v".to_vec()));
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 1, "second read is a hit");
    // Absence is not cached: a key written behind the cache's back is not hidden by it.
    assert_eq!(backend.get("none").await.expect("get"), None);
    assert_eq!(backend.get("none").await.expect("get"), None);
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn writes_update_the_cache_and_failed_writes_drop_the_key() {
    let (flaky, backend) = cached(16);
    backend.put("k", b"one".to_vec()).await.expect("put");
    assert_eq!(backend.cached("k"), Some(b"one".to_vec()));

    flaky.fail_writes.store(true, Ordering::SeqCst);
    assert!(backend.put("k", b"two".to_vec()).await.is_err());
    assert_eq!(
        backend.cached("k"),
        None,
        "state unknown after a failed put"
    );
    assert_eq!(backend.get("k").await.expect("get"), Some(b"one".to_vec()));

    assert!(backend.delete("k").await.is_err());
    assert_eq!(backend.cached("k"), None);
    let ops = vec![
        TxnOp::Put {
            key: "k".into(),
            value: b"three".to_vec(),
        },
        TxnOp::Put {
            key: "other".into(),
            value: b"x".to_vec(),
        },
    ];
    backend.get("k").await.expect("refill");
    assert!(backend.transaction(ops.clone()).await.is_err());
    assert_eq!(
        backend.cached("k"),
        None,
        "a failed transaction drops its keys"
    );
    assert_eq!(backend.get("k").await.expect("get"), Some(b"one".to_vec()));
    assert_eq!(backend.get("other").await.expect("get"), None);

    flaky.fail_writes.store(false, Ordering::SeqCst);
    backend.transaction(ops).await.expect("txn");
    assert_eq!(backend.cached("k"), Some(b"three".to_vec()));
    backend
        .transaction(vec![
            TxnOp::Put {
                key: "k".into(),
                value: b"four".to_vec(),
            },
            TxnOp::Delete { key: "k".into() },
        ])
        .await
        .expect("txn");
    assert_eq!(
        backend.cached("k"),
        None,
        "the last operation on a key wins"
    );
    assert_eq!(backend.get("k").await.expect("get"), None);
    backend.delete("other").await.expect("delete");
    assert_eq!(backend.get("other").await.expect("get"), None);
}

/// A read that missed and is still fetching the old value must not put it back over a
/// write acknowledged meanwhile.
#[tokio::test]
async fn a_slow_miss_cannot_cache_a_value_older_than_an_acknowledged_write() {
    let flaky = Arc::new(Flaky {
        gate: Some((tokio::sync::Notify::new(), tokio::sync::Semaphore::new(0))),
        ..Flaky::default()
    });
    flaky
        .inner
        .put("gated", b"old".to_vec())
        .await
        .expect("seed");
    let backend = Arc::new(CachedBackend::new(
        Arc::clone(&flaky) as Arc<dyn Physical>,
        16,
        DEFAULT_CACHE_BYTES,
    ));
    let reader = tokio::spawn({
        let backend = Arc::clone(&backend);
        async move { backend.get("gated").await }
    });
    let (reached, open) = flaky.gate.as_ref().expect("gate");
    reached.notified().await;
    // The reader holds "old" and waits at the gate. The write must not overtake it; give
    // it the chance to (bounded), then let the reader finish either way.
    let writer = tokio::spawn({
        let backend = Arc::clone(&backend);
        async move { backend.put("gated", b"new".to_vec()).await }
    });
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    open.add_permits(1);
    assert_eq!(
        reader.await.expect("reader").expect("get"),
        Some(b"old".to_vec()),
        "the read began before the write"
    );
    writer.await.expect("writer").expect("put");
    assert_eq!(
        backend.get("gated").await.expect("get"),
        Some(b"new".to_vec()),
        "the cache must hold the acknowledged write"
    );
}
