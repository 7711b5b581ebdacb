//! The storage side of the KV benchmark: `FileBackend` through `Physical`, and redb alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealkeep::server::physical::{FileBackend, Physical};

use super::{Figures, MANY, VALUE_LEN, phase, value_text};

fn raw_key(w: usize, j: u64) -> String {
    format!("bench/c{w}/k{j}")
}

/// The storage engine alone, with the same key layout and bookkeeping as `http::HttpBench`.
pub(super) struct RawBench {
    backend: Arc<FileBackend>,
    value: Arc<Vec<u8>>,
    written: Vec<u64>,
    _dir: tempfile::TempDir,
}

impl RawBench {
    pub(super) fn open() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self {
            backend: Arc::new(FileBackend::open(dir.path()).expect("open FileBackend")),
            value: Arc::new(value_text().into_bytes()),
            written: vec![0; MANY],
            _dir: dir,
        }
    }

    /// Durable puts of new keys; returns the figures and the mean puts per commit.
    pub(super) async fn puts(&mut self, workers: usize, budget: Duration) -> (Figures, f64) {
        let before = self.backend.write_stats();
        let (b, v) = (Arc::clone(&self.backend), Arc::clone(&self.value));
        let base = Arc::new(self.written.clone());
        let f = phase(workers, budget, move |w, j| {
            let (b, v, base) = (Arc::clone(&b), Arc::clone(&v), Arc::clone(&base));
            async move {
                b.put(&raw_key(w, base[w] + j), v.to_vec())
                    .await
                    .expect("raw put");
            }
        })
        .await;
        for (w, n) in f.per_worker.iter().enumerate() {
            self.written[w] += n;
        }
        let after = self.backend.write_stats();
        let per_commit = (after.requests - before.requests) as f64
            / (after.commits - before.commits).max(1) as f64;
        (f, per_commit)
    }

    pub(super) async fn gets(&self, workers: usize, budget: Duration) -> Figures {
        let (b, n) = (Arc::clone(&self.backend), Arc::new(self.written.clone()));
        phase(workers, budget, move |w, j| {
            let (b, n) = (Arc::clone(&b), Arc::clone(&n));
            async move {
                let v = b.get(&raw_key(w, j % n[w])).await.expect("raw get");
                assert_eq!(v.map(|v| v.len()), Some(VALUE_LEN), "raw get c{w}");
            }
        })
        .await
    }
}

/// redb alone, one write transaction and one `Durability::Immediate` commit per 1 KiB put, one
/// thread: the durable-commit rate of this disk without any batching.
pub(super) fn redb_reference(budget: Duration) -> Figures {
    const TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("bench");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = redb::Database::create(dir.path().join("ref.redb")).expect("redb");
    let value = value_text().into_bytes();
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut j = 0u64;
    while start.elapsed() < budget {
        let t0 = Instant::now();
        let mut txn = db.begin_write().expect("begin_write");
        txn.set_durability(redb::Durability::Immediate)
            .expect("durability");
        {
            let mut table = txn.open_table(TABLE).expect("table");
            table
                .insert(raw_key(0, j).as_str(), value.as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
        latencies.push(t0.elapsed());
        j += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Figures {
        ops: latencies.len() as u64,
        secs,
        per_worker: vec![j],
        latencies,
        server_cpu: None,
    }
}
