//! Core layer: Vault's token tidy: deletes expired tokens (and their trees), tokens whose
//! parent chain is gone, and index entries that point at nothing. Storage I/O through the
//! barrier; each deletion under the store's write lock.

use super::{ACCESSOR_PREFIX, ID_PREFIX, PARENT_PREFIX, TokenStore, is_hash};
use crate::server::barrier::{Barrier, BarrierError};

/// What one tidy run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TidyReport {
    /// Token entries deleted (expired or orphaned by a missing ancestor, with descendants).
    pub tokens: usize,
    /// Accessor index entries whose token is gone.
    pub accessors: usize,
    /// Parent index entries whose child is gone.
    pub parent_links: usize,
}

impl TokenStore {
    /// Removes what lazy deletion has not reached: tokens nobody presents again after they
    /// expire, and index entries a crash mid-revocation could leave behind.
    pub async fn tidy(&self, barrier: &Barrier) -> Result<TidyReport, BarrierError> {
        let mut report = TidyReport::default();
        let now = crate::server::unix_now();
        for hash in barrier.list(ID_PREFIX).await? {
            if !is_hash(&hash) {
                continue;
            }
            let Some(entry) = self.read_entry(barrier, &hash).await? else {
                continue;
            };
            if !entry.is_expired(now) && self.chain_depth(barrier, &entry, now).await?.is_some() {
                continue;
            }
            let _guard = self.writes.lock().await;
            // Re-checked under the lock; a renewal may have happened meanwhile.
            match self.read_entry(barrier, &hash).await? {
                Some(e)
                    if e.is_expired(now) || self.chain_depth(barrier, &e, now).await?.is_none() =>
                {
                    report.tokens += self.revoke_tree_locked(barrier, &hash).await?;
                }
                _ => {}
            }
        }
        for key in barrier.list(ACCESSOR_PREFIX).await? {
            let path = format!("{ACCESSOR_PREFIX}{key}");
            let _guard = self.writes.lock().await;
            let target = barrier.get(&path).await?;
            let alive = match target.as_deref().map(|v| std::str::from_utf8(v)) {
                Some(Ok(h)) if is_hash(h) => self.read_entry(barrier, h).await?.is_some(),
                _ => false,
            };
            if !alive {
                barrier.delete(&path).await?;
                report.accessors += 1;
            }
        }
        for parent in barrier.list(PARENT_PREFIX).await? {
            let dir = format!("{PARENT_PREFIX}{parent}");
            if !dir.ends_with('/') {
                continue;
            }
            for child in barrier.list(&dir).await? {
                let _guard = self.writes.lock().await;
                if self.read_entry(barrier, &child).await?.is_none() {
                    barrier.delete(&format!("{dir}{child}")).await?;
                    report.parent_links += 1;
                }
            }
        }
        Ok(report)
    }

    /// Starts [`Self::tidy`] in the background, as Vault's `auth/token/tidy` does; false when
    /// one is already running.
    pub fn spawn_tidy(&self, barrier: &Barrier) -> bool {
        use std::sync::atomic::Ordering;
        if self.tidying.swap(true, Ordering::AcqRel) {
            return false;
        }
        let (store, barrier) = (self.clone(), barrier.clone());
        tokio::spawn(async move {
            match store.tidy(&barrier).await {
                Ok(r) => tracing::info!(
                    tokens = r.tokens,
                    accessors = r.accessors,
                    parent_links = r.parent_links,
                    "token tidy finished"
                ),
                Err(e) => tracing::error!(error = %e, "token tidy failed"),
            }
            store.tidying.store(false, Ordering::Release);
        });
        true
    }
}
