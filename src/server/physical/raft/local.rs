//! Physical layer (raft): what a node reads without asking the leader, and how it learns that
//! its role changed. Disk I/O (local state-machine reads) only.
//!
//! - [`LocalView`]: this node's applied state as a [`Physical`], for the reads a node makes to
//!   *become* usable (its seal configuration, wrapped root key and keyring at unseal) and for a
//!   standby's unsealed state, which serves nothing (standbys forward requests). Writes still
//!   go through raft. Never give it to code that answers clients: it can be behind the leader.
//! - [`RoleWatch`]: wakes when openraft's server metrics change (role, leader, membership), not
//!   on every applied entry.
//! - [`Progress`]: the leader's view of each member's replication, for autopilot.

use std::sync::Arc;

use async_trait::async_trait;
use openraft::type_config::alias::WatchReceiverOf;
use openraft::type_config::async_runtime::{RecvError, WatchReceiver};

use super::types::TypeConfig;
use super::{RaftBackend, state_machine};
use crate::server::physical::{Physical, PhysicalError, TxnOp};

/// This node's applied state, read locally; writes go through raft (see the module docs).
#[derive(Debug, Clone)]
pub struct LocalView(RaftBackend);

impl RaftBackend {
    /// This node's state machine as a [`Physical`] that reads without a ReadIndex round.
    pub fn local_view(&self) -> LocalView {
        LocalView(self.clone())
    }

    /// A watch that wakes when this node's role, leader or membership changes.
    pub fn role_watch(&self) -> RoleWatch {
        RoleWatch(self.inner.raft.server_metrics())
    }

    /// Adds `id` as a learner once the membership entry that adds it is committed, without
    /// waiting for it to catch up (a joiner can receive nothing until it has the cluster TLS,
    /// which it gets after this returns).
    pub async fn add_learner_now(
        &self,
        id: u64,
        node: super::NodeInfo,
    ) -> Result<(), PhysicalError> {
        self.inner
            .raft
            .add_learner(id, node, false)
            .await
            .map(drop)
            .map_err(|e| self.write_error(e, "adding the learner"))
    }

    /// On the leader: each member's matched log index (`None` for one that matched nothing
    /// yet) and the leader's last log index. `None` on a node that is not the leader.
    pub fn progress(&self) -> Option<Progress> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let replication = m.replication.as_ref()?;
        Some(Progress {
            last_log_index: m.last_log_index.unwrap_or(0),
            matched: replication
                .iter()
                .map(|(id, l)| (*id, l.as_ref().map(|l| l.index())))
                .collect(),
        })
    }
}

/// The leader's replication progress (see [`RaftBackend::progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub last_log_index: u64,
    pub matched: Vec<(u64, Option<u64>)>,
}

/// Wakes on role, leader and membership changes (see [`RaftBackend::role_watch`]).
pub struct RoleWatch(WatchReceiverOf<TypeConfig, ServerMetrics>);

type ServerMetrics = openraft::metrics::RaftServerMetrics<TypeConfig>;

impl std::fmt::Debug for RoleWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoleWatch")
    }
}

impl RoleWatch {
    /// Resolves at the next change; `false` once raft has stopped.
    pub async fn changed(&mut self) -> bool {
        let r: Result<(), RecvError> = self.0.changed().await;
        r.is_ok()
    }
}

#[async_trait]
impl Physical for LocalView {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        self.0.read_local(key).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        self.0.put(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        self.0.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        let db = Arc::clone(&self.0.inner.sm_db);
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || state_machine::list_children(&db, &prefix))
            .await
            .map_err(|e| self.0.err(format!("storage task failed: {e}")))?
            .map_err(|e| self.0.err(e))
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        self.0.transaction(ops).await
    }

    fn kind(&self) -> &'static str {
        "raft"
    }
}
