//! Physical layer: integrated raft storage (`storage "raft"`) on openraft and redb. Does disk
//! I/O, and network I/O to peers through the cluster port ([`transport`], [`network`]).
//!
//! Layout of the configured `path`: `node-id` (this node's raft id, see [`node_id`]),
//! `raft/log.redb` (log, vote, committed, purged: [`log_store`]) and `raft/sm.redb` (the
//! key/value table, applied state and current snapshot: [`state_machine`]). Two files, so log
//! appends and state-machine applies do not serialise on redb's single writer.
//!
//! [`RaftBackend`] implements [`Physical`]:
//! - `put`, `delete` and `transaction` propose one log entry holding all their operations and
//!   return once it is committed and applied locally, so the writer reads its own write. On a
//!   node that is not the leader they fail with [`PhysicalError::NotLeader`], which carries the
//!   leader's `api_addr` when one is known.
//! - `get` and `list` first confirm leadership, then read the local state machine once it has
//!   applied everything committed before the read began: within the leader lease without a
//!   round trip (openraft's `ReadPolicy::LeaseRead`: a quorum acknowledged this leader less than
//!   `election_timeout_max` ago, and no follower calls an election before that lease plus an
//!   election timeout), else with a ReadIndex round (a quorum acknowledges this leader's term).
//!   A paused or partitioned ex-leader's lease has run out before any other node can be
//!   elected, and handing leadership over voids it, so neither can pass. Concurrent reads,
//!   and the reads of one request, share one confirmation that started after their request
//!   arrived ([`read_gate`], [`super::ReadFence`]).
//!
//! Peers: [`RaftBackend::open_clustered`] (or [`RaftBackend::set_cluster_tls`] later) gives the
//! node the cluster port's mutual TLS; without it every RPC to a peer fails as unreachable, so
//! only a single-node cluster works. [`RaftBackend::rpc_handler`] is the receiving side, for
//! the cluster listener to mount. Membership changes are in [`membership`]; the cluster's
//! state for autopilot and `sys/step-down` in [`cluster_state`]; snapshot archives (save and
//! restore through the log) in [`snapshot_io`].
//!
//! Only [`RaftBackend::initialize_single`] (which `sys/init` calls) forms a cluster. Opening a
//! node with empty raft state never initialises it: two nodes that each formed a cluster of
//! their own is the split-brain this rule exists to prevent.
//!
//! Every openraft type stays inside this module; the public API uses our own types.

mod cluster_state;
mod db_thread;
mod errors;
mod local;
mod log_store;
mod membership;
mod network;
mod node_id;
mod read_gate;
mod snapshot_io;
mod state_machine;
mod status;
mod timing;
mod transport;
mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openraft::errors::{
    ClientWriteError, Fatal, InitializeError, LinearizableReadError, RaftError,
};
use openraft::impls::ProgressResponder;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::linearizable_read::ReadLogId;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{ReadPolicy, ServerState};
use redb::Database;

pub use self::cluster_state::{RaftClusterState, RaftServerState};
use self::errors::io_error;
pub use self::local::{LocalView, Progress, RoleWatch};
use self::log_store::LogStore;
pub use self::membership::RaftPeer;
pub use self::network::RaftRpcHandler;
use self::read_gate::ReadGate;
pub use self::snapshot_io::{MAX_RESTORE_SIZE, RaftSnapshot, SnapshotError};
use self::state_machine::StateMachine;
pub use self::status::{RaftRole, RaftStatus};
pub use self::timing::RaftTiming;
use self::transport::ClusterNetwork;
pub use self::types::NodeInfo;
use self::types::{Request, TypeConfig};
use super::{Leadership, Physical, PhysicalError, ReadFence, TxnOp, check_key};
use crate::server::cluster::NodeTls;

/// The directory, inside the configured `path`, that holds the raft files.
pub const RAFT_DIR: &str = "raft";
/// Most key and value bytes one `put`, `delete` or `transaction` may carry: one raft entry
/// (Vault's `max_entry_size` default, 1 MiB). Entries travel to every peer and sit in the log.
pub const MAX_ENTRY_SIZE: usize = 1024 * 1024;

type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// The raft backend. Cheap to clone. Call [`RaftBackend::shutdown`] before dropping the last
/// clone for an orderly stop; a drop without it behaves like a crash (all acknowledged writes
/// are durable either way) and openraft's tasks release the files shortly after.
#[derive(Clone)]
pub struct RaftBackend {
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft,
    sm_db: Arc<Database>,
    sm_replaced: tokio::sync::watch::Receiver<u64>,
    node_id: u64,
    node: NodeInfo,
    dir: PathBuf,
    timing: RaftTiming,
    network: ClusterNetwork,
    /// Shares leadership confirmations among concurrent reads.
    read_gate: ReadGate,
}

