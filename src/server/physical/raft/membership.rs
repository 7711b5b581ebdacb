//! Physical layer (raft): cluster membership of the raft backend: add a learner, promote it,
//! replace the voters, remove a peer, transfer leadership, list the configuration, and a local
//! read for standbys. Network I/O through raft (membership entries are replicated).
//!
//! Every change is proposed on the leader; elsewhere it fails with
//! [`PhysicalError::NotLeader`]. A voter change goes through joint consensus (two entries).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::type_config::async_runtime::WatchReceiver;

use super::types::NodeInfo;
use super::{RaftBackend, state_machine};
use crate::server::physical::{PhysicalError, check_key};

/// One member of the raft configuration (Vault's `sys/storage/raft/configuration` servers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftPeer {
    pub id: u64,
    pub node: NodeInfo,
    /// A voter (counts for quorum and may lead), else a learner (non-voter).
    pub voter: bool,
}

impl RaftBackend {
    /// Adds `id` as a learner and waits, at most `timeout`, until it has replicated the leader's
    /// log up to the entry that added it (from the log, or from a snapshot when the log is
    /// compacted). On timeout the learner stays added and keeps catching up; the error says so.
    pub async fn add_learner(
        &self,
        id: u64,
        node: NodeInfo,
        timeout: Duration,
    ) -> Result<(), PhysicalError> {
        // openraft's own "blocking" mode only waits until the lag is under
        // `replication_lag_threshold` (thousands of entries), so wait here instead.
        let added = self
            .inner
            .raft
            .add_learner(id, node, false)
            .await
            .map_err(|e| self.write_error(e, "adding the learner"))?;
        let upto = added.log_id.index();
        self.inner
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id))
                        .is_some_and(|matched| matched.as_ref().is_some_and(|l| l.index() >= upto))
                },
                "the learner caught up",
            )
            .await
            .map(drop)
            .map_err(|e| {
                self.err(format!(
                    "raft node {id} was added as a learner but has not caught up within {timeout:?} ({e}); check that it is up and its cluster_addr is reachable from this node"
                ))
            })
    }

    /// Makes the learner `id` a voter.
    pub async fn promote(&self, id: u64) -> Result<(), PhysicalError> {
        self.change(
            ChangeMembers::AddVoterIds(BTreeSet::from([id])),
            "the promotion",
        )
        .await
    }

    /// Sets the voters to exactly `voters` (each already a member). Voters left out leave the
    /// cluster entirely.
    pub async fn change_membership(&self, voters: BTreeSet<u64>) -> Result<(), PhysicalError> {
        if voters.is_empty() {
            return Err(
                self.err("a raft cluster needs at least one voter; list the voters to keep")
            );
        }
        self.change(
            ChangeMembers::ReplaceAllVoters(voters),
            "the membership change",
        )
        .await
    }

    /// Removes `id` (voter or learner) from the cluster.
    pub async fn remove_peer(&self, id: u64) -> Result<(), PhysicalError> {
        let peer = self.configuration().into_iter().find(|p| p.id == id);
        let ids = BTreeSet::from([id]);
        match peer {
            None => Err(self.err(format!(
                "raft node {id} is not a member of this cluster; list the members with the raft configuration"
            ))),
            Some(p) if p.voter => {
                self.change(ChangeMembers::RemoveVoters(ids), "the peer removal")
                    .await
            }
            Some(_) => {
                self.change(ChangeMembers::RemoveNodes(ids), "the peer removal")
                    .await
            }
        }
    }

    async fn change(
        &self,
        change: ChangeMembers<u64, NodeInfo>,
        what: &str,
    ) -> Result<(), PhysicalError> {
        self.inner
            .raft
            .change_membership(change, false)
            .await
            .map(drop)
            .map_err(|e| self.write_error(e, what))
    }

    /// Hands leadership to the voter `to` and waits (at most `timeout`) until it leads.
    pub async fn transfer_leader(&self, to: u64, timeout: Duration) -> Result<(), PhysicalError> {
        if !self.is_leader() {
            let st = self.status();
            return Err(self.not_leader(st.leader_id, st.leader));
        }
        if !self.configuration().iter().any(|p| p.id == to && p.voter) {
            return Err(self.err(format!(
                "raft node {to} is not a voter of this cluster; leadership can only move to a voter"
            )));
        }
        self.inner
            .raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| self.err(format!("raft has stopped: {e}; restart the server")))?;
        self.inner
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader == Some(to), "the new leader")
            .await
            .map(drop)
            .map_err(|e| {
                self.err(format!(
                    "raft node {to} did not take over leadership within {timeout:?} ({e}); check that it is up and caught up, then retry"
                ))
            })
    }

    /// The members of the current configuration (as this node knows it), voters first.
    pub fn configuration(&self) -> Vec<RaftPeer> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let nodes: BTreeMap<u64, NodeInfo> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let mut peers: Vec<RaftPeer> = nodes
            .into_iter()
            .map(|(id, node)| RaftPeer {
                id,
                node,
                voter: voters.contains(&id),
            })
            .collect();
        peers.sort_by_key(|p| (!p.voter, p.id));
        peers
    }

    /// Reads `key` from this node's state machine without confirming leadership: what this
    /// node has applied, possibly behind the leader. For standbys and tests, never for client
    /// reads that must be linearizable.
    pub async fn read_local(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        check_key(key)?;
        let db = Arc::clone(&self.inner.sm_db);
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || state_machine::read_value(&db, &key))
            .await
            .map_err(|e| self.err(format!("storage task failed: {e}")))?
            .map_err(|e| self.err(e))
    }
}
