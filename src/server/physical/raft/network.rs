//! Physical layer (raft): the network seen by openraft. No I/O yet.
//!
//! This step is single-node: [`NotConnected`] gives openraft a client per peer whose every RPC
//! fails with an "unreachable" error that says why, so a one-voter cluster works and nothing
//! pretends to reach a peer. [`RaftRpc`] and [`RaftRpcReply`] are the messages the cluster-port
//! transport (HTTP/2 over mutual TLS on 8201) will carry; they are plain serde types encoded
//! with [`super::types::encode`], so the transport only moves bytes.

use std::future::Future;

use openraft::OptionalSend;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::types::{NodeInfo, Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote};

/// One raft RPC as the cluster transport will send it.
#[derive(Serialize, Deserialize)]
#[allow(dead_code)] // carried by the cluster transport, which is a later step
pub(crate) enum RaftRpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// A whole snapshot in one message (the [`super::state_machine`] buffer).
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
}

/// The answer to a [`RaftRpc`], or the reason the receiving node refused it.
#[derive(Serialize, Deserialize)]
#[allow(dead_code)] // carried by the cluster transport, which is a later step
pub(crate) enum RaftRpcReply {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// The receiver could not handle the RPC (stopped, not a member, ...); the text says why.
    Refused(String),
}

/// The network of a node that has no cluster transport: every RPC fails as unreachable.
#[derive(Debug, Clone, Default)]
pub(crate) struct NotConnected;

/// A client for one peer that cannot be reached (see [`NotConnected`]).
#[derive(Debug, Clone)]
pub(crate) struct NotConnectedClient {
    target: u64,
    addr: String,
}

impl NotConnectedClient {
    fn unreachable(&self) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!(
            "raft peer {} at {} is not connected: this build has no raft cluster transport yet, so only a single-node cluster works",
            self.target, self.addr
        ))
    }
}

impl RaftNetworkFactory<TypeConfig> for NotConnected {
    type Network = NotConnectedClient;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        NotConnectedClient {
            target,
            addr: node.cluster_addr.clone(),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for NotConnectedClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn pre_vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        // Not the default (which grants): an unreachable peer must not count as a grant.
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }

    async fn transfer_leader(
        &mut self,
        _req: TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }
}