impl std::fmt::Debug for RaftBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftBackend")
            .field("dir", &self.inner.dir)
            .field("node_id", &self.inner.node_id)
            .finish()
    }
}

/// How long one leadership confirmation of the read gate may take: generous (5 s, or four
/// maximal election timeouts at a higher `performance_multiplier`), since it only has to end
/// a confirmation that cannot finish, never a slow one on a loaded node.
fn read_gate_limit(timing: RaftTiming) -> Duration {
    (timing.election_max * 4).max(Duration::from_secs(5))
}

/// The leadership that produced a linearizable read: the leader's term and node id.
fn leadership(read: &ReadLogId<TypeConfig>) -> Leadership {
    let id = read.committed_leader_id();
    Leadership {
        term: id.term,
        node: id.node_id,
    }
}

/// Rejects, before anything is proposed, what no node could apply: invalid keys, and more
/// bytes than one raft entry may carry. Nothing of a rejected request reaches the log.
fn validate(ops: &[TxnOp]) -> Result<(), PhysicalError> {
    let mut total = 0usize;
    for op in ops {
        let (key, value_len) = match op {
            TxnOp::Put { key, value } => (key, value.len()),
            TxnOp::Delete { key } => (key, 0),
        };
        check_key(key)?;
        total = total.saturating_add(key.len()).saturating_add(value_len);
        if total > MAX_ENTRY_SIZE {
            return Err(PhysicalError::InvalidKey {
                key: key.clone(),
                reason: "the request's keys and values exceed the 1 MiB one raft entry may carry; store large data in smaller entries",
            });
        }
    }
    Ok(())
}

/// After a start, a node waits three election timeouts (or until it hears of a leader) before
/// it may call an election: a restarted node, and every node of a cluster restarting together,
/// first gets the chance to hear from a sitting leader instead of disrupting it.
fn hold_first_election(raft: &Raft, timing: RaftTiming) {
    let raft = raft.clone();
    raft.runtime_config().elect(false);
    tokio::spawn(async move {
        let hold = timing.election_max * 3;
        let _ = raft
            .wait(Some(hold))
            .metrics(|m| m.current_leader.is_some(), "a leader after start")
            .await;
        raft.runtime_config().elect(true);
    });
}

impl RaftBackend {
    /// Opens the raft storage in `dir` (creating it if needed) and starts this node's raft
    /// task. `node_id`: the configured id, else the one persisted in `dir/node-id`, else a new
    /// random one (then persisted). `node`: this node's names and addresses, announced when it
    /// forms or joins a cluster. A node with empty raft state stays uninitialised.
    ///
    /// The node has no cluster TLS: it cannot reach peers until [`Self::set_cluster_tls`].
    pub async fn open(
        dir: &Path,
        node_id: Option<u64>,
        node: NodeInfo,
        timing: RaftTiming,
    ) -> Result<Self, PhysicalError> {
        Self::open_with(dir, node_id, node, timing, None).await
    }

    /// [`Self::open`], with the cluster port's TLS identity (from
    /// [`crate::server::cluster::ClusterTls::issue_node`]), so the node reaches its peers at
    /// once. Mount [`Self::rpc_handler`] on this node's cluster listener for peers to reach it.
    pub async fn open_clustered(
        dir: &Path,
        node_id: Option<u64>,
        node: NodeInfo,
        timing: RaftTiming,
        tls: &NodeTls,
    ) -> Result<Self, PhysicalError> {
        let client = tls.client_config().map_err(|e| io_error(dir, e))?;
        Self::open_with(dir, node_id, node, timing, Some(client)).await
    }

