//! Physical layer (raft): the errors of the raft backend, in words that name the cause and
//! the fix. Pure: no I/O.

use std::path::Path;

use openraft::errors::{ClientWriteError, RaftError};

use super::RaftBackend;
use super::types::{NodeInfo, TypeConfig};
use crate::server::physical::PhysicalError;

/// An I/O error of the raft storage in `dir`.
pub(super) fn io_error(dir: &Path, message: impl std::fmt::Display) -> PhysicalError {
    PhysicalError::Io {
        backend: "raft",
        path: dir.display().to_string(),
        message: message.to_string(),
    }
}

impl RaftBackend {
    pub(super) fn err(&self, message: impl std::fmt::Display) -> PhysicalError {
        io_error(&self.inner.dir, message)
    }

    /// The error for a request this node cannot serve because it does not lead. `leader_id`
    /// and `leader` come from one observation (raft's answer, or one status), so the message
    /// never names one node with another's id.
    pub(super) fn not_leader(
        &self,
        leader_id: Option<u64>,
        leader: Option<NodeInfo>,
    ) -> PhysicalError {
        let status = self.status();
        let reason = match (&leader, status.initialized) {
            (_, false) => "this node is not part of a raft cluster yet (its raft state is empty); initialize the cluster with sys/init on one node, or join this node to the existing cluster".to_owned(),
            (Some(l), true) => format!(
                "this node is a standby; the active node is {} (raft node {}); send the request to {}",
                l.name,
                leader_id.map_or_else(|| "?".to_owned(), |id| id.to_string()),
                l.api_addr
            ),
            (None, true) if status.leader_id == Some(self.inner.node_id) => "this node is the raft leader but no quorum has acknowledged it recently (it was just elected, or it is cut off from the other voters); retry in a moment, and check that a quorum of the voters is up and reachable".to_owned(),
            (None, true) => "no raft leader is elected at the moment; retry in a few seconds, and check that a quorum of the cluster's voters is up".to_owned(),
        };
        PhysicalError::NotLeader {
            leader_api_addr: leader.map(|l| l.api_addr),
            reason,
        }
    }

    /// The error for a write refused because this node no longer holds the leadership that
    /// confirmed the request's reads (`now_id`, `now`: the leader as raft knows it now).
    pub(super) fn leadership_changed(
        &self,
        read_under: crate::server::physical::Leadership,
        now_id: Option<u64>,
        now: Option<NodeInfo>,
    ) -> PhysicalError {
        PhysicalError::NotLeader {
            leader_api_addr: now.as_ref().map(|n| n.api_addr.clone()),
            reason: format!(
                "the raft leadership changed while this request was being served (its reads were confirmed in term {}, the leader is now {}); nothing was written: retry the request",
                read_under.term,
                match (&now, now_id) {
                    (Some(n), Some(id)) => format!("{} (raft node {id})", n.name),
                    _ => "unknown".to_owned(),
                }
            ),
        }
    }

    /// The error of a failed proposal (`what`: "the write", "the membership change").
    pub(super) fn write_error(
        &self,
        e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
        what: &str,
    ) -> PhysicalError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                self.not_leader(f.leader_id, f.leader_node)
            }
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => self.err(format!(
                "the leader changed while {what} was being replicated: it may or may not be stored; read it back before you retry it"
            )),
            RaftError::APIError(e) => {
                self.err(format!("raft refused {what}: {e}; it was not applied"))
            }
            RaftError::Fatal(e) => self.err(format!(
                "raft has stopped: {e}; {what} may or may not be stored; restart the server"
            )),
        }
    }

    pub(super) fn not_leader_quorum(&self, e: impl std::fmt::Display) -> PhysicalError {
        PhysicalError::NotLeader {
            leader_api_addr: None,
            reason: format!(
                "this node could not confirm its leadership with a quorum ({e}); retry in a few seconds, and check that a quorum of the cluster's voters is up and reachable"
            ),
        }
    }
}
