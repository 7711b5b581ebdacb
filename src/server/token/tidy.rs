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
    /// The run stopped early because the server sealed.
    pub interrupted: bool,
}

/// Hands out the barrier for each step of a background tidy; `None` once the server sealed,
/// so a tidy never keeps the keyring alive past a seal.
type BarrierSource<'a> = &'a (dyn Fn() -> Option<Barrier> + Send + Sync);

impl TokenStore {
    /// Removes what lazy deletion has not reached: tokens nobody presents again after they
    /// expire, and index entries a crash mid-revocation could leave behind.
    pub async fn tidy(&self, barrier: &Barrier) -> Result<TidyReport, BarrierError> {
        let barrier = barrier.clone();
        self.tidy_while(&move || Some(barrier.clone())).await
    }

    pub(super) async fn tidy_while(
        &self,
        source: BarrierSource<'_>,
    ) -> Result<TidyReport, BarrierError> {
        let mut report = TidyReport {
            interrupted: true,
            ..TidyReport::default()
        };
        let now = crate::server::unix_now();
        let Some(b) = source() else {
            return Ok(report);
        };
        let hashes = b.list(ID_PREFIX).await?;
        drop(b);
        for hash in hashes.iter().filter(|h| is_hash(h)) {
            let Some(b) = source() else {
                return Ok(report);
            };
            let Some(entry) = self.read_entry(&b, hash).await? else {
                continue;
            };
            if !entry.is_expired(now) && self.chain_depth(&b, &entry, now).await?.is_some() {
                continue;
            }
            let _guard = self.writes.lock().await;
            // Re-checked under the lock; a renewal may have happened meanwhile.
            match self.read_entry(&b, hash).await? {
                Some(e) if e.is_expired(now) || self.chain_depth(&b, &e, now).await?.is_none() => {
                    report.tokens += self.revoke_tree_locked(&b, hash).await?;
                }
                _ => {}
            }
        }
        let Some(b) = source() else {
            return Ok(report);
        };
        let accessors = b.list(ACCESSOR_PREFIX).await?;
        drop(b);
        for key in accessors {
            let Some(b) = source() else {
                return Ok(report);
            };
            let path = format!("{ACCESSOR_PREFIX}{key}");
            let _guard = self.writes.lock().await;
            let target = b.get(&path).await?;
            let alive = match target.as_deref().map(|v| std::str::from_utf8(v)) {
                Some(Ok(h)) if is_hash(h) => self.read_entry(&b, h).await?.is_some(),
                _ => false,
            };
            if !alive {
                b.delete(&path).await?;
                report.accessors += 1;
            }
        }
        let Some(b) = source() else {
            return Ok(report);
        };
        let parents = b.list(PARENT_PREFIX).await?;
        drop(b);
        for dir in parents.iter().filter(|p| p.ends_with('/')) {
            let dir = format!("{PARENT_PREFIX}{dir}");
            let Some(b) = source() else {
                return Ok(report);
            };
            for child in b.list(&dir).await? {
                let _guard = self.writes.lock().await;
                if self.read_entry(&b, &child).await?.is_none() {
                    b.delete(&format!("{dir}{child}")).await?;
                    report.parent_links += 1;
                }
            }
        }
        report.interrupted = false;
        Ok(report)
    }

    /// Starts a tidy in the background, as Vault's `auth/token/tidy` does; false when one is
    /// already running. `source` yields the barrier for each step and `None` once the server
    /// sealed, which stops the run.
    pub fn spawn_tidy(&self, source: impl Fn() -> Option<Barrier> + Send + Sync + 'static) -> bool {
        use std::sync::atomic::Ordering;
        if self.tidying.swap(true, Ordering::AcqRel) {
            return false;
        }
        let store = self.clone();
        tokio::spawn(async move {
            match store.tidy_while(&source).await {
                Ok(r) => tracing::info!(
                    tokens = r.tokens,
                    accessors = r.accessors,
                    parent_links = r.parent_links,
                    interrupted = r.interrupted,
                    "token tidy finished"
                ),
                Err(e) => tracing::error!(error = %e, "token tidy failed"),
            }
            store.tidying.store(false, Ordering::Release);
        });
        true
    }
}
