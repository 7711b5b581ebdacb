//! Physical layer: durable embedded backend (`storage "file"`) on redb. Does disk I/O.
//!
//! Every write is its own redb write transaction committed with `Durability::Immediate`, which
//! fsyncs before `commit` returns: an acknowledged write survives SIGKILL and power loss.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, TableDefinition};

use super::{Physical, PhysicalError, TxnOp, check_key, fold_children};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("sealkeep");
/// The database file inside the configured `path` directory.
pub const DB_FILE: &str = "sealkeep.redb";

#[derive(Clone)]
pub struct FileBackend {
    db: Arc<Database>,
    file: PathBuf,
}

impl std::fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBackend")
            .field("file", &self.file)
            .finish()
    }
}

impl FileBackend {
    /// Opens (creating if needed) the database in directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, PhysicalError> {
        let file = dir.join(DB_FILE);
        let io = |message: String| PhysicalError::Io {
            backend: "file",
            path: file.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            io(format!(
                "cannot create the storage directory: {e}; make storage \"file\" path writable by this user"
            ))
        })?;
        let db = Database::create(&file).map_err(|e| io(e.to_string()))?;
        // Create the table up front so reads on a fresh database see an empty table.
        let txn = db.begin_write().map_err(|e| io(e.to_string()))?;
        txn.open_table(TABLE).map_err(|e| io(e.to_string()))?;
        txn.commit().map_err(|e| io(e.to_string()))?;
        Ok(Self {
            db: Arc::new(db),
            file,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> PhysicalError {
        PhysicalError::Io {
            backend: "file",
            path: self.file.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Runs blocking redb work off the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T, PhysicalError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, PhysicalError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| this.err(format!("storage task failed: {e}")))?
    }

    fn write_ops(&self, db: &Database, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| self.err(e))?;
            for op in &ops {
                match op {
                    TxnOp::Put { key, value } => {
                        table
                            .insert(key.as_str(), value.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    TxnOp::Delete { key } => {
                        table.remove(key.as_str()).map_err(|e| self.err(e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

#[async_trait]
impl Physical for FileBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        check_key(key)?;
        let key = key.to_owned();
        let this = self.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| this.err(e))?;
            let table = txn.open_table(TABLE).map_err(|e| this.err(e))?;
            let value = table.get(key.as_str()).map_err(|e| this.err(e))?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
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
        for op in &ops {
            match op {
                TxnOp::Put { key, .. } | TxnOp::Delete { key } => check_key(key)?,
            }
        }
        let this = self.clone();
        self.blocking(move |db| this.write_ops(db, ops)).await
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = FileBackend::open(dir.path()).expect("open");
        super::super::contract::run(&backend).await;
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let backend = FileBackend::open(dir.path()).expect("open");
            backend.put("a/b", b"one".to_vec()).await.expect("put");
        }
        let backend = FileBackend::open(dir.path()).expect("reopen");
        assert_eq!(
            backend.get("a/b").await.expect("get"),
            Some(b"one".to_vec())
        );
    }

    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let err =
            FileBackend::open(Path::new("/proc/sealkeep-cannot-exist")).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("/proc/sealkeep-cannot-exist"), "{msg}");
        assert!(msg.contains("writable"), "{msg}");
    }
}
