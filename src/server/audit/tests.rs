use std::sync::Arc;

use serde_json::json;

use super::entry::{AuthInfo, RequestInfo, hash_values, request_entry, response_entry};
use super::*;
use crate::server::barrier::{Key, Keyring};
use crate::server::physical::{InmemBackend, Physical};

fn barrier() -> (Arc<dyn Physical>, Barrier) {
    let physical: Arc<dyn Physical> = Arc::new(InmemBackend::new());
    let barrier = Barrier::new(
        Arc::clone(&physical),
        Arc::new(Keyring::new(Key::generate().expect("key")).expect("keyring")),
    );
    (physical, barrier)
}

fn opts(path: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("file_path".to_owned(), path.to_owned())])
}

#[test]
fn device_validation_names_the_fix() {
    let ok = Device::new("file", "file", String::new(), opts("/tmp/a.log"), false).expect("valid");
    assert_eq!(ok.path, "file/");
    for (path, ty, o, msg) in [
        ("", "file", opts("/tmp/a"), "audit path"),
        ("a/../b", "file", opts("/tmp/a"), "audit path"),
        ("file", "syslog", opts("/tmp/a"), "use \"file\""),
        ("file", "file", opts("relative.log"), "absolute path"),
        ("file", "file", BTreeMap::new(), "file_path is required"),
    ] {
        let err = Device::new(path, ty, String::new(), o, false).expect_err("invalid");
        assert!(err.to_string().contains(msg), "{path:?} {ty}: {err}");
    }
}

#[tokio::test]
async fn enable_list_disable_round_trip_and_refuse_duplicates() {
    let (_, barrier) = barrier();
    let store = AuditStore::default();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("audit.log");
    let d = Device::new(
        "file",
        "file",
        "d".into(),
        opts(&log.display().to_string()),
        false,
    )
    .expect("device");
    store.enable(&barrier, d.clone()).await.expect("enable");
    assert!(log.exists(), "enable creates the file");
    assert_eq!(
        std::fs::read_to_string(&log).expect("read"),
        "",
        "and writes nothing"
    );
    let err = store
        .enable(&barrier, d.clone())
        .await
        .expect_err("duplicate");
    assert!(err.to_string().contains("already in use"), "{err}");
    assert_eq!(*store.devices(&barrier).await.expect("list"), vec![d]);
    store.disable(&barrier, "file").await.expect("disable");
    assert!(store.devices(&barrier).await.expect("list").is_empty());
    store
        .disable(&barrier, "file")
        .await
        .expect("disabling again is fine");
}

#[tokio::test]
async fn enabling_an_unwritable_path_is_refused() {
    let (_, barrier) = barrier();
    let d = Device::new(
        "file",
        "file",
        String::new(),
        opts("/nonexistent-dir/x/audit.log"),
        false,
    )
    .expect("device");
    let store = AuditStore::default();
    let err = store.enable(&barrier, d).await.expect_err("unwritable");
    assert!(err.to_string().contains("cannot write"), "{err}");
    assert!(
        store.devices(&barrier).await.expect("list").is_empty(),
        "nothing stored"
    );
}

#[test]
fn record_is_fail_closed() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = Device::new(
        "a",
        "file",
        String::new(),
        opts(&dir.path().join("a.log").display().to_string()),
        false,
    )
    .expect("a");
    let bad = Device::new(
        "b",
        "file",
        String::new(),
        opts(&dir.path().join("gone/b.log").display().to_string()),
        false,
    )
    .expect("b");
    record(&[], "request", b"{}").expect("no devices: nothing to do");
    record(&[good.clone(), bad.clone()], "request", b"{\"x\":1}").expect("one device recorded it");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.log")).expect("read"),
        "{\"x\":1}\n"
    );
    let err = record(&[bad], "request", b"{}").expect_err("no device could record");
    assert!(
        err.to_string()
            .contains("no audit device could record the request"),
        "{err}"
    );
}

