//! Physical layer (raft): the sending side of raft RPCs, openraft's `RaftNetworkFactory` over
//! the cluster port. Does network I/O (through [`crate::server::cluster::PeerClient`]).
//!
//! Every peer gets one pooled HTTP/2 connection over mutual TLS (shared by openraft's
//! replication, heartbeat and snapshot clients for that peer). Each RPC is bounded by
//! openraft's per-RPC timeout (`RPCOption::hard_ttl`). A peer that cannot be connected to, or
//! that refuses the RPC, is reported as `Unreachable`, so openraft backs off; a connection
//! that breaks mid-request is a `Network` error (retried at once); a deadline is a `Timeout`.
//!
//! Until cluster TLS is installed ([`ClusterNetwork::set_tls`]) every RPC is `Unreachable`
//! with a reason: a single-node cluster works, and nothing pretends to reach a peer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::OptionalSend;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use rustls::ClientConfig;

use super::network::{RaftRpc, RaftRpcReply, decode_wire};
use super::types::{NodeInfo, Snapshot, SnapshotData, TypeConfig, Vote, encode};
use crate::server::cluster::{PeerClient, RAFT_RPC_PATH};

/// Largest reply accepted from a peer (replies are small: votes and acknowledgements).
const MAX_REPLY: usize = 1024 * 1024;

/// The network of one raft node: peer connections, shared by all of openraft's clients.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct ClusterNetwork {
    shared: Arc<Shared>,
}

struct Shared {
    node_id: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tls: Option<Arc<ClientConfig>>,
    /// One client per `cluster_addr`; dropped when the TLS configuration changes.
    peers: HashMap<String, Arc<PeerClient>>,
}

impl ClusterNetwork {
    pub(crate) fn new(node_id: u64, tls: Option<Arc<ClientConfig>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                node_id,
                state: Mutex::new(State {
                    tls,
                    peers: HashMap::new(),
                }),
            }),
        }
    }

    /// Installs (or replaces) the client TLS configuration; open connections are dropped and
    /// peers are reconnected with it on their next RPC.
    pub(crate) fn set_tls(&self, tls: Arc<ClientConfig>) {
        let mut state = self.shared.lock();
        state.tls = Some(tls);
        state.peers.clear();
    }
}

impl Shared {
    /// The state; a panic elsewhere while holding the lock leaves it consistent (plain
    /// assignments), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peer(&self, addr: &str) -> Result<Arc<PeerClient>, String> {
        let mut state = self.lock();
        if let Some(p) = state.peers.get(addr) {
            return Ok(Arc::clone(p));
        }
        let Some(tls) = state.tls.clone() else {
            return Err("this node has no cluster TLS yet (it is sealed, or has not joined a cluster), so it cannot reach raft peers".into());
        };
        let client = Arc::new(PeerClient::new(addr, tls).map_err(|e| e.to_string())?);
        state.peers.insert(addr.to_owned(), Arc::clone(&client));
        Ok(client)
    }
}

/// openraft's client for one peer.
pub(crate) struct PeerNetwork {
    shared: Arc<Shared>,
    target: u64,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for ClusterNetwork {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        PeerNetwork {
            shared: Arc::clone(&self.shared),
            target,
            addr: node.cluster_addr.clone(),
        }
    }
}

/// Why an RPC failed, before it is mapped to openraft's error of the calling method.
enum CallError {
    Unreachable(String),
    Network(String),
    Timeout(Duration),
}

impl CallError {
    fn rpc(self, net: &PeerNetwork, action: RPCTypes) -> RPCError<TypeConfig> {
        match self {
            Self::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            Self::Network(m) => RPCError::Network(NetworkError::from_string(m)),
            Self::Timeout(timeout) => RPCError::Timeout(net.timeout(action, timeout)),
        }
    }

