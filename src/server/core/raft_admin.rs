//! Core layer: administration of integrated raft storage behind `sys/step-down` and
//! `sys/storage/raft/*`: leadership hand-over, peer removal by name, snapshot save and restore
//! (with the keyring check), and reloading the unsealed state after a restore. Storage and
//! raft I/O through [`RaftBackend`].
//!
//! After a restore the node's unsealed state (token store, mounts, policies, audit devices,
//! keyring) describes data that no longer exists, so this node seals itself, non-manually:
//! with the awskms seal the auto-unseal loop (woken at once) unseals it from the restored
//! root key; with Shamir an operator unseals it with the snapshot's cluster's key shares. Other
//! nodes apply the same restore through the log; reloading their state is up to the standby
//! cache logic (see the HA item 4).

use std::time::Duration;

use super::{Core, CoreError, State, Unsealed};
use crate::server::barrier::KEYRING_PATH;
use crate::server::physical::{PhysicalError, RaftBackend, RaftSnapshot};

/// How long `sys/step-down` waits for the new leader (Vault's graceful stop bound).
pub const STEP_DOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a restore may take to commit (it carries up to 31 MiB to every voter).
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

/// The message of Vault's refusal to restore a snapshot whose keyring this cluster cannot open.
pub const INCOMPATIBLE_SNAPSHOT: &str = "could not verify the snapshot: its barrier keyring (core/keyring) cannot be decrypted with this cluster's root key, so it was possibly taken on a different cluster or with a different set of unseal keys; use the sys/storage/raft/snapshot-force API to bypass this check (the node then needs that cluster's unseal keys or seal)";

impl Core {
    /// The raft handle, or the error every raft endpoint gives on other storage.
    pub fn raft_storage(&self) -> Result<&RaftBackend, CoreError> {
        self.raft.as_ref().ok_or_else(|| {
            CoreError::InvalidRequest(format!(
                "raft storage is not in use: this server uses {:?} storage; sys/step-down, sys/ha-status and the sys/storage/raft endpoints need storage \"raft\"",
                self.physical.kind()
            ))
        })
    }

    /// `sys/step-down`: hands leadership to the most caught-up other voter (bounded by
    /// [`STEP_DOWN_TIMEOUT`]). A lone voter stays active, as Vault's single node does.
    pub async fn step_down(&self) -> Result<(), CoreError> {
        let raft = self.raft_storage()?;
        let state = raft.cluster_state();
        if state.voter_ids().all(|id| id == state.node_id) {
            tracing::info!(
                "step-down requested, but this node is the only voter of its raft cluster; it stays the active node"
            );
            return Ok(());
        }
        let to = raft.step_down(STEP_DOWN_TIMEOUT).await?;
        tracing::info!(to, "stepped down: raft leadership moved");
        Ok(())
    }

    /// `sys/storage/raft/remove-peer`: removes the member whose name (Vault's `node_id`) or
    /// decimal raft id is `server_id`. The leader cannot remove itself.
    pub async fn remove_raft_peer(&self, server_id: &str) -> Result<u64, CoreError> {
        let raft = self.raft_storage()?;
        let peers = raft.configuration();
        let Some(peer) = peers
            .iter()
            .find(|p| p.node.name == server_id)
            .or_else(|| peers.iter().find(|p| p.id.to_string() == server_id))
        else {
            let names: Vec<&str> = peers.iter().map(|p| p.node.name.as_str()).collect();
            return Err(CoreError::InvalidRequest(format!(
                "no raft peer has server_id {server_id:?}; the members are [{}] (see GET sys/storage/raft/configuration)",
                names.join(", ")
            )));
        };
        if peer.id == raft.node_id() {
            return Err(CoreError::InvalidRequest(format!(
                "server_id {server_id:?} is this node, the active node (raft leader), which cannot remove itself; move leadership with sys/step-down first, then remove it through the new active node"
            )));
        }
        raft.remove_peer(peer.id).await?;
        tracing::info!(server_id, raft_id = peer.id, "removed a raft peer");
        Ok(peer.id)
    }

