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

    /// The error for a request this node cannot serve because it does not lead.
    pub(super) fn not_leader(&self, leader: Option<NodeInfo>) -> PhysicalError {
        let status = self.status();
        let reason = match (&leader, status.initialized) {
            (_, false) => "this node is not part of a raft cluster yet (its raft state is empty); initialize the cluster with sys/init on one node, or join this node to the existing cluster".to_owned(),
            (Some(l), true) => format!(
                "this node is a standby; the active node is {} (raft node {}); send the request to {}",
                l.name,
                status.leader_id.map_or_else(|| "?".to_owned(), |id| id.to_string()),
                l.api_addr
            ),
            (None, true) if status.leader_id == Some(self.inner.node_id) => "this node was just elected raft leader and no quorum has acknowledged it yet; retry in a moment".to_owned(),
            (None, true) => "no raft leader is elected at the moment; retry in a few seconds, and check that a quorum of the cluster's voters is up".to_owned(),
        };
        PhysicalError::NotLeader {
            leader_api_addr: leader.map(|l| l.api_addr),
            reason,
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
                self.not_leader(f.leader_node)
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