    fn streaming(self, net: &PeerNetwork) -> StreamingError<TypeConfig> {
        match self {
            Self::Unreachable(m) => StreamingError::Unreachable(Unreachable::from_string(m)),
            Self::Network(m) => StreamingError::Network(NetworkError::from_string(m)),
            Self::Timeout(timeout) => {
                StreamingError::Timeout(net.timeout(RPCTypes::InstallSnapshot, timeout))
            }
        }
    }
}

impl PeerNetwork {
    fn timeout(&self, action: RPCTypes, timeout: Duration) -> Timeout<TypeConfig> {
        Timeout {
            action,
            id: self.shared.node_id,
            target: self.target,
            timeout,
        }
    }

    /// Sends `rpc` and returns the peer's reply, within `timeout`.
    async fn call(&self, rpc: RaftRpc, timeout: Duration) -> Result<RaftRpcReply, CallError> {
        let who = || format!("raft peer {} at {}", self.target, self.addr);
        let peer = self
            .shared
            .peer(&self.addr)
            .map_err(|e| CallError::Unreachable(format!("{}: {e}", who())))?;
        let body =
            encode(&rpc).map_err(|e| CallError::Network(format!("cannot encode the RPC: {e}")))?;
        let reply =
            match tokio::time::timeout(timeout, peer.post(RAFT_RPC_PATH, body, MAX_REPLY)).await {
                Err(_) => return Err(CallError::Timeout(timeout)),
                Ok(Err(e)) if e.is_connect() => return Err(CallError::Unreachable(e.to_string())),
                Ok(Err(e @ crate::server::cluster::ClientError::Status { .. })) => {
                    return Err(CallError::Unreachable(e.to_string()));
                }
                Ok(Err(e)) => return Err(CallError::Network(e.to_string())),
                Ok(Ok(bytes)) => bytes,
            };
        match decode_wire::<RaftRpcReply>(&reply, "raft RPC reply") {
            Ok(RaftRpcReply::Refused(reason)) => Err(CallError::Unreachable(format!(
                "{} refused the RPC: {reason}",
                who()
            ))),
            Ok(r) => Ok(r),
            Err(e) => Err(CallError::Network(format!("{}: {e}", who()))),
        }
    }

    fn unexpected(&self) -> CallError {
        CallError::Network(format!(
            "raft peer {} at {} answered with a reply of the wrong kind; it runs an incompatible version",
            self.target, self.addr
        ))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::AppendEntries;
        match self.call(RaftRpc::Append(rpc), option.hard_ttl()).await {
            Ok(RaftRpcReply::Append(r)) => Ok(r),
            Ok(_) => Err(self.unexpected().rpc(self, action)),
            Err(e) => Err(e.rpc(self, action)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RaftRpc::Vote(rpc), option.hard_ttl()).await {
            Ok(RaftRpcReply::Vote(r)) => Ok(r),
            Ok(_) => Err(self.unexpected().rpc(self, RPCTypes::Vote)),
            Err(e) => Err(e.rpc(self, RPCTypes::Vote)),
        }
    }

    /// Sent to the peer like a vote; never granted by default (an unreachable peer or a
    /// refusal is an error, not a grant).
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RaftRpc::PreVote(rpc), option.hard_ttl()).await {
            Ok(RaftRpcReply::Vote(r)) => Ok(r),
            Ok(_) => Err(self.unexpected().rpc(self, RPCTypes::Vote)),
            Err(e) => Err(e.rpc(self, RPCTypes::Vote)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let rpc = RaftRpc::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = self.call(rpc, option.hard_ttl()) => r,
        };
        match result {
            Ok(RaftRpcReply::Snapshot(r)) => Ok(r),
            Ok(_) => Err(self.unexpected().streaming(self)),
            Err(e) => Err(e.streaming(self)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::TransferLeader;
        match self
            .call(RaftRpc::TransferLeader(req), option.hard_ttl())
            .await
        {
            Ok(RaftRpcReply::TransferLeader(r)) => Ok(r),
            Ok(_) => Err(self.unexpected().rpc(self, action)),
            Err(e) => Err(e.rpc(self, action)),
        }
    }
}
