//! Logical layer: unmounting, and the batched deletion of an unmounted engine's data.
//! Storage I/O through the barrier.

use super::{MountError, Mounts, PURGE_BATCH, check_not_reserved, load, normalize_path};
use crate::server::barrier::Barrier;
use crate::server::kv;
use crate::server::physical::TxnOp;

impl Mounts<'_> {
    /// Unmounts `path` and deletes all of its data. `Ok(false)` when nothing is mounted there
    /// (Vault answers success either way).
    pub async fn unmount(&self, path: &str) -> Result<bool, MountError> {
        let path = normalize_path(path)?;
        check_not_reserved(&path)?;
        {
            let _gate = self.store.gate.write().await;
            let _lock = self.store.table_lock.lock().await;
            let mut table = self.load_or_create_locked().await?;
            let Some(pos) = table.entries.iter().position(|e| e.path == path) else {
                return Ok(false);
            };
            let entry = table.entries.remove(pos);
            table.purging.push(entry.uuid);
            self.store(&table).await?;
        }
        self.resume_purges().await?;
        Ok(true)
    }

    /// Finishes the data deletion of every unmounted engine listed in `purging`.
    pub async fn resume_purges(&self) -> Result<(), MountError> {
        let pending = match load(self.barrier).await? {
            Some(t) => t.purging,
            None => return Ok(()),
        };
        for uuid in pending {
            purge(self.barrier, &format!("{}{uuid}/", kv::LOGICAL_PREFIX)).await?;
            let _lock = self.store.table_lock.lock().await;
            let mut table = self.load_or_create_locked().await?;
            table.purging.retain(|u| *u != uuid);
            self.store(&table).await?;
        }
        Ok(())
    }
}

/// Deletes every key under `prefix`, [`PURGE_BATCH`] keys per transaction.
async fn purge(barrier: &Barrier, prefix: &str) -> Result<(), MountError> {
    loop {
        let keys = collect_keys(barrier, prefix, PURGE_BATCH).await?;
        if keys.is_empty() {
            return Ok(());
        }
        let ops = keys.into_iter().map(|key| TxnOp::Delete { key }).collect();
        barrier.transaction(ops).await?;
    }
}

/// Up to `limit` keys under `prefix`, depth first.
async fn collect_keys(
    barrier: &Barrier,
    prefix: &str,
    limit: usize,
) -> Result<Vec<String>, MountError> {
    let mut folders = vec![prefix.to_owned()];
    let mut keys = Vec::new();
    while let Some(folder) = folders.pop() {
        for child in barrier.list(&folder).await? {
            let full = format!("{folder}{child}");
            if child.ends_with('/') {
                folders.push(full);
            } else {
                keys.push(full);
                if keys.len() >= limit {
                    return Ok(keys);
                }
            }
        }
    }
    Ok(keys)
}
