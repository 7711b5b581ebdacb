//! Core: high availability on integrated raft storage. The raft leader is the active node.
//! Holds the node's [`RaftBackend`] handle (when `storage "raft"`), answers what `sys/leader`
//! and `sys/health` report, forms the cluster at `sys/init`, publishes the node's cluster-port
//! identity once unsealed, and runs the HA loop ([`Core::spawn_ha`]):
//! - a node that joined learns that its replica now holds a seal configuration (initialized,
//!   sealed: the auto-unseal loop takes over);
//! - a standby that becomes the leader replaces its unsealed state with a serving one, loaded
//!   through raft (linearizable reads, the current keyring), and a leader that loses office
//!   goes back to a standby state, so no cache survives a term in which another node wrote;
//! - on the leader, autopilot promotes learners that have stayed caught up (see [`autopilot`]).
//!
//! Storage and network I/O through the layers below.

use std::sync::Arc;
use std::time::Duration;

use super::autopilot::AutopilotConfig;
use super::{Core, CoreError, State, Unsealed, paths};
use crate::server::barrier::{Barrier, KEYRING_PATH};
use crate::server::cluster::{ClusterTls, NodeTls};
use crate::server::physical::{RaftBackend, RaftRole, ReadFence};

mod autopilot;

/// How often the HA loop looks again when nothing woke it.
const HA_TICK: Duration = Duration::from_millis(500);
/// How long a stopping leader tries to hand its office over (issue: about 2 s).
const HANDOFF_PATIENCE: Duration = Duration::from_secs(2);
/// How long an unseal waits to become active on a node that raft says leads.
const ACTIVATE_PATIENCE: Duration = Duration::from_secs(2);

/// This node's place in its HA cluster, shaped like `sys/leader`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HaStatus {
    /// Whether this storage supports HA (raft).
    pub ha_enabled: bool,
    /// Whether this node is the active node (the raft leader).
    pub is_self: bool,
    /// The active node's `api_addr` ("" when none is known).
    pub leader_address: String,
    /// The active node's `cluster_addr` ("" when none is known).
    pub leader_cluster_address: String,
    pub raft_committed_index: u64,
    pub raft_applied_index: u64,
    /// This node's current raft term (0 without raft): with `is_self`, lets a checker prove
    /// there were never two leaders in one term.
    pub raft_term: u64,
    /// This node's raft role, when raft.
    pub role: Option<RaftRole>,
}

impl Core {
    /// The raft handle, when this server runs on integrated raft storage.
    pub fn raft(&self) -> Option<&RaftBackend> {
        self.raft.as_ref()
    }

    /// `sys/leader`'s facts: with raft the leader as openraft last saw it; else HA off.
    pub fn ha_status(&self) -> HaStatus {
        let Some(raft) = &self.raft else {
            return HaStatus::default();
        };
        let st = raft.status();
        let (leader_address, leader_cluster_address) = st
            .leader
            .map(|n| (n.api_addr, n.cluster_addr))
            .unwrap_or_default();
        HaStatus {
            ha_enabled: true,
            is_self: st.role == RaftRole::Leader,
            leader_address,
            leader_cluster_address,
            raft_committed_index: st.committed_index,
            raft_applied_index: st.applied_index,
            raft_term: st.term,
            role: Some(st.role),
        }
    }

    /// This node's cluster-port identity: `None` until it is unsealed (or has joined). The
    /// cluster listener and the request forwarder wait on it.
    pub fn node_tls(&self) -> tokio::sync::watch::Receiver<Option<Arc<NodeTls>>> {
        self.node_tls.subscribe()
    }

    /// At `sys/init`: forms a one-node raft cluster on this node, unless it already leads one
    /// of its own (an init that failed after forming it, retried). Refused on a node that has
    /// joined a cluster, and on one whose `retry_join` targets answer as initialized: nothing
    /// but this call ever forms a cluster, and it must not form a second one.
    pub(super) async fn form_cluster(&self) -> Result<(), CoreError> {
        let Some(raft) = &self.raft else {
            return Ok(());
        };
        if raft.is_initialized().await? {
            let peers = raft.configuration();
            if peers.len() == 1 && peers[0].id == raft.node_id() {
                return Ok(());
            }
            return Err(CoreError::InvalidRequest(
                "this node has joined a raft cluster; it is initialized through the cluster (initialize only the first node, then let the others join)".into(),
            ));
        }
        self.refuse_init_if_joining().await?;
        raft.initialize_single().await?;
        Ok(())
    }

    /// Publishes this node's cluster-port identity from the cluster CA behind the barrier
    /// (read from the local replica), once per process. A server moved to raft by `operator
    /// migrate` has no CA yet: its leader makes one.
    pub(super) async fn publish_cluster_tls(&self, unsealed: &Unsealed) {
        let Some(raft) = &self.raft else { return };
        if self.node_tls.borrow().is_some() {
            return;
        }
        match self.cluster_tls(raft, unsealed).await {
            Ok(ca) => self.install_node_tls(raft, &ca),
            Err(e) => tracing::error!(
                error = %e,
                "cannot load the cluster TLS; this node cannot reach its peers until it is unsealed again"
            ),
        }
    }

