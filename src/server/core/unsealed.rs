//! Core layer: the state that exists only while the server is unsealed ([`Unsealed`]), built
//! in one place and dropped together when it seals. Storage I/O through the barrier.

use std::time::SystemTime;

use zeroize::Zeroizing;

use super::{ClusterInfo, CoreError, RecoveryConfigRecord, SealConfigRecord, join};
use crate::server::audit::AuditStore;
use crate::server::barrier::Barrier;
use crate::server::kv::KeyLocks;
use crate::server::mounts::{MountStore, Mounts};
use crate::server::physical::Leadership;
use crate::server::policy::PolicyStore;
use crate::server::token::TokenStore;

/// Everything that exists only while unsealed, loaded in one place ([`Unsealed::new`]) and
/// dropped together when the server seals: the barrier (keys), the token store, the mount
/// table, the policy store and its compiled ACLs, the audit devices and their HMAC key, and
/// the KV key locks. Nothing of it lives anywhere else (no statics, no side caches).
#[derive(Debug)]
pub struct Unsealed {
    pub barrier: Barrier,
    pub seal_config: SealConfigRecord,
    pub recovery: Option<RecoveryConfigRecord>,
    pub cluster: ClusterInfo,
    pub tokens: TokenStore,
    pub policies: PolicyStore,
    pub mount_store: MountStore,
    pub audit: AuditStore,
    pub kv_locks: KeyLocks,
    pub unsealed_at: SystemTime,
    /// On raft: this state belongs to a standby, so its barrier reads the node's local replica
    /// ([`crate::server::physical::LocalView`]) and it serves nothing but the node's own `sys/`
    /// paths; becoming the leader replaces it with a serving state ([`ha`]).
    pub standby: bool,
    /// On raft, for a serving state: the leadership (this node's term of office) it was loaded
    /// under. Its in-memory parts (mount table, policies, audit devices) are only current for
    /// that term: had this node lost office and won it back, another leader may have changed
    /// them meanwhile, so the state stops serving ([`super::Core::unsealed`]) until the HA
    /// loop reloads it.
    pub(super) loaded_under: Option<Leadership>,
    /// The key from which the leader derives join challenges (see [`join`]).
    pub(super) join_key: Zeroizing<[u8; 32]>,
}

impl Unsealed {
    /// The unsealed state over an open barrier; the stores start empty and load lazily.
    pub fn new(
        barrier: Barrier,
        seal_config: SealConfigRecord,
        recovery: Option<RecoveryConfigRecord>,
        cluster: ClusterInfo,
        tokens: TokenStore,
    ) -> Self {
        Self {
            barrier,
            seal_config,
            recovery,
            cluster,
            tokens,
            policies: PolicyStore::default(),
            mount_store: MountStore::default(),
            audit: AuditStore::default(),
            kv_locks: KeyLocks::default(),
            unsealed_at: SystemTime::now(),
            standby: false,
            loaded_under: None,
            join_key: join::new_key(),
        }
    }

    /// Loads what every request needs (the mount table, finishing any purge a crash cut
    /// short, and the audit devices), so an unreadable table fails the unseal, as in Vault,
    /// instead of every request after it.
    pub async fn preload(&self) -> Result<(), CoreError> {
        fn corrupt(path: &'static str, e: impl std::fmt::Display) -> CoreError {
            CoreError::Corrupt {
                path,
                reason: e.to_string(),
            }
        }
        let mounts = self.mounts();
        let table = crate::server::mounts::MOUNT_TABLE_PATH;
        mounts.table().await.map_err(|e| corrupt(table, e))?;
        mounts
            .resume_purges()
            .await
            .map_err(|e| corrupt(table, e))?;
        self.audit
            .devices(&self.barrier)
            .await
            .map_err(|e| corrupt(crate::server::audit::TABLE_PATH, e))?;
        Ok(())
    }

    /// The mount table, with this server's barrier and KV key locks.
    pub fn mounts(&self) -> Mounts<'_> {
        Mounts::new(&self.barrier, &self.mount_store, &self.kv_locks)
    }
}
