//! Core layer: a token's life after creation: use counting on every authenticated request,
//! renewal, and revocation (of a whole tree, or of one token whose children become orphans).
//! Storage I/O through the barrier, under the store's write lock.

use std::collections::HashSet;

use super::ttl::{self, SYSTEM_TTL, TtlInput};
use super::{ACCESSOR_PREFIX, ID_PREFIX, MAX_REVOKE, PARENT_PREFIX, TokenEntry, TokenError};
use super::{TokenStore, is_hash, to_json};
use crate::server::barrier::{Barrier, BarrierError};
use crate::server::physical::TxnOp;

/// Tokens deleted per storage transaction during a revocation.
const REVOKE_BATCH: usize = 128;

impl TokenStore {
    /// Renews the token whose hash is `hash` by `increment` seconds (0: its last TTL), as
    /// Vault's `RenewToken` with `CalculateTTL`. Returns the updated entry and warnings.
    pub async fn renew(
        &self,
        barrier: &Barrier,
        hash: &str,
        increment: u64,
    ) -> Result<(TokenEntry, Vec<String>), TokenError> {
        let now = crate::server::unix_now();
        let _guard = self.writes.lock().await;
        let mut entry = self
            .live(barrier, hash, now)
            .await?
            .ok_or(TokenError::NotFound)?;
        if entry.expires_at() == 0 {
            return Err(TokenError::NotRenewable(
                ": this token never expires, so there is nothing to renew",
            ));
        }
        if !entry.renewable {
            return Err(TokenError::NotRenewable(
                ": the token was created with renewable=false",
            ));
        }
        let input = TtlInput {
            increment,
            ttl: entry.last_ttl(),
            period: entry.period,
            max_ttl: entry.max_ttl,
            explicit_max_ttl: entry.explicit_max_ttl,
            start: entry.creation_time,
        };
        let (granted, warnings) = ttl::calculate(SYSTEM_TTL, input, now)?;
        entry.lease_ttl = granted;
        entry.expire_time = now.saturating_add(granted);
        entry.last_renewal_time = Some(now);
        self.write_entry(barrier, &entry).await?;
        Ok((entry, warnings))
    }

    /// Revokes the token `hash` and all its descendants. Returns how many entries were
    /// deleted; 0 when the token did not exist.
    pub async fn revoke_tree(&self, barrier: &Barrier, hash: &str) -> Result<usize, BarrierError> {
        let _guard = self.writes.lock().await;
        self.revoke_tree_locked(barrier, hash).await
    }

    /// Revokes every token issued by the auth method mounted at `mount` (`auth/kubernetes/`),
    /// with its descendants, as Vault does when the method is disabled. Returns how many
    /// entries were deleted.
    pub async fn revoke_issued_by(
        &self,
        barrier: &Barrier,
        mount: &str,
    ) -> Result<usize, BarrierError> {
        let mut revoked = 0;
        for hash in barrier.list(super::ID_PREFIX).await? {
            if !super::is_hash(&hash) {
                continue;
            }
            let _guard = self.writes.lock().await;
            match self.read_entry(barrier, &hash).await? {
                Some(e) if e.path.starts_with(mount) => {
                    revoked += self.revoke_tree_locked(barrier, &hash).await?;
                }
                _ => {}
            }
        }
        Ok(revoked)
    }

    /// Revokes `hash` only; its children become orphans. Returns false when it did not exist.
    pub async fn revoke_orphan(&self, barrier: &Barrier, hash: &str) -> Result<bool, BarrierError> {
        let _guard = self.writes.lock().await;
        let Some(entry) = self.read_entry(barrier, hash).await? else {
            return Ok(false);
        };
        let children = self.children(barrier, hash).await?;
        for batch in children.chunks(REVOKE_BATCH) {
            let mut ops = Vec::with_capacity(batch.len() * 2);
            for child in batch {
                if let Some(mut c) = self.read_entry(barrier, child).await? {
                    c.parent = None;
                    ops.push(TxnOp::Put {
                        key: format!("{ID_PREFIX}{child}"),
                        value: to_json(&c)?,
                    });
                }
                ops.push(TxnOp::Delete {
                    key: format!("{PARENT_PREFIX}{hash}/{child}"),
                });
            }
            barrier.transaction(ops).await?;
        }
        barrier
            .transaction(self.delete_ops(hash, Some(&entry)))
            .await?;
        Ok(true)
    }

    async fn children(&self, barrier: &Barrier, hash: &str) -> Result<Vec<String>, BarrierError> {
        Ok(barrier
            .list(&format!("{PARENT_PREFIX}{hash}/"))
            .await?
            .into_iter()
            .filter(|c| is_hash(c))
            .collect())
    }

    /// The operations that delete one token's entry and its index entries.
    fn delete_ops(&self, hash: &str, entry: Option<&TokenEntry>) -> Vec<TxnOp> {
        let mut ops = vec![TxnOp::Delete {
            key: format!("{ID_PREFIX}{hash}"),
        }];
        if let Some(e) = entry {
            ops.push(TxnOp::Delete {
                key: format!("{ACCESSOR_PREFIX}{}", self.hash(&e.accessor)),
            });
            if let Some(parent) = &e.parent {
                ops.push(TxnOp::Delete {
                    key: format!("{PARENT_PREFIX}{parent}/{hash}"),
                });
            }
        }
        ops
    }

    /// Walks the tree under `hash` breadth-first (bounded by [`MAX_REVOKE`]) and deletes it
    /// leaves first, in batches, so an interrupted revocation never leaves a usable child of
    /// a deleted parent (and a child of a deleted parent is invalid anyway).
    pub(super) async fn revoke_tree_locked(
        &self,
        barrier: &Barrier,
        hash: &str,
    ) -> Result<usize, BarrierError> {
        let Some(root) = self.read_entry(barrier, hash).await? else {
            return Ok(0);
        };
        let mut order = vec![(hash.to_owned(), Some(root))];
        let mut seen: HashSet<String> = HashSet::from([hash.to_owned()]);
        let mut next = 0;
        'walk: while next < order.len() {
            let current = order[next].0.clone();
            next += 1;
            for child in self.children(barrier, &current).await? {
                if order.len() >= MAX_REVOKE {
                    tracing::warn!(
                        limit = MAX_REVOKE,
                        "token tree larger than the revocation limit; deeper descendants are unusable but keep their entries"
                    );
                    break 'walk;
                }
                if seen.insert(child.clone()) {
                    let entry = self.read_entry(barrier, &child).await?;
                    if entry.is_none() {
                        // A dangling index entry: remove it with the parent.
                        barrier
                            .delete(&format!("{PARENT_PREFIX}{current}/{child}"))
                            .await?;
                        continue;
                    }
                    order.push((child, entry));
                }
            }
        }
        let deleted = order.len();
        let mut ops = Vec::new();
        for (i, (h, entry)) in order.iter().rev().enumerate() {
            ops.extend(self.delete_ops(h, entry.as_ref()));
            if (i + 1) % REVOKE_BATCH == 0 {
                barrier.transaction(std::mem::take(&mut ops)).await?;
            }
        }
        if !ops.is_empty() {
            barrier.transaction(ops).await?;
        }
        Ok(deleted)
    }
}
