//! Physical layer (raft): the raft log, vote, committed and purged log ids in
//! `<path>/raft/log.redb`, as openraft's `RaftLogStorage`. Does disk I/O.
//!
//! Group commit: openraft hands `append` a batch of entries (everything its log task collected
//! since the last append); the batch is one redb write transaction committed with
//! `Durability::None`, so `append` returns as soon as the entries are readable (as openraft
//! requires) and the leader replicates them while the writer thread syncs: one fsync for every
//! batch that arrived meanwhile, after which openraft's flush callback is called, never before.
//! openraft counts an entry towards its commit only once that callback said it is on disk.
//! `save_vote`, `truncate_after` and `purge` commit with `Immediate`; `save_committed` commits
//! with `Durability::None`: it becomes durable with the next sync, which is all openraft needs
//! from it (after a crash the state machine replays from the log, see `state_machine.rs`).
//!
//! All writes go through one writer thread in submission order (openraft requires log and vote
//! writes to be serialised); reads are redb read transactions on the caller's task.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::db_thread::{DbThread, open_db, write_txn};
use super::types::{Entry, LogId, TypeConfig, Vote, decode, encode, io_err};

/// The log file inside the raft directory.
pub(crate) const LOG_FILE: &str = "log.redb";

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";

/// The log store; clones share the database and its writer thread (the reader is a clone).
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
    writer: Arc<DbThread>,
}

impl LogStore {
    /// Opens (creating if needed) `<dir>/log.redb` and starts its writer thread.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        let file = dir.join(LOG_FILE);
        let db = open_db(&file, |txn| {
            txn.open_table(LOGS)?;
            txn.open_table(META)?;
            Ok(())
        })?;
        let writer = DbThread::start(Arc::clone(&db), &file, "sealkeep-raft-log")?;
        Ok(Self {
            db,
            writer: Arc::new(writer),
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        let txn = self.db.begin_read().map_err(|e| io_err("raft log", e))?;
        let table = txn.open_table(META).map_err(|e| io_err("raft log", e))?;
        let value = table.get(key).map_err(|e| io_err("raft log", e))?;
        value.map(|v| decode(v.value(), key)).transpose()
    }

    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
        durability: Durability,
    ) -> io::Result<()> {
        let bytes = encode(value)?;
        self.writer
            .run(move |db| {
                write_txn(db, durability, |txn| {
                    let mut table = txn.open_table(META).map_err(|e| io_err("raft log", e))?;
                    table
                        .insert(key, bytes.as_slice())
                        .map_err(|e| io_err("raft log", e))?;
                    Ok(())
                })
            })
            .await
    }
}

/// The inclusive index range `range` covers, or `None` when it is empty.
fn index_range(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (start <= end).then_some((start, end))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let Some((start, end)) = index_range(&range) else {
            return Ok(Vec::new());
        };
        let txn = self.db.begin_read().map_err(|e| io_err("raft log", e))?;
        let table = txn.open_table(LOGS).map_err(|e| io_err("raft log", e))?;
        let mut entries = Vec::new();
        for item in table
            .range(start..=end)
            .map_err(|e| io_err("raft log", e))?
        {
            let (index, bytes) = item.map_err(|e| io_err("raft log", e))?;
            let entry: Entry = decode(bytes.value(), "raft log entry")?;
            if entry.index() != index.value() {
                return Err(io_err(
                    "raft log",
                    format!(
                        "entry stored under index {} says index {}; the log file is corrupt",
                        index.value(),
                        entry.index()
                    ),
                ));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.read_meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.read_meta(PURGED)?;
        let txn = self.db.begin_read().map_err(|e| io_err("raft log", e))?;
        let table = txn.open_table(LOGS).map_err(|e| io_err("raft log", e))?;
        let last = table.last().map_err(|e| io_err("raft log", e))?;
        let last_log_id = match last {
            Some((_, bytes)) => Some(decode::<Entry>(bytes.value(), "raft log entry")?.log_id()),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.write_meta(VOTE, vote, Durability::Immediate).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.write_meta(COMMITTED, &committed, Durability::None)
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|entry| Ok((entry.index(), encode(&entry)?)))
            .collect::<io::Result<Vec<(u64, Vec<u8>)>>>()?;
        // Visible when this returns (openraft reads the entries back to replicate them), durable
        // when the writer thread's next sync calls `callback`; the leader replicates meanwhile.
        self.writer
            .run_then_sync(
                move |db| {
                    write_txn(db, Durability::None, |txn| {
                        let mut table = txn.open_table(LOGS).map_err(|e| io_err("raft log", e))?;
                        for (index, bytes) in &encoded {
                            table
                                .insert(*index, bytes.as_slice())
                                .map_err(|e| io_err("raft log", e))?;
                        }
                        Ok(())
                    })
                },
                move |durable| callback.io_completed(durable),
            )
            .await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match last_log_id {
            Some(id) => id.index() + 1,
            None => 0,
        };
        self.writer
            .run(move |db| {
                write_txn(db, Durability::Immediate, |txn| {
                    let mut table = txn.open_table(LOGS).map_err(|e| io_err("raft log", e))?;
                    table
                        .retain_in(from.., |_, _| false)
                        .map_err(|e| io_err("raft log", e))
                })
            })
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = log_id.index();
        let bytes = encode(&log_id)?;
        self.writer
            .run(move |db| {
                // One transaction: the purged id and the removal land together, no hole.
                write_txn(db, Durability::Immediate, |txn| {
                    let mut meta = txn.open_table(META).map_err(|e| io_err("raft log", e))?;
                    meta.insert(PURGED, bytes.as_slice())
                        .map_err(|e| io_err("raft log", e))?;
                    let mut table = txn.open_table(LOGS).map_err(|e| io_err("raft log", e))?;
                    table
                        .retain_in(..=upto, |_, _| false)
                        .map_err(|e| io_err("raft log", e))
                })
            })
            .await
    }
}
