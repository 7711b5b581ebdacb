//! Physical layer (raft): one thread that owns every write to one redb database. Does disk I/O
//! on its own thread.
//!
//! openraft already serialises the calls into the log store and into the state machine (each
//! takes `&mut self`), so there is nothing to batch across callers here: each job is one redb
//! write transaction. The thread exists so that the blocking commit (its fsync) runs off the
//! async runtime without a blocking-pool hop per call (the hop the file backend measured as
//! costly, see `file.rs`), and so that all writes to one file happen in the order they were
//! submitted. Reads do not go through it: redb read transactions are MVCC snapshots that run
//! on the caller's thread.
//!
//! **Deferred sync** ([`DbThread::run_then_sync`]): a job may commit without an fsync
//! (`Durability::None`: visible at once, durable with the next durable commit) and leave a
//! callback for when it is durable. Once the queue is empty the thread makes one durable commit,
//! which syncs every earlier commit, and calls all the callbacks waiting for it. The caller
//! goes on as soon as its commit is visible: the raft log's append returns, and the leader
//! replicates the entries while their fsync runs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use super::types::io_err;

type Job = Box<dyn FnOnce(&Database, &mut Vec<OnDurable>) + Send>;

/// A job that answers its caller.
type Answering<T> = Box<dyn FnOnce(&Database, &mut Vec<OnDurable>) -> io::Result<T> + Send>;

/// Called once the commits made before it are durable (or with the error of the sync).
type OnDurable = Box<dyn FnOnce(io::Result<()>) + Send>;

/// At most this many jobs run between two deferred syncs, so a busy queue cannot hold the
/// callbacks back for long.
const MAX_JOBS_PER_SYNC: usize = 64;

/// The handle to the thread; dropping it stops the thread after the queued jobs ran.
pub(crate) struct DbThread {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    file: PathBuf,
}

impl DbThread {
    pub(crate) fn start(db: Arc<Database>, file: &Path, name: &str) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut waiting: Vec<OnDurable> = Vec::new();
                while let Ok(job) = rx.recv() {
                    job(&db, &mut waiting);
                    for _ in 1..MAX_JOBS_PER_SYNC {
                        match rx.try_recv() {
                            Ok(job) => job(&db, &mut waiting),
                            Err(_) => break,
                        }
                    }
                    if !waiting.is_empty() {
                        sync(&db, waiting.drain(..));
                    }
                }
            })
            .map_err(|e| {
                io_err(
                    &format!("cannot start the writer thread of {}", file.display()),
                    e,
                )
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            file: file.to_owned(),
        })
    }

    /// Runs `job` on the thread and waits for its result.
    pub(crate) async fn run<T, F>(&self, job: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> io::Result<T> + Send + 'static,
    {
        self.submit(Box::new(move |db, _| job(db))).await
    }

    /// Runs `job` (which commits with `Durability::None`) and waits until its commit is
    /// visible; `on_durable` is called from the thread once a later sync made it durable, or
    /// right away with `job`'s error if it failed.
    pub(crate) async fn run_then_sync<T, F>(
        &self,
        job: F,
        on_durable: impl FnOnce(io::Result<()>) + Send + 'static,
    ) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> io::Result<T> + Send + 'static,
    {
        self.submit(Box::new(move |db, waiting: &mut Vec<OnDurable>| {
            let result = job(db);
            match &result {
                Ok(_) => waiting.push(Box::new(on_durable)),
                Err(e) => on_durable(Err(io::Error::new(e.kind(), e.to_string()))),
            }
            result
        }))
        .await
    }

    async fn submit<T: Send + 'static>(&self, job: Answering<T>) -> io::Result<T> {
        let (reply, done) = oneshot::channel();
        let boxed: Job = Box::new(move |db, waiting| {
            let _ = reply.send(job(db, waiting));
        });
        let stopped = || {
            io_err(
                &self.file.display().to_string(),
                "the raft storage writer thread is not running, so nothing was written; restart the server",
            )
        };
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(boxed)
            .map_err(|_| stopped())?;
        done.await.map_err(|_| {
            io_err(
                &self.file.display().to_string(),
                "the raft storage writer thread stopped before answering; restart the server",
            )
        })?
    }
}

impl Drop for DbThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Makes every earlier commit durable (one durable commit of nothing) and tells `waiting`.
fn sync(db: &Database, waiting: impl Iterator<Item = OnDurable>) {
    let result = write_txn(db, Durability::Immediate, |_| Ok(())).map_err(|e| e.to_string());
    for on_durable in waiting {
        on_durable(
            result
                .clone()
                .map_err(|e| io_err("cannot make the raft log durable", e)),
        );
    }
}

/// Runs `f` in one write transaction committed with `durability`; aborts it when `f` fails.
pub(crate) fn write_txn<T>(
    db: &Database,
    durability: Durability,
    f: impl FnOnce(&WriteTransaction) -> io::Result<T>,
) -> io::Result<T> {
    let mut txn = db
        .begin_write()
        .map_err(|e| io_err("cannot begin a write", e))?;
    txn.set_durability(durability)
        .map_err(|e| io_err("cannot set the commit durability", e))?;
    match f(&txn) {
        Ok(value) => {
            txn.commit().map_err(|e| io_err("cannot commit", e))?;
            Ok(value)
        }
        Err(e) => {
            let _ = txn.abort();
            Err(e)
        }
    }
}

/// Opens (creating if needed) the redb file at `file` with the given tables present, so that
/// reads on a fresh database see empty tables.
pub(crate) fn open_db(
    file: &Path,
    create_tables: impl FnOnce(&WriteTransaction) -> Result<(), redb::TableError>,
) -> io::Result<Arc<Database>> {
    let what = file.display().to_string();
    let db = Database::create(file).map_err(|e| io_err(&what, e))?;
    let txn = db.begin_write().map_err(|e| io_err(&what, e))?;
    create_tables(&txn).map_err(|e| io_err(&what, e))?;
    txn.commit().map_err(|e| io_err(&what, e))?;
    Ok(Arc::new(db))
}
