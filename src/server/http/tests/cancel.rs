//! Router tests: a request whose client goes away still runs to completion, so a write it
//! began cannot race the next write of the same key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use serde_json::json;

use super::TestServer;
use crate::server::physical::{InmemBackend, Physical, PhysicalError, TxnOp};

/// Storage whose writes, once begun, land `delay_ms` later whatever happens to their caller,
/// as a raft proposal does: its entry commits even when the request that proposed it is gone.
struct AppliedLater {
    inner: Arc<dyn Physical>,
    delay_ms: AtomicU64,
}

#[async_trait]
impl Physical for AppliedLater {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        let key = key.to_owned();
        self.transaction(vec![TxnOp::Put { key, value }]).await
    }

    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        let key = key.to_owned();
        self.transaction(vec![TxnOp::Delete { key }]).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        self.inner.list(prefix).await
    }

    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        let inner = Arc::clone(&self.inner);
        let delay = Duration::from_millis(self.delay_ms.load(Ordering::SeqCst));
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            inner.transaction(ops).await
        })
        .await
        .expect("the write task")
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_client_left_keeps_its_key_until_it_lands() {
    let storage = Arc::new(AppliedLater {
        inner: Arc::new(InmemBackend::new()),
        delay_ms: AtomicU64::new(0),
    });
    let (s, root) = TestServer::unsealed_over(Arc::clone(&storage) as Arc<dyn Physical>).await;
    storage.delay_ms.store(300, Ordering::SeqCst);

    // The first writer gives up long before its write lands.
    let first = json!({"data": {"v": "first"}}).to_string();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        s.call("POST", "/v1/secret/data/k", Some(&root), Some(&first)),
    )
    .await;
    assert!(gave_up.is_err(), "the first write answered within 50 ms");

    // The second write must wait for the first to land and number itself after it; a
    // handler cancelled with its client would have let it read version 0 and overwrite
    // version 1.
    let second = json!({"data": {"v": "second"}}).to_string();
    let (st, v) = s
        .call("POST", "/v1/secret/data/k", Some(&root), Some(&second))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["version"], 2, "{v}");
    storage.delay_ms.store(0, Ordering::SeqCst);
    for (version, value) in [(1, "first"), (2, "second")] {
        let (st, v) = s
            .call(
                "GET",
                &format!("/v1/secret/data/k?version={version}"),
                Some(&root),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["data"]["v"], value, "version {version}: {v}");
    }
}
