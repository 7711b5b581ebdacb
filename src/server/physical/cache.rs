//! Physical layer: a read cache in front of a backend, like Vault's physical cache
//! (`cache_size`, `disable_cache`). It holds what the backend holds (ciphertext), so caching
//! adds no plaintext to memory; it saves the backend lookup of hot entries (token entries,
//! KV metadata and versions).
//!
//! Consistency: every change goes through this layer (one node owns its storage), and each key
//! is guarded by one of [`STRIPES`] async locks. A write holds its key's lock across the
//! backend write and the cache update; a read that misses holds it across the backend read and
//! the cache fill. So a fill can never put back a value that a concurrent write replaced, and a
//! read after an acknowledged write sees that write. A failed write drops the key from the
//! cache (the backend's state is then unknown) instead of guessing. Hits take no stripe lock.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, MutexGuard};

use super::{Physical, PhysicalError, TxnOp};

/// Vault's default `cache_size`: the number of entries, whatever their size.
pub const DEFAULT_CACHE_SIZE: usize = 131_072;
/// Number of per-key lock stripes (Vault's `locksutil` uses 256 as well).
const STRIPES: usize = 256;

pub struct CachedBackend {
    inner: Arc<dyn Physical>,
    entries: quick_cache::sync::Cache<String, Arc<[u8]>>,
    locks: Box<[Mutex<()>]>,
    hasher: RandomState,
}

impl std::fmt::Debug for CachedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBackend")
            .field("backend", &self.inner.kind())
            .field("capacity", &self.entries.capacity())
            .field("len", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl CachedBackend {
    /// Caches up to `capacity` entries (at least one) of `inner`.
    pub fn new(inner: Arc<dyn Physical>, capacity: usize) -> Self {
        Self {
            inner,
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn stripe(&self, key: &str) -> usize {
        // The modulo keeps the index below STRIPES, so the truncation is exact.
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        self.locks[self.stripe(key)].lock().await
    }

    /// Locks every stripe `ops` touch, in index order (so two transactions cannot deadlock).
    async fn lock_all(&self, ops: &[TxnOp]) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ops.iter().map(|op| self.stripe(op_key(op))).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.locks[i].lock().await);
        }
        guards
    }

    #[cfg(test)]
    fn cached(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.get(key).map(|v| v.to_vec())
    }
}

fn op_key(op: &TxnOp) -> &str {
    match op {
        TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
    }
}

#[async_trait]
impl Physical for CachedBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        if let Some(hit) = self.entries.get(key) {
            return Ok(Some(hit.to_vec()));
        }
        let _guard = self.lock(key).await;
        // A write or another miss may have filled it while this one waited.
        if let Some(hit) = self.entries.get(key) {
            return Ok(Some(hit.to_vec()));
        }
        let value = self.inner.get(key).await?;
        if let Some(v) = &value {
            self.entries.insert(key.to_owned(), Arc::from(v.as_slice()));
        }
        Ok(value)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        let _guard = self.lock(key).await;
        let cached: Arc<[u8]> = Arc::from(value.as_slice());
        match self.inner.put(key, value).await {
            Ok(()) => {
                self.entries.insert(key.to_owned(), cached);
                Ok(())
            }
            Err(e) => {
                self.entries.remove(key);
                Err(e)
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        let _guard = self.lock(key).await;
        let result = self.inner.delete(key).await;
        // Gone on success; unknown on failure. Either way the cache must not answer for it.
        self.entries.remove(key);
        result
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        self.inner.list(prefix).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        let _guards = self.lock_all(&ops).await;
        let after: Vec<(String, Option<Arc<[u8]>>)> = ops
            .iter()
            .map(|op| match op {
                TxnOp::Put { key, value } => (key.clone(), Some(Arc::from(value.as_slice()))),
                TxnOp::Delete { key } => (key.clone(), None),
            })
            .collect();
        let result = self.inner.transaction(ops).await;
        // In order, so the last operation on a key decides what is cached.
        for (key, value) in after {
            match value {
                Some(v) if result.is_ok() => self.entries.insert(key, v),
                _ => {
                    self.entries.remove(&key);
                }
            }
        }
        result
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
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
        let backend = CachedBackend::new(Arc::clone(&flaky) as Arc<dyn Physical>, capacity);
        (flaky, backend)
    }

    #[tokio::test]
    async fn contract() {
        let (_, backend) = cached(DEFAULT_CACHE_SIZE);
        super::super::contract::run(&backend).await;
        // And with a cache too small to hold the contract's keys, so evictions happen mid-run.
        let (_, tiny) = cached(2);
        super::super::contract::run(&tiny).await;
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
}