    async fn open_with(
        dir: &Path,
        node_id: Option<u64>,
        node: NodeInfo,
        timing: RaftTiming,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, PhysicalError> {
        let raft_dir = dir.join(RAFT_DIR);
        std::fs::create_dir_all(&raft_dir).map_err(|e| {
            io_error(
                &raft_dir,
                format!("cannot create the raft directory: {e}; make storage \"raft\" path writable by this user"),
            )
        })?;
        let node_id = node_id::load_or_create(dir, node_id)?;
        let config = Arc::new(timing.config()?);
        let log = LogStore::open(&raft_dir).map_err(|e| io_error(&raft_dir, e))?;
        let sm = StateMachine::open(&raft_dir).map_err(|e| io_error(&raft_dir, e))?;
        let sm_db = Arc::clone(sm.db());
        let sm_replaced = sm.replaced();
        let network = ClusterNetwork::new(node_id, tls);
        let raft = Raft::new(node_id, config, network.clone(), log, sm)
            .await
            .map_err(|e| io_error(&raft_dir, format!("cannot start raft: {e}")))?;
        hold_first_election(&raft, timing);
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let closed_dir = raft_dir.clone();
            let read_gate = ReadGate::new(
                Box::new(move || {
                    let backend = weak.upgrade().map(|inner| Self { inner });
                    let dir = closed_dir.clone();
                    Box::pin(async move {
                        match backend {
                            Some(backend) => backend.confirm_leadership().await,
                            None => Err(io_error(
                                &dir,
                                "the raft backend is closed; restart the server",
                            )),
                        }
                    })
                }),
                read_gate_limit(timing),
            );
            Inner {
                raft,
                sm_db,
                sm_replaced,
                node_id,
                node,
                dir: dir.to_owned(),
                timing,
                network,
                read_gate,
            }
        });
        Ok(Self { inner })
    }

    /// Installs or replaces the cluster port's TLS identity used to reach peers (for a node
    /// opened with [`Self::open`] that learns the cluster CA after unseal or join).
    pub fn set_cluster_tls(&self, tls: &NodeTls) -> Result<(), PhysicalError> {
        let client = tls.client_config().map_err(|e| self.err(e))?;
        self.inner.network.set_tls(client);
        Ok(())
    }

    /// The receiving side of raft RPCs, for the cluster listener:
    /// `cluster::router(Arc::new(backend.rpc_handler()))`.
    pub fn rpc_handler(&self) -> RaftRpcHandler {
        RaftRpcHandler::new(self.inner.raft.clone())
    }

    /// This node's name and addresses, as it announces them to the cluster.
    pub fn node_info(&self) -> &NodeInfo {
        &self.inner.node
    }

    /// This node's raft id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// Whether this node belongs to a cluster (has a membership), as of its latest metrics.
    pub async fn is_initialized(&self) -> Result<bool, PhysicalError> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| self.err(format!("raft has stopped: {e}; restart the server")))
    }

    /// Makes this node a one-voter cluster and waits until it leads it. Only `sys/init` may
    /// call this; it fails on a node that already has raft state (a vote or log entries).
    pub async fn initialize_single(&self) -> Result<(), PhysicalError> {
        let members = BTreeMap::from([(self.inner.node_id, self.inner.node.clone())]);
        self.inner.raft.runtime_config().elect(true);
        match self.inner.raft.initialize(members).await {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                return Err(self.err(format!(
                    "this node's raft storage is already initialized ({e}); a cluster is formed only once, on a node with empty raft state"
                )));
            }
            Err(e) => return Err(self.err(format!("cannot initialize the raft cluster: {e}"))),
        }
        // A lone voter elects itself at once; allow for a loaded machine.
        let patience = self.inner.timing.election_max * 3 + Duration::from_secs(5);
        self.wait_for_leader(patience).await.map(drop)
    }

    /// Waits until some node is known as leader and, when it is this node, until it can serve:
    /// something applied, and (with peers) a quorum has acknowledged this leader, which is when
    /// openraft's leader lease lets it accept writes (a freshly elected leader refuses them
    /// until then); returns the leader's id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, PhysicalError> {
        let metrics = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| match m.current_leader {
                    Some(id) if id == m.id => {
                        let alone = m.membership_config.membership().voter_ids().count() == 1;
                        m.state == ServerState::Leader
                            && m.last_applied.is_some()
                            && (alone || m.last_quorum_acked.is_some())
                    }
                    Some(_) => true,
                    None => false,
                },
                "a raft leader",
            )
            .await
            .map_err(|e| {
                self.err(format!(
                    "no raft leader within {timeout:?} ({e}); check that a quorum of the cluster's voters is up"
                ))
            })?;
        metrics
            .current_leader
            .ok_or_else(|| self.err("raft reported a leader and then none; retry"))
    }

    /// This node's raft state, from openraft's latest metrics.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        status::from_metrics(&m)
    }

    /// Whether this node currently considers itself the leader (the active node).
    pub fn is_leader(&self) -> bool {
        self.inner.raft.is_leader()
    }

    /// This node's term of office while it considers itself the leader, else `None`: the
    /// same value a read confirmed now would record ([`ReadFence`]).
    pub fn leadership(&self) -> Option<Leadership> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        (m.state == ServerState::Leader).then_some(Leadership {
            term: m.current_term,
            node: self.inner.node_id,
        })
    }

    /// Stops this node's raft task; reads and writes fail afterwards. Idempotent.
    pub async fn shutdown(&self) -> Result<(), PhysicalError> {
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| self.err(format!("raft did not stop cleanly: {e}")))
    }

    /// Waits until a local read is linearizable: a leadership confirmation that started after
    /// the request arrived has passed ([`ReadFence`]; [`read_gate`] shares one among
    /// concurrent reads and among the reads of one request). Records the leadership that
    /// confirmed it in the request's fence, for the request's writes ([`Self::propose`]).
    async fn linearize(&self) -> Result<(), PhysicalError> {
        let leadership = self.inner.read_gate.pass(ReadFence::since()).await?;
        ReadFence::confirmed_under(leadership);
        Ok(())
    }

    /// Proposes `request` and waits until it is committed and applied locally. In a request
    /// that has read (see [`ReadFence`]), only under the leadership that confirmed those
    /// reads: a request that read, then saw this node lose office and win it back, must not
    /// write what it computed from the older state (another leader may have written the same
    /// keys in between). openraft checks the condition before the entry is appended, so a
    /// refused write certainly did not happen.
    async fn propose(&self, request: Request, what: &str) -> Result<(), PhysicalError> {
        let Some(read_under) = ReadFence::leadership() else {
            return match self.inner.raft.client_write(request).await {
                Ok(_) => Ok(()),
                Err(e) => Err(self.write_error(e, what)),
            };
        };
        let (responder, answer) = ProgressResponder::complete_only();
        self.inner
            .raft
            .write(request)
            .with_leader(LeaderId {
                term: read_under.term,
                node_id: read_under.node,
            })
            .responder(responder)
            .await
            .map_err(|e| self.write_error(RaftError::Fatal(e), what))?;
        match answer.await {
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(self.write_error(RaftError::Fatal(Fatal::Stopped), what)),
            // Refused for the condition (this node no longer holds that term of office), or
            // for the reasons any write is (a lapsed lease, a handover under way).
            Ok(Err(ClientWriteError::ForwardToLeader(f)))
                if self.leadership() != Some(read_under) =>
            {
                Err(self.leadership_changed(read_under, f.leader_id, f.leader_node))
            }
            Ok(Err(e)) => Err(self.write_error(RaftError::APIError(e), what)),
        }
    }

    /// Confirms that this node leads and has applied everything committed before now, so a
    /// local read is linearizable; answers under which leadership.
    async fn confirm_leadership(&self) -> Result<Leadership, PhysicalError> {
        // Within its lease (a quorum acknowledged it less than `election_timeout_max` ago, and
        // no voter may elect another leader before that lease plus an election timeout has
        // passed) the leader needs no round trip; a leader whose lease is stale, or that has
        // handed its office over (which voids the lease), confirms with ReadIndex.
        if let Ok(read) = self
            .inner
            .raft
            .ensure_linearizable(ReadPolicy::LeaseRead)
            .await
        {
            return Ok(leadership(&read));
        }
        match self
            .inner
            .raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
        {
            Ok(read) => Ok(leadership(&read)),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(self.not_leader(f.leader_id, f.leader_node))
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e))) => {
                Err(self.not_leader_quorum(e))
            }
            Err(RaftError::Fatal(e)) => {
                Err(self.err(format!("raft has stopped: {e}; restart the server")))
            }
        }
    }
}

#[async_trait]
impl Physical for RaftBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        check_key(key)?;
        // The Jepsen harness's negative control (test-only feature): no ReadIndex round, so a
        // deposed leader that has not noticed yet answers from its own, stale, state.
        #[cfg(not(feature = "jepsen-negative-stale-reads"))]
        self.linearize().await?;
        state_machine::read_value(&self.inner.sm_db, key).map_err(|e| self.err(e))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        self.transaction(vec![TxnOp::Put {
            key: key.to_owned(),
            value,
        }])
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        self.transaction(vec![TxnOp::Delete {
            key: key.to_owned(),
        }])
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        #[cfg(not(feature = "jepsen-negative-stale-reads"))]
        self.linearize().await?;
        let db = Arc::clone(&self.inner.sm_db);
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || state_machine::list_children(&db, &prefix))
            .await
            .map_err(|e| self.err(format!("storage task failed: {e}")))?
            .map_err(|e| self.err(e))
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        validate(&ops)?;
        self.propose(Request::Ops(ops), "the write").await
    }

    fn kind(&self) -> &'static str {
        "raft"
    }
}