    /// Issues this node's certificate from the cluster CA and hands it to raft and to the
    /// cluster listener.
    pub(super) fn install_node_tls(&self, raft: &RaftBackend, ca: &ClusterTls) {
        let node = raft.node_info();
        let issued = ca
            .issue_node(&node.name, &node.cluster_addr)
            .map_err(|e| e.to_string())
            .and_then(|tls| {
                raft.set_cluster_tls(&tls).map_err(|e| e.to_string())?;
                Ok(tls)
            });
        match issued {
            Ok(tls) => {
                tracing::info!(node = %node.name, cluster_addr = %node.cluster_addr, "cluster TLS ready");
                self.node_tls.send_replace(Some(Arc::new(tls)));
            }
            Err(e) => tracing::error!(error = %e, "cannot issue this node's cluster certificate"),
        }
    }

    async fn cluster_tls(
        &self,
        raft: &RaftBackend,
        unsealed: &Unsealed,
    ) -> Result<ClusterTls, CoreError> {
        let local = Barrier::new(Arc::clone(&self.local), unsealed.barrier.keyring());
        if let Some(raw) = local.get(paths::CLUSTER_TLS).await? {
            return ClusterTls::from_bytes(&raw).map_err(|e| CoreError::Corrupt {
                path: paths::CLUSTER_TLS,
                reason: e.to_string(),
            });
        }
        if !raft.is_leader() {
            return Err(CoreError::Corrupt {
                path: paths::CLUSTER_TLS,
                reason: "missing on a standby; it arrives with the leader's log".into(),
            });
        }
        let ca = ClusterTls::generate().map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        let raw = ca
            .to_bytes()
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        unsealed.barrier.put(paths::CLUSTER_TLS, &raw).await?;
        tracing::info!(
            "generated the cluster CA (this store had none, e.g. after operator migrate)"
        );
        Ok(ca)
    }

