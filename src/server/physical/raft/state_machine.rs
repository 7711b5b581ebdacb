//! Physical layer (raft): the replicated key/value state machine in `<path>/raft/sm.redb`, as
//! openraft's `RaftStateMachine` and snapshot builder. Does disk I/O.
//!
//! - `apply` writes the operations of every entry of openraft's batch, the last applied log id
//!   and the last membership in one redb write transaction, and only then answers the callers:
//!   applied state and data never diverge. The transaction commits without an fsync
//!   (`Durability::None`), as the raft log already holds every applied entry on disk: after a
//!   crash the file comes back at an earlier commit, consistent with its own last applied id,
//!   and openraft re-applies the committed entries after it from the log. The log is purged
//!   only up to a snapshot, and storing a snapshot (below) is a durable commit of this file,
//!   which syncs every apply before it, so the entries a replay needs are always still there.
//! - A snapshot is one serialised buffer ([`SnapshotFile`]: the metadata plus every key/value
//!   pair, read in one redb read transaction). Building one also stores it as the current
//!   snapshot (in the same file), which is what `get_current_snapshot` returns and what a
//!   lagging follower is sent. Installing one replaces the whole table, the applied state and
//!   the current snapshot in one write transaction.
//!
//! Snapshots are held in memory whole; that bounds the store to what fits in memory twice,
//! which a secrets store of ciphertext entries does comfortably (chunked streaming is a later
//! step together with the cluster transport).

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::db_thread::{DbThread, open_db, write_txn};
use super::types::{
    LogId, Request, Response, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
    decode, encode, io_err,
};
use crate::server::physical::{TxnOp, fold_children};

/// The state machine file inside the raft directory.
pub(crate) const SM_FILE: &str = "sm.redb";

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
const LAST_APPLIED: &str = "last_applied";
const LAST_MEMBERSHIP: &str = "last_membership";
const SNAPSHOT: &str = "current_snapshot";
/// The current snapshot's metadata alone, so reading it does not decode the whole snapshot.
const SNAPSHOT_META: &str = "current_snapshot_meta";

/// A snapshot as it is sent to followers and stored: metadata and the whole key/value table.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    kv: Vec<(String, Vec<u8>)>,
}

/// The state machine; clones share the database and its writer thread (the snapshot builder
/// is a clone; a snapshot reads one consistent redb read transaction).
#[derive(Clone)]
pub(crate) struct StateMachine {
    db: Arc<Database>,
    writer: Arc<DbThread>,
    /// Counts whole-table replacements (an applied restore, an installed snapshot), for
    /// whoever caches what the table holds ([`super::RaftBackend::state_replaced`]).
    replaced: Arc<tokio::sync::watch::Sender<u64>>,
}

