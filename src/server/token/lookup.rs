//! Core layer: finding valid tokens (by token, by accessor, up the parent chain) and
//! resolving the token of each authenticated request, which consumes one use of a
//! limited-use token. Storage I/O through the barrier.

use subtle::ConstantTimeEq;

use super::{MAX_DEPTH, MAX_INPUT_LEN, TokenEntry, TokenStore, is_hash};
use crate::server::barrier::{Barrier, BarrierError};

impl TokenStore {
    /// The number of valid ancestors above `entry`, or `None` when one is missing or
    /// expired (or the chain is longer than [`MAX_DEPTH`]).
    pub(super) async fn chain_depth(
        &self,
        barrier: &Barrier,
        entry: &TokenEntry,
        now: u64,
    ) -> Result<Option<usize>, BarrierError> {
        let mut parent = entry.parent.clone();
        for depth in 0..=MAX_DEPTH {
            let Some(p) = parent else {
                return Ok(Some(depth));
            };
            match self.read_entry(barrier, &p).await? {
                Some(pe) if !pe.is_expired(now) => parent = pe.parent,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The valid entry for `hash`: present, unexpired, with a valid parent chain.
    pub(super) async fn live(
        &self,
        barrier: &Barrier,
        hash: &str,
        now: u64,
    ) -> Result<Option<TokenEntry>, BarrierError> {
        match self.read_entry(barrier, hash).await? {
            Some(e)
                if !e.is_expired(now) && self.chain_depth(barrier, &e, now).await?.is_some() =>
            {
                Ok(Some(e))
            }
            _ => Ok(None),
        }
    }

    /// Finds a valid token without using it. Malformed input is simply "not found".
    pub async fn lookup(
        &self,
        barrier: &Barrier,
        token: &str,
    ) -> Result<Option<TokenEntry>, BarrierError> {
        let Some(hash) = self.input_hash(token) else {
            return Ok(None);
        };
        self.live(barrier, &hash, crate::server::unix_now()).await
    }

    /// The token hash an accessor points at, if the accessor exists.
    async fn accessor_target(
        &self,
        barrier: &Barrier,
        accessor: &str,
    ) -> Result<Option<String>, BarrierError> {
        if accessor.is_empty() || accessor.len() > MAX_INPUT_LEN {
            return Ok(None);
        }
        let Some(raw) = barrier.get(&self.accessor_path(accessor)).await? else {
            return Ok(None);
        };
        Ok(std::str::from_utf8(&raw)
            .ok()
            .filter(|h| is_hash(h))
            .map(str::to_owned))
    }

    /// Finds a valid token by its accessor, without using it.
    pub async fn lookup_accessor(
        &self,
        barrier: &Barrier,
        accessor: &str,
    ) -> Result<Option<TokenEntry>, BarrierError> {
        let Some(hash) = self.accessor_target(barrier, accessor).await? else {
            return Ok(None);
        };
        let entry = self.live(barrier, &hash, crate::server::unix_now()).await?;
        Ok(entry.filter(|e| bool::from(e.accessor.as_bytes().ct_eq(accessor.as_bytes()))))
    }
    /// Resolves a client token for one request and consumes one use of a limited-use token.
    /// The use that reaches zero still succeeds: the token (and its tree) is revoked at once
    /// and the returned entry has `num_uses == -1`. Expired tokens are revoked lazily.
    /// Malformed input, unknown and expired tokens are `None`.
    pub async fn use_token(
        &self,
        barrier: &Barrier,
        token: &str,
    ) -> Result<Option<TokenEntry>, BarrierError> {
        let Some(hash) = self.input_hash(token) else {
            return Ok(None);
        };
        let now = crate::server::unix_now();
        let Some(entry) = self.read_entry(barrier, &hash).await? else {
            return Ok(None);
        };
        if entry.is_expired(now) {
            let _guard = self.writes.lock().await;
            if let Err(e) = self.revoke_tree_locked(barrier, &hash).await {
                tracing::warn!(error = %e, "could not delete an expired token");
            }
            return Ok(None);
        }
        if self.chain_depth(barrier, &entry, now).await?.is_none() {
            return Ok(None);
        }
        if entry.num_uses == 0 {
            return Ok(Some(entry));
        }
        let _guard = self.writes.lock().await;
        // Re-read under the lock: a concurrent request may have used it meanwhile.
        let Some(mut entry) = self.read_entry(barrier, &hash).await? else {
            return Ok(None);
        };
        if entry.is_expired(now) || entry.num_uses <= 0 {
            return Ok(None);
        }
        if entry.num_uses == 1 {
            self.revoke_tree_locked(barrier, &hash).await?;
            entry.num_uses = -1;
        } else {
            entry.num_uses -= 1;
            self.write_entry(barrier, &entry).await?;
        }
        Ok(Some(entry))
    }

    /// The hash of a client-supplied token, if it is a valid token.
    pub async fn valid_hash(
        &self,
        barrier: &Barrier,
        token: &str,
    ) -> Result<Option<String>, BarrierError> {
        Ok(self.lookup(barrier, token).await?.map(|e| e.hash))
    }

    /// The hash of the valid token behind `accessor`.
    pub async fn accessor_hash(
        &self,
        barrier: &Barrier,
        accessor: &str,
    ) -> Result<Option<String>, BarrierError> {
        Ok(self
            .lookup_accessor(barrier, accessor)
            .await?
            .map(|e| e.hash))
    }
}
