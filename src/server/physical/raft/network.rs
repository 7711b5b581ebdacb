//! Physical layer (raft): the raft RPC messages of the cluster port, and the receiving side
//! that hands them to the local raft node. No I/O of its own (the cluster listener moves the
//! bytes; see [`super::transport`] for the sending side).
//!
//! [`RaftRpc`] and [`RaftRpcReply`] are plain serde types encoded with postcard
//! ([`super::types::encode`]). [`RaftRpcHandler`] decodes a request from a peer, calls the
//! local `Raft` and encodes the reply. The bytes come from a peer that proved a cluster
//! certificate, but they are still parsed as untrusted input: anything that does not decode,
//! or carries trailing bytes, is answered with [`RaftRpcReply::Refused`], never a panic.

use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::Raft;
use super::types::{Snapshot, SnapshotMeta, TypeConfig, Vote, encode};
use crate::server::cluster::RaftRpcService;

/// One raft RPC as the cluster transport sends it.
#[derive(Serialize, Deserialize)]
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

impl RaftRpc {
    fn kind(&self) -> &'static str {
        match self {
            Self::Append(_) => "append-entries",
            Self::Vote(_) => "vote",
            Self::PreVote(_) => "pre-vote",
            Self::Snapshot { .. } => "install-snapshot",
            Self::TransferLeader(_) => "transfer-leader",
        }
    }
}

/// The answer to a [`RaftRpc`], or the reason the receiving node refused it.
#[derive(Serialize, Deserialize)]
pub(crate) enum RaftRpcReply {
    Append(AppendEntriesResponse<TypeConfig>),
    /// The answer to a vote or a pre-vote.
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// The receiver could not handle the RPC (undecodable, stopped, ...); the text says why.
    Refused(String),
}

/// Decodes bytes from the wire: one whole message of type `T`, nothing after it.
pub(crate) fn decode_wire<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!(
            "the {what} has {} unexpected trailing bytes; the peer runs an incompatible version",
            rest.len()
        )),
        Err(e) => Err(format!(
            "cannot decode the {what} ({} bytes): {e}; the peer runs an incompatible version or the message is corrupt",
            bytes.len()
        )),
    }
}

/// The receiving side of raft RPCs, mounted on the cluster port by
/// [`crate::server::cluster::router`]. Cheap to clone.
#[derive(Clone)]
pub struct RaftRpcHandler {
    raft: Raft,
}

impl std::fmt::Debug for RaftRpcHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftRpcHandler").finish_non_exhaustive()
    }
}

impl RaftRpcHandler {
    pub(crate) fn new(raft: Raft) -> Self {
        Self { raft }
    }

    async fn dispatch(&self, rpc: RaftRpc) -> RaftRpcReply {
        let kind = rpc.kind();
        let refused = |e: &dyn std::fmt::Display| {
            RaftRpcReply::Refused(format!("this node cannot handle the {kind} RPC: {e}"))
        };
        match rpc {
            RaftRpc::Append(req) => match self.raft.append_entries(req).await {
                Ok(r) => RaftRpcReply::Append(r),
                Err(e) => refused(&e),
            },
            RaftRpc::Vote(req) => match self.raft.vote(req).await {
                Ok(r) => RaftRpcReply::Vote(r),
                Err(e) => refused(&e),
            },
            RaftRpc::PreVote(req) => match self.raft.pre_vote(req).await {
                Ok(r) => RaftRpcReply::Vote(r),
                Err(e) => refused(&e),
            },
            RaftRpc::Snapshot { vote, meta, data } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: io::Cursor::new(data),
                };
                match self.raft.install_full_snapshot(vote, snapshot).await {
                    Ok(r) => RaftRpcReply::Snapshot(r),
                    Err(e) => refused(&e),
                }
            }
            RaftRpc::TransferLeader(req) => match self.raft.handle_transfer_leader(req).await {
                Ok(r) => RaftRpcReply::TransferLeader(r),
                Err(e) => refused(&e),
            },
        }
    }
}

#[async_trait]
impl RaftRpcService for RaftRpcHandler {
    async fn handle(&self, request: Bytes) -> Vec<u8> {
        let reply = match decode_wire::<RaftRpc>(&request, "raft RPC") {
            Ok(rpc) => self.dispatch(rpc).await,
            Err(reason) => {
                tracing::warn!(%reason, "cluster port: refused an undecodable raft RPC");
                RaftRpcReply::Refused(reason)
            }
        };
        encode(&reply)
            .or_else(|e| {
                encode(&RaftRpcReply::Refused(format!(
                    "cannot encode the reply: {e}"
                )))
            })
            .unwrap_or_default()
    }
}
