//! Core: high availability on integrated raft storage. The raft leader is the active node.
//! Holds the node's [`RaftBackend`] handle (when `storage "raft"`) and answers what
//! `sys/leader` and `sys/health` report; forms the cluster at `sys/init`. No I/O of its own.

use std::time::Duration;

use super::{Core, CoreError};
use crate::server::physical::{RaftBackend, RaftRole};

/// How long a starting node waits for a raft leader before it reads its seal configuration.
pub(super) const LEADER_PATIENCE: Duration = Duration::from_secs(20);

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
            role: Some(st.role),
        }
    }

    /// At `sys/init`: forms a one-node raft cluster on this node, unless it already belongs to
    /// one (an init that failed after forming it, retried). Nothing else ever forms a cluster.
    pub(super) async fn form_cluster(&self) -> Result<(), CoreError> {
        let Some(raft) = &self.raft else {
            return Ok(());
        };
        if !raft.is_initialized().await? {
            raft.initialize_single().await?;
        }
        Ok(())
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