#[tokio::test]
async fn hasher_is_stable_per_server_and_secret_free() {
    let (physical, barrier) = barrier();
    let h1 = AuditStore::default()
        .hasher(&barrier)
        .await
        .expect("salt")
        .clone();
    // Another unsealed state over the same storage reads the same key.
    let h2 = AuditStore::default()
        .hasher(&barrier)
        .await
        .expect("salt again")
        .clone();
    let a = h1.hash("s3cr3t");
    assert_eq!(a, h2.hash("s3cr3t"));
    assert!(
        a.starts_with("hmac-sha256:") && a.len() == "hmac-sha256:".len() + 64,
        "{a}"
    );
    assert_ne!(a, Hasher::from_key(b"other").hash("s3cr3t"));
    // The salt is stored encrypted.
    let raw = physical
        .get(SALT_PATH)
        .await
        .expect("get")
        .expect("salt stored");
    assert!(raw.len() > 32);
}

#[test]
fn entries_hash_every_secret_value_and_token() {
    let h = Hasher::from_key(b"k");
    let data = json!({"data": {"password": "hunter2", "n": 3, "list": ["a"]}});
    let hashed = hash_values(&h, &data);
    assert_eq!(hashed["data"]["n"], 3);
    assert_eq!(hashed["data"]["password"], h.hash("hunter2"));
    assert_eq!(hashed["data"]["list"][0], h.hash("a"));
    let auth = AuthInfo {
        accessor: "acc123".into(),
        display_name: "token".into(),
        policies: vec!["default".into()],
        metadata: json!({}),
    };
    let req = RequestInfo {
        id: "id-1",
        operation: "update",
        path: "secret/data/app",
        client_token: Some("hvs.TOPSECRETTOKEN"),
        remote_address: None,
        data: Some(&data),
    };
    let line = request_entry(&h, "t", Some(&auth), &req).to_string();
    let resp = response_entry(
        &h,
        "t",
        Some(&auth),
        &req,
        200,
        Some(&json!({"data": {"value": "hunter2"}, "auth": {"client_token": "hvs.NEWTOKEN", "accessor": "acc2"}})),
    )
    .to_string();
    for text in [&line, &resp] {
        for secret in [
            "hunter2",
            "hvs.TOPSECRETTOKEN",
            "hvs.NEWTOKEN",
            "acc123",
            "\"acc2\"",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("secret/data/app"), "paths stay readable");
    }
    let v: serde_json::Value = serde_json::from_str(&resp).expect("json");
    assert_eq!(v["type"], "response");
    assert_eq!(v["response"]["status_code"], 200);
    assert_eq!(v["auth"]["client_token"], h.hash("hvs.TOPSECRETTOKEN"));
}

/// Storage whose reads are slow, so concurrent first requests overlap.
struct SlowReads(InmemBackend);

#[async_trait::async_trait]
impl Physical for SlowReads {
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<Vec<u8>>, crate::server::physical::PhysicalError> {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), crate::server::physical::PhysicalError> {
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), crate::server::physical::PhysicalError> {
        self.0.delete(key).await
    }
    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<String>, crate::server::physical::PhysicalError> {
        self.0.list(prefix).await
    }
    async fn transaction(
        &self,
        ops: Vec<crate::server::physical::TxnOp>,
    ) -> Result<(), crate::server::physical::PhysicalError> {
        self.0.transaction(ops).await
    }
    fn kind(&self) -> &'static str {
        "inmem"
    }
}

/// Regression (issue 11): two first audited requests at once each created an HMAC key, so
/// entries of one of them were hashed with a key that was then overwritten.
#[tokio::test]
async fn concurrent_first_requests_create_one_hmac_key() {
    let physical: Arc<dyn Physical> = Arc::new(SlowReads(InmemBackend::new()));
    let barrier = Barrier::new(
        Arc::clone(&physical),
        Arc::new(Keyring::new(Key::generate().expect("key")).expect("keyring")),
    );
    let store = Arc::new(AuditStore::default());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, barrier) = (Arc::clone(&store), barrier.clone());
        tasks.push(tokio::spawn(async move {
            store.hasher(&barrier).await.expect("hasher").hash("v")
        }));
    }
    let mut hashes = Vec::new();
    for t in tasks {
        hashes.push(t.await.expect("task"));
    }
    let stored = AuditStore::default()
        .hasher(&barrier)
        .await
        .expect("stored")
        .hash("v");
    assert!(
        hashes.iter().all(|h| *h == stored),
        "every request must hash with the one stored key"
    );
}