    /// Starts the HA loop (raft only); it ends when raft stops.
    pub fn spawn_ha(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let raft = self.raft.clone()?;
        let core = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut watch = raft.role_watch();
            let mut replaced = raft.state_replaced();
            let mut autopilot = autopilot::Autopilot::default();
            loop {
                core.ha_step(&raft).await;
                if let Some(config) = core.autopilot_config(&raft).await {
                    autopilot.step(&raft, &config).await;
                } else {
                    autopilot.forget();
                }
                tokio::select! {
                    alive = watch.changed() => if !alive { break },
                    r = replaced.changed() => {
                        if r.is_err() { break }
                        core.after_state_replaced().await;
                    }
                    () = tokio::time::sleep(HA_TICK) => {}
                }
            }
        }))
    }

    /// Test only: marks the serving state as loaded under `under` (as if this node had held
    /// office in another term when it loaded it). `false` when there is no serving state or a
    /// request still holds it.
    #[cfg(test)]
    pub(crate) async fn mark_loaded_under(
        &self,
        under: crate::server::physical::Leadership,
    ) -> bool {
        let mut state = self.state.write().await;
        match &mut *state {
            State::Unsealed(u) => Arc::get_mut(u).is_some_and(|u| {
                u.loaded_under = Some(under);
                true
            }),
            _ => false,
        }
    }

    /// Right after an unseal: if raft says this node leads, become active now (bounded), so
    /// a one-node server serves as soon as `sys/unseal` returns; else the HA loop does it.
    pub(super) async fn activate_if_leader(&self) {
        if let Some(raft) = &self.raft
            && raft.is_leader()
        {
            let _ = tokio::time::timeout(ACTIVATE_PATIENCE, self.ha_step(raft)).await;
        }
    }

    /// Autopilot's configuration, read only on a serving leader that has learners to promote.
    async fn autopilot_config(&self, raft: &RaftBackend) -> Option<AutopilotConfig> {
        if !raft.is_leader() || raft.configuration().iter().all(|p| p.voter) {
            return None;
        }
        let u = self.unsealed().await.ok()?;
        AutopilotConfig::load(&u.barrier).await.ok()
    }

    /// One pass of the HA loop (see the module docs).
    async fn ha_step(&self, raft: &RaftBackend) {
        let current = match &*self.state.read().await {
            State::Uninitialized => None,
            State::Sealed(_) => return,
            State::Unsealed(u) => Some(Arc::clone(u)),
        };
        let Some(current) = current else {
            self.notice_joined(raft).await;
            return;
        };
        let leader = raft.is_leader();
        // A serving state from an earlier term of office (this node lost it and won it back
        // between two passes) is reloaded like a standby's.
        let earlier_term = leader
            && !current.standby
            && current
                .loaded_under
                .is_some_and(|under| raft.leadership() != Some(under));
        if current.standby != leader && !earlier_term {
            return;
        }
        // The reads that load a serving state record the leadership that confirmed them.
        let (reloaded, under) = ReadFence::scope(async {
            let reloaded = self.reload_unsealed(&current, !leader).await;
            (reloaded, ReadFence::leadership())
        })
        .await;
        match reloaded.map(|mut next| {
            if leader {
                next.loaded_under = under;
            }
            next
        }) {
            Ok(next) => {
                let mut state = self.state.write().await;
                if let State::Unsealed(u) = &*state
                    && Arc::ptr_eq(u, &current)
                {
                    *state = State::Unsealed(Arc::new(next));
                    if leader {
                        tracing::info!("became the active node");
                    } else {
                        tracing::info!("no longer the active node; now a standby");
                    }
                }
            }
            // Retried on the next change or tick (a new leader may not have its lease yet).
            Err(e) => tracing::debug!(error = %e, "HA: unsealed state not reloaded yet"),
        }
    }

    /// This node's whole table was replaced (a restore from the log, or a raft snapshot that
    /// caught it up). A standby reloads its state from the new data; when the keyring there no
    /// longer opens with this node's root key (`snapshot-force` from another cluster), it seals,
    /// so the seal (auto-unseal, or the snapshot's unseal keys) opens the restored data.
    async fn after_state_replaced(&self) {
        let Ok(current) = self.unsealed_any().await else {
            return;
        };
        if !current.standby {
            // The leader that restored has already resealed itself (see `raft_admin`).
            return;
        }
        let reopened = match self.local.get(KEYRING_PATH).await {
            Ok(Some(blob)) => current.barrier.keyring().reopen(&blob).ok(),
            _ => None,
        };
        let next = match reopened {
            Some(keyring) => self
                .load_unsealed(
                    Arc::new(keyring),
                    current.seal_config.clone(),
                    current.recovery.clone(),
                    true,
                )
                .await
                .ok(),
            None => None,
        };
        let mut state = self.state.write().await;
        let State::Unsealed(u) = &*state else { return };
        if !Arc::ptr_eq(u, &current) {
            return;
        }
        match next {
            Some(next) => *state = State::Unsealed(Arc::new(next)),
            None => {
                *state = State::Sealed(super::SealedState {
                    seal_config: current.seal_config.clone(),
                    recovery: current.recovery.clone(),
                    progress: super::Progress::default(),
                    manual: false,
                    join: None,
                });
                self.metrics.sealed.set(1);
                tracing::warn!(
                    "the replicated data was replaced by a snapshot from other keys; sealed, to unseal with them"
                );
                drop(state);
                self.wake.notify_one();
            }
        }
    }

    /// The unsealed state again, for a new role: as the leader with the current keyring read
    /// through raft; as a standby over the local replica.
    async fn reload_unsealed(
        &self,
        current: &Unsealed,
        standby: bool,
    ) -> Result<Unsealed, CoreError> {
        let keyring = if standby {
            current.barrier.keyring()
        } else {
            let blob = super::keyring_blob(&*self.physical).await?;
            Arc::new(current.barrier.keyring().reopen(&blob)?)
        };
        self.load_unsealed(
            keyring,
            current.seal_config.clone(),
            current.recovery.clone(),
            standby,
        )
        .await
    }

    /// A node that joined a cluster stays uninitialized until its replica holds the seal
    /// configuration; then it is sealed, and the auto-unseal loop (or an operator with unseal
    /// keys) takes over.
    async fn notice_joined(&self, raft: &RaftBackend) {
        if !raft.is_initialized().await.unwrap_or(false) {
            return;
        }
        let next = match Self::starting_state(&*self.local, &self.seal).await {
            Ok(State::Uninitialized) => return,
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "the replicated seal configuration is unusable");
                return;
            }
        };
        let mut state = self.state.write().await;
        if matches!(*state, State::Uninitialized) {
            *state = next;
            self.metrics.initialized.set(1);
            tracing::info!(
                "the replicated cluster state arrived; this node is now initialized and sealed"
            );
            drop(state);
            self.wake.notify_one();
        }
    }

    /// On SIGTERM: a leader with other voters transfers leadership to the most caught-up one
    /// and waits for it (at most [`HANDOFF_PATIENCE`]) before the server stops.
    pub async fn hand_off_leadership(&self) {
        let Some(raft) = &self.raft else { return };
        if !raft.is_leader() || raft.configuration().iter().filter(|p| p.voter).count() < 2 {
            return;
        }
        match tokio::time::timeout(HANDOFF_PATIENCE, raft.step_down(HANDOFF_PATIENCE)).await {
            Ok(Ok(to)) => tracing::info!(to, "handed leadership over before stopping"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not hand leadership over; the others will elect a leader")
            }
            Err(_) => {
                tracing::warn!("leadership hand-over timed out; the others will elect a leader")
            }
        }
    }

    /// Stops raft (on server shutdown), so its files close in order.
    pub async fn shutdown_storage(&self) {
        if let Some(raft) = &self.raft
            && let Err(e) = raft.shutdown().await
        {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
    }
}
