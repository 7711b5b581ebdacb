//! Physical layer (raft): the cluster as the leader sees it (each member's replication
//! progress and last contact, from openraft's metrics, as our own types), for autopilot's state
//! and `sys/ha-status`; and `sys/step-down`: leadership handed to the most caught-up voter.
//! No I/O of its own beyond the leadership transfer (raft RPCs).

use std::time::Duration;

use openraft::Instant as _;
use openraft::type_config::async_runtime::WatchReceiver;

use super::RaftBackend;
use super::types::NodeInfo;
use crate::server::physical::PhysicalError;

/// One member of the cluster with what the leader knows of its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftServerState {
    pub id: u64,
    pub node: NodeInfo,
    /// A voter, else a learner (non-voter).
    pub voter: bool,
    /// Whether it is the current leader.
    pub leader: bool,
    /// Index and term of the last entry known to be replicated to it (on the leader: of its
    /// own log). `None` when this node does not lead, or the member has not answered yet.
    pub matched: Option<(u64, u64)>,
    /// Time since the leader last heard from it (zero for the leader itself). `None` when this
    /// node does not lead, or the member has never answered.
    pub last_contact: Option<Duration>,
}

/// The cluster as this node sees it. Progress and contact are only known on the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftClusterState {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    /// Whether this node leads (progress and contact figures are meaningful).
    pub is_leader: bool,
    pub term: u64,
    /// Index of this node's last log entry.
    pub last_log_index: u64,
    /// Log index of the entry that set the current membership (0 when none).
    pub membership_index: u64,
    /// Members, voters first, then by id.
    pub servers: Vec<RaftServerState>,
}

impl RaftClusterState {
    /// The voters' ids.
    pub fn voter_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.servers.iter().filter(|s| s.voter).map(|s| s.id)
    }
}

impl RaftBackend {
    /// Each member with its replication progress and last contact, from openraft's metrics.
    pub fn cluster_state(&self) -> RaftClusterState {
        let peers = self.configuration();
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let is_leader = m.current_leader == Some(m.id) && m.state == openraft::ServerState::Leader;
        let last_log_index = m.last_log_index.unwrap_or(0);
        let own_term = m.current_term;
        let servers = peers
            .into_iter()
            .map(|p| {
                let leader = m.current_leader == Some(p.id);
                let (matched, last_contact) = if !is_leader {
                    (None, None)
                } else if p.id == m.id {
                    (Some((last_log_index, own_term)), Some(Duration::ZERO))
                } else {
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&p.id).cloned().flatten())
                        .map(|l| (l.index(), l.committed_leader_id().term));
                    let contact = m
                        .heartbeat
                        .as_ref()
                        .and_then(|h| h.get(&p.id).cloned().flatten())
                        .map(|t| t.elapsed());
                    (matched, contact)
                };
                RaftServerState {
                    id: p.id,
                    node: p.node,
                    voter: p.voter,
                    leader,
                    matched,
                    last_contact,
                }
            })
            .collect();
        RaftClusterState {
            node_id: m.id,
            leader_id: m.current_leader,
            is_leader,
            term: m.current_term,
            last_log_index,
            membership_index: m
                .membership_config
                .log_id()
                .as_ref()
                .map_or(0, |l| l.index()),
            servers,
        }
    }

    /// `sys/step-down`: hands leadership to the other voter with the highest replicated index
    /// (ties: the lowest id) and waits, at most `timeout`, until it leads; returns its id.
    /// Fails on a node that does not lead, and when there is no other voter.
    pub async fn step_down(&self, timeout: Duration) -> Result<u64, PhysicalError> {
        if !self.is_leader() {
            let st = self.status();
            return Err(self.not_leader(st.leader_id, st.leader));
        }
        let state = self.cluster_state();
        let target = state
            .servers
            .iter()
            .filter(|s| s.voter && s.id != state.node_id)
            .max_by_key(|s| {
                (
                    s.matched.map_or(0, |(index, _)| index),
                    std::cmp::Reverse(s.id),
                )
            })
            .map(|s| s.id);
        let Some(to) = target else {
            return Err(self.err(
                "this node is the only voter of its raft cluster, so there is no other node to hand leadership to; join more nodes (and let them become voters) before stepping down",
            ));
        };
        tracing::info!(to, "stepping down: transferring raft leadership");
        self.transfer_leader(to, timeout).await?;
        Ok(to)
    }
}
