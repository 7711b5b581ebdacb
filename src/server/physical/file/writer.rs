//! Physical layer: group commit for the redb file backend. Does disk I/O on its own thread.
//!
//! One writer thread owns every write. Callers send a request (the operations of one `put`,
//! `delete` or `transaction`, and a oneshot sender for its result) over a channel. The thread
//! takes the first queued request, drains whatever else is already queued (up to
//! [`MAX_BATCH_OPS`] operations and [`MAX_BATCH_BYTES`] bytes), applies all of it in one redb
//! write transaction and commits it once with `Durability::Immediate` (one fsync). Only then is
//! every caller of the batch answered. It never waits for more requests: while one commit is
//! fsyncing, the next requests queue up and form the next batch, so a lone writer pays one
//! commit as before and concurrent writers share commits.
//!
//! Atomicity of each request: the batch commits as a whole, so a committed batch contains all
//! of every request in it. Requests are validated before they are queued (keys and redb's size
//! limits, see `file::validate`), so applying one inside the transaction can only fail on a
//! storage error. redb cannot take a savepoint once a write transaction has changed data, so
//! per-request savepoints are not available; instead, if applying any request fails, the
//! whole batch transaction is aborted and every request of the batch is retried alone, in its
//! own transaction and commit. The failing request gets its own error and the others commit.
//! If the commit itself fails, nothing of the batch is durable and every caller of the batch
//! gets the error.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use super::{TABLE, io_error};
use crate::server::physical::{PhysicalError, TxnOp};

/// Most operations one commit carries (a larger single request is committed alone).
pub const MAX_BATCH_OPS: usize = 256;
/// Most key and value bytes one commit carries (a larger single request is committed alone).
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// How much batching happened: `requests / commits` is the mean batch size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Durable commits of the writer thread.
    pub commits: u64,
    /// Requests (`put`, `delete`, `transaction` calls) acknowledged as committed.
    pub requests: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    requests: AtomicU64,
}

/// One caller's operations, applied atomically, and where to send the outcome.
pub(super) struct Request {
    ops: Vec<TxnOp>,
    reply: oneshot::Sender<Result<(), PhysicalError>>,
    /// Tests only: a failure to simulate when this request is committed.
    #[cfg(test)]
    inject: Option<testing::Inject>,
}

impl Request {
    fn bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                TxnOp::Put { key, value } => key.len() + value.len(),
                TxnOp::Delete { key } => key.len(),
            })
            .sum()
    }
}

/// The handle callers use; dropping it stops the thread after the batch in progress.
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    file: PathBuf,
}

impl Writer {
    pub(super) fn start(db: Arc<Database>, file: PathBuf) -> Result<Self, PhysicalError> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread = {
            let committer = Committer {
                file: file.clone(),
                counters: Arc::clone(&counters),
            };
            std::thread::Builder::new()
                .name("sealkeep-storage-writer".into())
                .spawn(move || run(&db, &rx, &committer))
                .map_err(|e| io_error(&file, format!("cannot start the writer thread: {e}")))?
        };
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            file,
        })
    }

    /// Queues `ops` (already validated) and waits until they are durable or have failed.
    pub(super) async fn submit(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        let (reply, done) = oneshot::channel();
        let request = Request {
            ops,
            reply,
            #[cfg(test)]
            inject: None,
        };
        let not_queued = || {
            io_error(
                &self.file,
                "the storage writer thread is not running, so nothing was written; restart the server",
            )
        };
        self.tx
            .as_ref()
            .ok_or_else(not_queued)?
            .send(request)
            .map_err(|_| not_queued())?;
        done.await.map_err(|_| {
            io_error(
                &self.file,
                "the storage writer thread stopped before answering, so this write may or may not be stored; restart the server",
            )
        })?
    }

    pub(super) fn stats(&self) -> WriteStats {
        WriteStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; joining makes sure the database file is
        // released (and every queued write answered) before the backend is gone.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: one batch at a time until every sender is gone.
fn run(db: &Database, rx: &mpsc::Receiver<Request>, committer: &Committer) {
    let mut carried: Option<Request> = None;
    loop {
        let first = match carried.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(mpsc::RecvError) => return,
            },
        };
        let (mut ops, mut bytes) = (first.ops.len(), first.bytes());
        let mut batch = vec![first];
        while ops < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            let (n, b) = (next.ops.len(), next.bytes());
            if ops + n > MAX_BATCH_OPS || bytes + b > MAX_BATCH_BYTES {
                carried = Some(next);
                break;
            }
            ops += n;
            bytes += b;
            batch.push(next);
        }
        committer.commit_batch(db, batch);
    }
}

