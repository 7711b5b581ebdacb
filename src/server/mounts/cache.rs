//! Logical layer: the in-process cache of each barrier's mount table, so routing a request
//! costs no storage read. No I/O.
//!
//! Every table write goes through [`super::store`], which bumps a generation and caches the new
//! table under one lock. A reader that loaded the table from storage offers it back only if no
//! write happened since it started. One server process owns its storage, so this is coherent;
//! a write made to storage behind this module's back is seen after the next write through it
//! (as the policy store's cache).

use std::sync::{Arc, LazyLock, PoisonError, RwLock, Weak};

use super::MountTable;
use crate::server::barrier::{Barrier, Keyring};

/// Barriers (keyrings) whose tables are kept before the oldest is dropped.
const MAX_BARRIERS: usize = 16;

struct Entry {
    /// Keeps the keyring's allocation alive, so its address is not reused while cached.
    keyring: Weak<Keyring>,
    generation: u64,
    table: Arc<MountTable>,
}

impl Entry {
    fn is_for(&self, barrier: &Barrier) -> bool {
        std::ptr::eq(self.keyring.as_ptr(), Arc::as_ptr(barrier.keyring()))
    }
}

#[derive(Default)]
struct Cache {
    generation: u64,
    entries: Vec<Entry>,
}

impl Cache {
    fn set(&mut self, barrier: &Barrier, table: Arc<MountTable>) {
        let generation = self.generation;
        self.entries
            .retain(|e| e.keyring.strong_count() > 0 && !e.is_for(barrier));
        if self.entries.len() >= MAX_BARRIERS {
            self.entries.remove(0);
        }
        self.entries.push(Entry {
            keyring: Arc::downgrade(barrier.keyring()),
            generation,
            table,
        });
    }
}

static CACHE: LazyLock<RwLock<Cache>> = LazyLock::new(|| RwLock::new(Cache::default()));

/// The cached table of `barrier`, if no write happened since it was cached.
pub(super) fn get(barrier: &Barrier) -> Option<Arc<MountTable>> {
    let cache = CACHE.read().unwrap_or_else(PoisonError::into_inner);
    cache
        .entries
        .iter()
        .find(|e| e.is_for(barrier) && e.generation == cache.generation)
        .map(|e| Arc::clone(&e.table))
}

/// The current generation, to pass to [`offer`] after a storage read.
pub(super) fn generation() -> u64 {
    CACHE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .generation
}

/// Caches a table read from storage, unless a write happened since `generation`.
pub(super) fn offer(barrier: &Barrier, generation: u64, table: Arc<MountTable>) {
    let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
    if cache.generation == generation {
        cache.set(barrier, table);
    }
}

/// Records a table just written to storage.
pub(super) fn stored(barrier: &Barrier, table: Arc<MountTable>) {
    let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
    cache.generation += 1;
    cache.set(barrier, table);
}
