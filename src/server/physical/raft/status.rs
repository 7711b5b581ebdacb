//! Physical layer (raft): this node's raft state as our own types, derived from openraft's
//! metrics. Pure: no I/O.

use openraft::{RaftMetrics, ServerState};

use super::types::{NodeInfo, TypeConfig};

/// The role of a node in its raft cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftRole {
    /// Receives the log but does not vote (a joining node, or one with empty raft state).
    Learner,
    /// A voter following a leader (a standby).
    Follower,
    /// A voter running for leader.
    Candidate,
    /// The leader (the active node).
    Leader,
    /// The raft task has stopped.
    Shutdown,
}

/// A snapshot of this node's raft state (Vault's `sys/leader` and `sys/health` raft fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    pub node_id: u64,
    pub role: RaftRole,
    pub term: u64,
    /// Whether this node belongs to a cluster (has a membership).
    pub initialized: bool,
    pub leader_id: Option<u64>,
    /// The leader's names and addresses, when it is a known member.
    pub leader: Option<NodeInfo>,
    /// Index of the last committed entry (0 when none), Vault's `raft_committed_index`.
    pub committed_index: u64,
    /// Index of the last applied entry (0 when none), Vault's `raft_applied_index`.
    pub applied_index: u64,
    /// Index of the last entry in the local log (0 when none).
    pub last_log_index: u64,
    /// The voters of the current membership, with their names and addresses.
    pub voters: Vec<(u64, NodeInfo)>,
}

pub(crate) fn from_metrics(m: &RaftMetrics<TypeConfig>) -> RaftStatus {
    let membership = m.membership_config.membership();
    let voters = membership
        .voter_ids()
        .map(|id| (id, membership.get_node(&id).cloned().unwrap_or_default()))
        .collect();
    RaftStatus {
        node_id: m.id,
        role: match m.state {
            ServerState::Learner => RaftRole::Learner,
            ServerState::Follower => RaftRole::Follower,
            ServerState::Candidate => RaftRole::Candidate,
            ServerState::Leader => RaftRole::Leader,
            ServerState::Shutdown => RaftRole::Shutdown,
        },
        term: m.current_term,
        initialized: membership.nodes().next().is_some(),
        leader_id: m.current_leader,
        leader: m
            .current_leader
            .and_then(|id| membership.get_node(&id).cloned()),
        committed_index: m.local_committed.as_ref().map_or(0, |id| id.index()),
        applied_index: m.last_applied.as_ref().map_or(0, |id| id.index()),
        last_log_index: m.last_log_index.unwrap_or(0),
        voters,
    }
}