/// Where a batch failed.
enum Failure {
    /// Before or while applying the operations: the transaction was aborted, nothing written.
    Apply(String),
    /// The commit failed: nothing of the batch is durable.
    Commit(String),
}

struct Committer {
    file: PathBuf,
    counters: Arc<Counters>,
}

impl Committer {
    /// Commits `batch` in one transaction and answers every caller (see the module docs).
    fn commit_batch(&self, db: &Database, batch: Vec<Request>) {
        match self.apply_and_commit(db, &batch) {
            Ok(()) => self.acknowledge(batch),
            Err(Failure::Apply(message)) if batch.len() > 1 => {
                tracing::warn!(
                    error = %message,
                    requests = batch.len(),
                    "storage batch failed while applying; retrying each request alone"
                );
                for request in batch {
                    let one = std::slice::from_ref(&request);
                    match self.apply_and_commit(db, one) {
                        Ok(()) => self.acknowledge(vec![request]),
                        Err(Failure::Apply(m) | Failure::Commit(m)) => {
                            let _ = request.reply.send(Err(io_error(&self.file, m)));
                        }
                    }
                }
            }
            Err(Failure::Apply(message) | Failure::Commit(message)) => {
                for request in batch {
                    let _ = request.reply.send(Err(io_error(&self.file, &message)));
                }
            }
        }
    }

    fn acknowledge(&self, batch: Vec<Request>) {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.counters
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        for request in batch {
            // A caller that stopped waiting still had its write committed, as with any
            // cancelled write; there is nobody left to tell.
            let _ = request.reply.send(Ok(()));
        }
    }

    fn apply_and_commit(&self, db: &Database, batch: &[Request]) -> Result<(), Failure> {
        let mut txn = db
            .begin_write()
            .map_err(|e| Failure::Apply(e.to_string()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| Failure::Apply(e.to_string()))?;
        if let Err(message) = apply(&txn, batch) {
            let _ = txn.abort();
            return Err(Failure::Apply(message));
        }
        if let Some(message) = injected_commit_failure(batch) {
            let _ = txn.abort();
            return Err(Failure::Commit(message));
        }
        txn.commit().map_err(|e| Failure::Commit(e.to_string()))
    }
}

fn apply(txn: &WriteTransaction, batch: &[Request]) -> Result<(), String> {
    let mut table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
    for request in batch {
        for (i, op) in request.ops.iter().enumerate() {
            injected_apply_failure(request, i)?;
            match op {
                TxnOp::Put { key, value } => table.insert(key.as_str(), value.as_slice()),
                TxnOp::Delete { key } => table.remove(key.as_str()),
            }
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(not(test))]
#[inline(always)]
fn injected_apply_failure(_: &Request, _: usize) -> Result<(), String> {
    Ok(())
}

#[cfg(not(test))]
#[inline(always)]
fn injected_commit_failure(_: &[Request]) -> Option<String> {
    None
}

#[cfg(test)]
use testing::{apply_failure as injected_apply_failure, commit_failure as injected_commit_failure};

#[cfg(test)]
pub(super) mod testing {
    //! Drives the batch logic directly, so tests decide exactly what shares a commit, and
    //! simulates the storage failures a real disk rarely produces on demand.
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(in crate::server::physical) enum Inject {
        /// Applying the request fails after this many of its operations were applied.
        ApplyAfter(usize),
        /// The commit of any batch holding the request fails.
        Commit,
    }

    pub(super) fn apply_failure(request: &Request, i: usize) -> Result<(), String> {
        match request.inject {
            Some(Inject::ApplyAfter(n)) if n == i => {
                Err(format!("injected failure at operation {i}"))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn commit_failure(batch: &[Request]) -> Option<String> {
        batch
            .iter()
            .any(|r| r.inject == Some(Inject::Commit))
            .then(|| "injected commit failure".to_owned())
    }

    /// A request with an optional injected failure, and the receiver of its outcome.
    pub(in crate::server::physical) fn request(
        ops: Vec<TxnOp>,
        inject: Option<Inject>,
    ) -> (Request, oneshot::Receiver<Result<(), PhysicalError>>) {
        let (reply, done) = oneshot::channel();
        (Request { ops, reply, inject }, done)
    }

    /// Commits `batch` as the writer thread would, on the calling thread.
    pub(in crate::server::physical) fn commit_batch(
        db: &Database,
        file: PathBuf,
        batch: Vec<Request>,
    ) -> WriteStats {
        let committer = Committer {
            file,
            counters: Arc::default(),
        };
        committer.commit_batch(db, batch);
        WriteStats {
            commits: committer.counters.commits.load(Ordering::Relaxed),
            requests: committer.counters.requests.load(Ordering::Relaxed),
        }
    }
}
