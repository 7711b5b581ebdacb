//! Physical layer: durable embedded backend (`storage "file"`) on redb. Does disk I/O.
//!
//! Writes go through one writer thread that commits concurrent requests together (group
//! commit, see [`writer`]): each `put`, `delete` and `transaction` returns only after the redb
//! write transaction holding it was committed with `Durability::Immediate`, which fsyncs before
//! `commit` returns, so an acknowledged write survives SIGKILL and power loss. Reads are redb
//! read transactions (MVCC snapshots): they run concurrently with each other and with a commit
//! in progress, and see only committed data.
//!
//! `get` runs on the calling task instead of `spawn_blocking`: it is one B-tree lookup, served
//! from redb's page cache (or the OS page cache), and never waits for a commit (redb holds its
//! header lock only around each header write, not across the fsync). The hop to the blocking
//! pool cost more than the lookup: with 16 HTTP readers, half of the server's CPU went to
//! waking blocking-pool threads (three `get`s per KV read). A cold page read from disk can
//! stall one runtime worker for one disk read. `list` scans a range of any size, so it stays
//! on the blocking pool.

mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, TableDefinition};

pub use self::writer::WriteStats;
use self::writer::Writer;
use super::{Physical, PhysicalError, TxnOp, check_key, fold_children};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("sealkeep");
/// The database file inside the configured `path` directory.
pub const DB_FILE: &str = "sealkeep.redb";
/// redb's limits on one stored entry (`MAX_VALUE_LENGTH`, `MAX_PAIR_LENGTH`); checked before a
/// request joins a batch, so one oversized entry cannot fail a commit shared with others.
const MAX_VALUE_LEN: usize = 3 * 1024 * 1024 * 1024;
const MAX_PAIR_LEN: usize = MAX_VALUE_LEN + 768 * 1024 * 1024;

/// The redb file backend. Cheap to clone; the writer thread stops, and the database file is
/// closed, when the last clone is dropped (after the commit in progress, if any).
#[derive(Clone)]
pub struct FileBackend {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    file: PathBuf,
    writer: Writer,
}

impl std::fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBackend")
            .field("file", &self.inner.file)
            .finish()
    }
}

/// An I/O error of the backend stored at `file`.
fn io_error(file: &Path, message: impl std::fmt::Display) -> PhysicalError {
    PhysicalError::Io {
        backend: "file",
        path: file.display().to_string(),
        message: message.to_string(),
    }
}

impl FileBackend {
    /// Opens (creating if needed) the database in directory `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, PhysicalError> {
        let file = dir.join(DB_FILE);
        std::fs::create_dir_all(dir).map_err(|e| {
            io_error(
                &file,
                format!(
                    "cannot create the storage directory: {e}; make storage \"file\" path writable by this user"
                ),
            )
        })?;
        let db = Database::create(&file).map_err(|e| io_error(&file, e))?;
        // Create the table up front so reads on a fresh database see an empty table.
        let txn = db.begin_write().map_err(|e| io_error(&file, e))?;
        txn.open_table(TABLE).map_err(|e| io_error(&file, e))?;
        txn.commit().map_err(|e| io_error(&file, e))?;
        let db = Arc::new(db);
        let writer = Writer::start(Arc::clone(&db), file.clone())?;
        Ok(Self {
            inner: Arc::new(Inner { db, file, writer }),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> PhysicalError {
        io_error(&self.inner.file, e)
    }

    /// Commits and requests committed by the writer thread since the backend was opened.
    pub fn write_stats(&self) -> WriteStats {
        self.inner.writer.stats()
    }

    /// Runs blocking redb work off the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T, PhysicalError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, PhysicalError> + Send + 'static,
    {
        let db = Arc::clone(&self.inner.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| self.err(format!("storage task failed: {e}")))?
    }
}

/// Rejects, before it is queued, anything that would make redb refuse an operation inside a
/// shared write transaction: invalid keys and entries beyond redb's size limits.
fn validate(ops: &[TxnOp]) -> Result<(), PhysicalError> {
    for op in ops {
        let (key, value_len) = match op {
            TxnOp::Put { key, value } => (key, value.len()),
            TxnOp::Delete { key } => (key, 0),
        };
        check_key(key)?;
        if key.len() > MAX_VALUE_LEN || value_len > MAX_VALUE_LEN {
            return Err(PhysicalError::InvalidKey {
                key: key.clone(),
                reason: "the key or its value is larger than the 3 GiB the file backend stores",
            });
        }
        if key.len() + value_len > MAX_PAIR_LEN {
            return Err(PhysicalError::InvalidKey {
                key: key.clone(),
                reason: "the key and its value together exceed the file backend's limit",
            });
        }
    }
    Ok(())
}

#[async_trait]
impl Physical for FileBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        check_key(key)?;
        // A point read runs inline (see the module docs): one short read transaction.
        let txn = self.inner.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.err(e))?;
        let value = table.get(key).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
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
        let prefix = prefix.to_owned();
        let this = self.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| this.err(e))?;
            let table = txn.open_table(TABLE).map_err(|e| this.err(e))?;
            let mut keys = Vec::new();
            for entry in table.range(prefix.as_str()..).map_err(|e| this.err(e))? {
                let (k, _) = entry.map_err(|e| this.err(e))?;
                let k = k.value();
                if !k.starts_with(prefix.as_str()) {
                    break;
                }
                keys.push(k.to_owned());
            }
            Ok(fold_children(&prefix, keys.iter().map(String::as_str)))
        })
        .await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        validate(&ops)?;
        self.inner.writer.submit(ops).await
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}