impl StateMachine {
    /// Opens (creating if needed) `<dir>/sm.redb` and starts its writer thread.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        let file = dir.join(SM_FILE);
        let db = open_db(&file, |txn| {
            txn.open_table(KV)?;
            txn.open_table(META)?;
            Ok(())
        })?;
        let writer = DbThread::start(Arc::clone(&db), &file, "sealkeep-raft-sm")?;
        Ok(Self {
            db,
            writer: Arc::new(writer),
            replaced: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// The counter of whole-table replacements.
    pub(crate) fn replaced(&self) -> tokio::sync::watch::Receiver<u64> {
        self.replaced.subscribe()
    }

    fn note_replaced(&self) {
        self.replaced.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The database, for the backend's local reads.
    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.db
    }
}

fn sm_err(e: impl std::fmt::Display) -> io::Error {
    io_err("raft state machine", e)
}

fn read_meta<T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    key: &str,
) -> io::Result<Option<T>> {
    let table = txn.open_table(META).map_err(sm_err)?;
    let value = table.get(key).map_err(sm_err)?;
    value.map(|v| decode(v.value(), key)).transpose()
}

fn write_meta<T: Serialize>(txn: &WriteTransaction, key: &str, value: &T) -> io::Result<()> {
    let bytes = encode(value)?;
    let mut table = txn.open_table(META).map_err(sm_err)?;
    table.insert(key, bytes.as_slice()).map_err(sm_err)?;
    Ok(())
}

fn applied_state(txn: &ReadTransaction) -> io::Result<(Option<LogId>, StoredMembership)> {
    let applied = read_meta::<Option<LogId>>(txn, LAST_APPLIED)?.flatten();
    let membership = read_meta::<StoredMembership>(txn, LAST_MEMBERSHIP)?.unwrap_or_default();
    Ok((applied, membership))
}

/// Reads one key of the applied state (the backend's `get`, after its linearizable check).
pub(crate) fn read_value(db: &Database, key: &str) -> io::Result<Option<Vec<u8>>> {
    let txn = db.begin_read().map_err(sm_err)?;
    let table = txn.open_table(KV).map_err(sm_err)?;
    let value = table.get(key).map_err(sm_err)?;
    Ok(value.map(|v| v.value().to_vec()))
}

/// Vault's list of the applied state under `prefix` (the backend's `list`).
pub(crate) fn list_children(db: &Database, prefix: &str) -> io::Result<Vec<String>> {
    let txn = db.begin_read().map_err(sm_err)?;
    let table = txn.open_table(KV).map_err(sm_err)?;
    let mut keys = Vec::new();
    for entry in table.range(prefix..).map_err(sm_err)? {
        let (k, _) = entry.map_err(sm_err)?;
        let k = k.value();
        if !k.starts_with(prefix) {
            break;
        }
        keys.push(k.to_owned());
    }
    Ok(fold_children(prefix, keys.iter().map(String::as_str)))
}

/// Applies one request inside the batch's write transaction. A restore replaces the whole
/// key/value table (what came before it in the batch included), atomically with the batch.
fn apply_request(txn: &WriteTransaction, request: &Request) -> io::Result<()> {
    match request {
        Request::Ops(ops) => {
            let mut table = txn.open_table(KV).map_err(sm_err)?;
            for op in ops {
                match op {
                    TxnOp::Put { key, value } => {
                        table.insert(key.as_str(), value.as_slice()).map(drop)
                    }
                    TxnOp::Delete { key } => table.remove(key.as_str()).map(drop),
                }
                .map_err(sm_err)?;
            }
        }
        Request::Restore(kv) => {
            txn.delete_table(KV).map_err(sm_err)?;
            let mut table = txn.open_table(KV).map_err(sm_err)?;
            for (key, value) in kv {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(sm_err)?;
            }
        }
    }
    Ok(())
}

/// The applied state at one point: index and term of the last applied entry (0 when none)
/// and every key/value pair in key order.
pub(crate) struct AppliedState {
    pub(crate) index: u64,
    pub(crate) term: u64,
    pub(crate) kv: Vec<(String, Vec<u8>)>,
}

/// The whole applied state, from one read transaction.
pub(crate) fn read_all(db: &Database) -> io::Result<AppliedState> {
    let txn = db.begin_read().map_err(sm_err)?;
    let (applied, _) = applied_state(&txn)?;
    let table = txn.open_table(KV).map_err(sm_err)?;
    let mut kv = Vec::new();
    for entry in table.range::<&str>(..).map_err(sm_err)? {
        let (k, v) = entry.map_err(sm_err)?;
        kv.push((k.value().to_owned(), v.value().to_vec()));
    }
    let (index, term) = applied.map_or((0, 0), |id| (id.index(), id.committed_leader_id().term));
    Ok(AppliedState { index, term, kv })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let db = Arc::clone(&self.db);
        // Read on the blocking pool: the scan may be long, and applies go on meanwhile.
        let (meta, bytes) = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let txn = db.begin_read().map_err(sm_err)?;
            let (last_log_id, last_membership) = applied_state(&txn)?;
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
            };
            let table = txn.open_table(KV).map_err(sm_err)?;
            let mut kv = Vec::new();
            for entry in table.range::<&str>(..).map_err(sm_err)? {
                let (k, v) = entry.map_err(sm_err)?;
                kv.push((k.value().to_owned(), v.value().to_vec()));
            }
            let file = SnapshotFile { meta, kv };
            Ok((file.meta.clone(), encode(&file)?))
        })
        .await
        .map_err(sm_err)??;
        let stored = bytes.clone();
        let stored_meta = meta.clone();
        self.writer
            .run(move |db| {
                write_txn(db, Durability::Immediate, |txn| {
                    write_meta(txn, SNAPSHOT_META, &stored_meta)?;
                    let mut table = txn.open_table(META).map_err(sm_err)?;
                    table.insert(SNAPSHOT, stored.as_slice()).map_err(sm_err)?;
                    Ok(())
                })
            })
            .await?;
        Ok(Snapshot {
            meta,
            snapshot: io::Cursor::new(bytes),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let txn = self.db.begin_read().map_err(sm_err)?;
        applied_state(&txn)
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        while let Some(item) = entries.try_next().await? {
            batch.push(item);
        }
        let Some(last) = batch.last().map(|(entry, _)| entry.log_id()) else {
            return Ok(());
        };
        let mut membership = None;
        let mut requests = Vec::new();
        let mut responders = Vec::new();
        for (entry, responder) in batch {
            let log_id = entry.log_id();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(request) => requests.push(request),
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(log_id), m));
                }
            }
            responders.extend(responder);
        }
        let replaced = requests.iter().any(|r| matches!(r, Request::Restore(_)));
        self.writer
            .run(move |db| {
                write_txn(db, Durability::None, |txn| {
                    for request in &requests {
                        apply_request(txn, request)?;
                    }
                    write_meta(txn, LAST_APPLIED, &Some(last))?;
                    if let Some(membership) = &membership {
                        write_meta(txn, LAST_MEMBERSHIP, membership)?;
                    }
                    Ok(())
                })
            })
            .await?;
        if replaced {
            self.note_replaced();
        }
        for responder in responders {
            responder.send(Response::default());
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let file: SnapshotFile = decode(&bytes, "raft snapshot")?;
        if file.meta != *meta {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the snapshot's own metadata differs from the metadata it was sent with; it was not installed",
            ));
        }
        let meta = meta.clone();
        self.writer
            .run(move |db| {
                write_txn(db, Durability::Immediate, |txn| {
                    txn.delete_table(KV).map_err(sm_err)?;
                    let mut table = txn.open_table(KV).map_err(sm_err)?;
                    for (key, value) in &file.kv {
                        table
                            .insert(key.as_str(), value.as_slice())
                            .map_err(sm_err)?;
                    }
                    drop(table);
                    write_meta(txn, LAST_APPLIED, &meta.last_log_id)?;
                    write_meta(txn, LAST_MEMBERSHIP, &meta.last_membership)?;
                    write_meta(txn, SNAPSHOT_META, &meta)?;
                    let mut table = txn.open_table(META).map_err(sm_err)?;
                    table.insert(SNAPSHOT, bytes.as_slice()).map_err(sm_err)?;
                    Ok(())
                })
            })
            .await?;
        self.note_replaced();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let txn = self.db.begin_read().map_err(sm_err)?;
        let Some(meta) = read_meta::<SnapshotMeta>(&txn, SNAPSHOT_META)? else {
            return Ok(None);
        };
        let table = txn.open_table(META).map_err(sm_err)?;
        let Some(bytes) = table.get(SNAPSHOT).map_err(sm_err)? else {
            return Err(sm_err(
                "the current snapshot's metadata is stored but its data is missing; the state machine file is corrupt",
            ));
        };
        Ok(Some(Snapshot {
            meta,
            snapshot: io::Cursor::new(bytes.value().to_vec()),
        }))
    }
}
