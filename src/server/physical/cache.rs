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
//!
//! Memory: the cache is bounded by bytes (`cache_size_bytes`) as well as by entries
//! (`cache_size`). Each entry weighs its key and value bytes plus a fixed overhead, and at least
//! `bytes / entries`, so one weight budget enforces both bounds. A value heavier than
//! [`MAX_ITEM_SHARE`] of the budget is never cached (it is read from the backend each time).

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, MutexGuard};

use super::{Physical, PhysicalError, TxnOp};

/// Vault's default `cache_size`: the number of entries, whatever their size.
pub const DEFAULT_CACHE_SIZE: usize = 131_072;
/// Default `cache_size_bytes` (a Sealkeep extension): 64 MiB of keys and values.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// A value heavier than this share of the byte budget is not cached (1/16: 4 MiB by default).
pub const MAX_ITEM_SHARE: u64 = 16;
/// Bytes counted per entry on top of its key and value (the map slot, the `Arc` header).
const ENTRY_OVERHEAD: u64 = 64;
/// Number of per-key lock stripes (Vault's `locksutil` uses 256 as well).
const STRIPES: usize = 256;

/// Weighs an entry by its bytes, and at least `floor` so the entry bound holds too.
#[derive(Debug, Clone, Copy)]
struct Bytes {
    floor: u64,
}

impl Bytes {
    fn of(&self, key: &str, value_len: usize) -> u64 {
        let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        len(key.len())
            .saturating_add(len(value_len))
            .saturating_add(ENTRY_OVERHEAD)
            .max(self.floor)
    }
}

impl quick_cache::Weighter<String, Arc<[u8]>> for Bytes {
    fn weight(&self, key: &String, value: &Arc<[u8]>) -> u64 {
        self.of(key, value.len())
    }
}

pub struct CachedBackend {
    inner: Arc<dyn Physical>,
    entries: quick_cache::sync::Cache<String, Arc<[u8]>, Bytes>,
    weigh: Bytes,
    /// Heaviest entry that is cached.
    max_item: u64,
    locks: Box<[Mutex<()>]>,
    hasher: RandomState,
}

impl std::fmt::Debug for CachedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBackend")
            .field("backend", &self.inner.kind())
            .field("capacity_bytes", &self.entries.capacity())
            .field("len", &self.entries.len())
            .field("weight", &self.entries.weight())
            .finish_non_exhaustive()
    }
}

impl CachedBackend {
    /// Caches up to `entries` entries and `bytes` bytes (each at least one) of `inner`.
    pub fn new(inner: Arc<dyn Physical>, entries: usize, bytes: u64) -> Self {
        let entries = entries.max(1);
        let bytes = bytes.max(1);
        let weigh = Bytes {
            floor: (bytes / u64::try_from(entries).unwrap_or(u64::MAX)).max(1),
        };
        Self {
            inner,
            entries: quick_cache::sync::Cache::with_weighter(entries, bytes, weigh),
            weigh,
            max_item: (bytes / MAX_ITEM_SHARE).max(weigh.floor),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The bytes the cache accounts for now (never above its byte capacity).
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }

    /// Caches `value` under `key`, or, when it is too heavy to cache, drops the key.
    fn fill(&self, key: &str, value: &[u8]) {
        if self.weigh.of(key, value.len()) > self.max_item {
            self.entries.remove(key);
        } else {
            self.entries.insert(key.to_owned(), Arc::from(value));
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
            self.fill(key, v);
        }
        Ok(value)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        let _guard = self.lock(key).await;
        let cached = (self.weigh.of(key, value.len()) <= self.max_item)
            .then(|| Arc::<[u8]>::from(value.as_slice()));
        match self.inner.put(key, value).await {
            Ok(()) => {
                match cached {
                    Some(v) => self.entries.insert(key.to_owned(), v),
                    None => {
                        self.entries.remove(key);
                    }
                }
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
                // A value too heavy to cache is dropped from the cache like a delete.
                TxnOp::Put { key, value } => (
                    key.clone(),
                    (self.weigh.of(key, value.len()) <= self.max_item)
                        .then(|| Arc::from(value.as_slice())),
                ),
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
mod tests;