    /// `GET sys/storage/raft/snapshot`: the archive of the applied state.
    pub async fn raft_snapshot(&self) -> Result<Vec<u8>, CoreError> {
        let raft = self.raft_storage()?;
        let snapshot = raft.export_snapshot().await?;
        Ok(snapshot.encode()?)
    }

    /// `POST sys/storage/raft/snapshot[-force]`: verifies the archive, checks (unless `force`)
    /// that this cluster's root key opens the snapshot's keyring, replaces the state of every
    /// node through the raft log, then seals this node so it reloads (module docs).
    ///
    /// The keyring check: the snapshot's `core/keyring` must decrypt, with authentication,
    /// under the root key of the running barrier. That holds exactly when the snapshot came
    /// from this cluster's root key, which is also what the restored `core/root-key` (wrapped
    /// by the same seal) unwraps to, so the node can unseal again after the restore. A keyring
    /// from another cluster would leave the node unable to unseal with its seal or keys.
    pub async fn restore_raft_snapshot(
        &self,
        unsealed: &Unsealed,
        archive: &[u8],
        force: bool,
    ) -> Result<(), CoreError> {
        let raft = self.raft_storage()?;
        let snapshot =
            RaftSnapshot::decode(archive).map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        if !force {
            let Some(keyring) = snapshot.get(KEYRING_PATH) else {
                return Err(CoreError::InvalidRequest(format!(
                    "the snapshot has no {KEYRING_PATH}: it was taken before the cluster was initialized; {INCOMPATIBLE_SNAPSHOT}"
                )));
            };
            if !unsealed.barrier.keyring().root_key_opens(keyring) {
                return Err(CoreError::InvalidRequest(INCOMPATIBLE_SNAPSHOT.into()));
            }
        }
        // What no node could apply is refused before anything is locked or proposed.
        snapshot
            .check()
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        // Held from before the restore is proposed until the node is sealed: no request
        // starts with the old unsealed state (old keyring, tokens, mounts) against the
        // restored data meanwhile. Requests already running finish as they began.
        let mut state = self.state.write().await;
        if !matches!(&*state, State::Unsealed(_)) {
            return Err(CoreError::Sealed);
        }
        // Bounded, since the lock blocks every request meanwhile. When the outcome is unknown
        // (timeout, raft stopped) the node seals anyway: the restore may yet be applied.
        let outcome = tokio::time::timeout(RESTORE_TIMEOUT, raft.restore_snapshot(snapshot)).await;
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e @ PhysicalError::NotLeader { .. })) => return Err(e.into()),
            Ok(Err(e)) => Err(CoreError::from(e)),
            Err(_) => Err(CoreError::Physical(PhysicalError::Io {
                backend: "raft",
                path: "snapshot".into(),
                message: format!(
                    "the restore was not committed within {RESTORE_TIMEOUT:?}; it may still be applied, so this node sealed itself; check that a quorum of voters is up, unseal, and compare the data"
                ),
            })),
        };
        self.reload_after_restore(&mut state).await;
        drop(state);
        tracing::info!(
            restored = result.is_ok(),
            "sealed after a raft snapshot restore so the restored keyring, tokens, mounts and policies are loaded afresh; awskms unseals again by itself, Shamir needs the snapshot's unseal keys"
        );
        self.wake.notify_one();
        result
    }

    /// Seals this node (not "by request": the auto-unseal loop may unseal it) with the seal
    /// configuration the restored data holds.
    async fn reload_after_restore(&self, state: &mut State) {
        match Self::starting_state(&*self.physical, &self.seal).await {
            Ok(next) => {
                if matches!(next, State::Uninitialized) {
                    self.metrics.initialized.set(0);
                }
                *state = next;
            }
            Err(e) => {
                tracing::error!(error = %e, "after the snapshot restore the seal configuration cannot be read; the node stays sealed");
                if let State::Unsealed(u) = &*state {
                    *state = State::Sealed(super::SealedState {
                        seal_config: u.seal_config.clone(),
                        recovery: u.recovery.clone(),
                        progress: super::Progress::default(),
                        manual: false,
                        join: None,
                    });
                }
            }
        }
        self.metrics.sealed.set(1);
    }
}
