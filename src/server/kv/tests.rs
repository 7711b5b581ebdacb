//! Unit tests of the KV v2 data paths over the in-memory backend.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::*;
use crate::server::barrier::{Key, Keyring};
use crate::server::physical::{InmemBackend, Physical};

pub(super) const MOUNT: &str = "4d6f756e-7400-4000-8000-000000000001";

/// A barrier and the key locks of one unsealed server.
pub(super) struct Setup {
    pub b: Barrier,
    pub locks: KeyLocks,
}

impl Setup {
    pub fn kv<'a>(&'a self, mount: &'a str) -> Kv<'a> {
        Kv::new(&self.b, &self.locks, mount)
    }
}

pub(super) fn setup() -> (Arc<Setup>, Arc<InmemBackend>) {
    let physical = Arc::new(InmemBackend::new());
    let barrier = Barrier::new(
        Arc::clone(&physical) as Arc<dyn Physical>,
        Arc::new(Keyring::new(Key::generate().expect("key")).expect("keyring")),
    );
    (
        Arc::new(Setup {
            b: barrier,
            locks: KeyLocks::default(),
        }),
        physical,
    )
}

pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

pub(super) async fn found(
    kv: &Kv<'_>,
    key: &str,
    version: Option<u64>,
) -> (Map<String, Value>, VersionInfo) {
    match kv.read(key, version).await.expect("read") {
        ReadOutcome::Found { data, info } => (data, info),
        other => panic!("expected data, got {other:?}"),
    }
}

#[tokio::test]
async fn versions_and_check_and_set() {
    let (b, _) = setup();
    let kv = b.kv(MOUNT);
    assert_eq!(
        kv.read("app/db", None).await.expect("read"),
        ReadOutcome::NotFound
    );

    let m1 = kv
        .write("app/db", obj(json!({"password": "one"})), Some(0))
        .await
        .expect("create");
    assert_eq!((m1.version, m1.destroyed), (1, false));
    assert_eq!(m1.deletion_time, "");
    assert_eq!(m1.custom_metadata, None);
    assert!(m1.created_time.ends_with('Z'), "{}", m1.created_time);

    // cas=0 only creates; a wrong version is refused; nothing is stored by a refusal.
    for cas in [0, 2, 7] {
        assert!(matches!(
            kv.write("app/db", obj(json!({"x": 1})), Some(cas)).await,
            Err(KvError::CasMismatch)
        ));
    }
    let m2 = kv
        .write("app/db", obj(json!({"password": "two"})), Some(1))
        .await
        .expect("cas update");
    assert_eq!(m2.version, 2);
    let m3 = kv
        .write("app/db", obj(json!({"password": "three"})), None)
        .await
        .expect("plain update");
    assert_eq!(m3.version, 3);

    let (data, info) = found(&kv, "app/db", None).await;
    assert_eq!((data, info.version), (obj(json!({"password": "three"})), 3));
    let (data, _) = found(&kv, "app/db", Some(1)).await;
    assert_eq!(data, obj(json!({"password": "one"})));
    // Version 0 means "current", as in Vault.
    assert_eq!(found(&kv, "app/db", Some(0)).await.1.version, 3);
    assert_eq!(
        kv.read("app/db", Some(9)).await.expect("read"),
        ReadOutcome::NotFound
    );
}

#[tokio::test]
async fn cas_required_on_the_key_or_the_mount() {
    let (b, _) = setup();
    let kv = b.kv(MOUNT);
    kv.update_config(|c| c.cas_required = true)
        .await
        .expect("config");
    assert!(matches!(
        kv.write("k", obj(json!({"a": 1})), None).await,
        Err(KvError::CasRequired)
    ));
    kv.write("k", obj(json!({"a": 1})), Some(0))
        .await
        .expect("cas create");
    kv.update_config(|c| c.cas_required = false)
        .await
        .expect("config");
    kv.write("k", obj(json!({"a": 2})), None)
        .await
        .expect("no cas needed");

    let update = meta::MetadataUpdate {
        cas_required: Some(true),
        ..Default::default()
    };
    kv.write_metadata("k", &update).await.expect("metadata");
    assert!(matches!(
        kv.write("k", obj(json!({"a": 3})), None).await,
        Err(KvError::CasRequired)
    ));
    assert!(matches!(
        kv.patch("k", &obj(json!({"a": 3})), None).await,
        Err(KvError::CasRequired)
    ));
    kv.write("k", obj(json!({"a": 3})), Some(2))
        .await
        .expect("cas update");
}

#[tokio::test]
async fn soft_delete_undelete_and_destroy() {
    let (b, physical) = setup();
    let kv = b.kv(MOUNT);
    for i in 1..=3 {
        kv.write("s", obj(json!({"v": i})), None)
            .await
            .expect("write");
    }
    assert_eq!(
        kv.delete_latest("s").await.expect("delete"),
        DeleteOutcome::Changed
    );
    assert_eq!(
        kv.delete_latest("s").await.expect("again"),
        DeleteOutcome::Unchanged
    );
    assert_eq!(
        kv.delete_latest("nope").await.expect("missing"),
        DeleteOutcome::NoSuchKey
    );
    let ReadOutcome::Gone(info) = kv.read("s", None).await.expect("read") else {
        panic!("deleted version must be gone");
    };
    assert_eq!(info.version, 3);
    assert!(!info.deletion_time.is_empty());
    assert!(!info.destroyed);

    kv.delete_versions("s", &[1, 42]).await.expect("delete 1");
    assert!(matches!(
        kv.read("s", Some(1)).await.expect("read"),
        ReadOutcome::Gone(_)
    ));
    assert_eq!(found(&kv, "s", Some(2)).await.0, obj(json!({"v": 2})));

    kv.undelete("s", &[1, 3]).await.expect("undelete");
    assert_eq!(found(&kv, "s", Some(1)).await.0, obj(json!({"v": 1})));
    let (_, info) = found(&kv, "s", None).await;
    assert_eq!(info.deletion_time, "");

    // Destroy removes the data from storage for good and marks the version.
    let data_key = version_key(MOUNT, "s", 2);
    assert!(physical.get(&data_key).await.expect("get").is_some());
    assert_eq!(
        kv.destroy("s", &[2]).await.expect("destroy"),
        DeleteOutcome::Changed
    );
    assert_eq!(
        kv.destroy("s", &[2]).await.expect("again"),
        DeleteOutcome::Unchanged
    );
    assert!(physical.get(&data_key).await.expect("get").is_none());
    let ReadOutcome::Gone(info) = kv.read("s", Some(2)).await.expect("read") else {
        panic!("destroyed version must be gone");
    };
    assert!(info.destroyed);
    // A destroyed version cannot be undeleted.
    kv.undelete("s", &[2]).await.expect("undelete");
    assert!(matches!(
        kv.read("s", Some(2)).await.expect("read"),
        ReadOutcome::Gone(_)
    ));
}

#[tokio::test]
async fn max_versions_prunes_the_oldest_data() {
    let (b, physical) = setup();
    let kv = b.kv(MOUNT);
    for i in 1..=12 {
        kv.write("k", obj(json!({"i": i})), None)
            .await
            .expect("write");
    }
    let meta = kv.metadata("k").await.expect("meta").expect("exists");
    assert_eq!((meta.current_version, meta.oldest_version), (12, 3));
    assert_eq!(
        meta.versions.keys().copied().collect::<Vec<_>>(),
        (3..=12).collect::<Vec<_>>()
    );
    for v in 1..=2 {
        assert_eq!(
            kv.read("k", Some(v)).await.expect("read"),
            ReadOutcome::NotFound
        );
        assert!(
            physical
                .get(&version_key(MOUNT, "k", v))
                .await
                .expect("get")
                .is_none()
        );
    }
    assert_eq!(found(&kv, "k", Some(3)).await.0, obj(json!({"i": 3})));

    kv.update_config(|c| c.max_versions = 2)
        .await
        .expect("config");
    let update = meta::MetadataUpdate {
        max_versions: Some(1),
        ..Default::default()
    };
    kv.write_metadata("k", &update).await.expect("metadata");
    kv.write("k", obj(json!({"i": 13})), None)
        .await
        .expect("write");
    // The larger of the key's (1) and the mount's (2) limit applies.
    let meta = kv.metadata("k").await.expect("meta").expect("exists");
    assert_eq!(meta.versions.keys().copied().collect::<Vec<_>>(), [12, 13]);
    for v in 3..=11 {
        assert!(
            physical
                .get(&version_key(MOUNT, "k", v))
                .await
                .expect("get")
                .is_none()
        );
    }
}

#[tokio::test]
async fn delete_version_after_is_honoured_on_read() {
    let (b, _) = setup();
    let kv = b.kv(MOUNT);
    kv.write("k", obj(json!({"a": 1})), None)
        .await
        .expect("write");
    kv.update_config(|c| c.delete_version_after = 3600)
        .await
        .expect("config");
    let info = kv
        .write("k", obj(json!({"a": 2})), None)
        .await
        .expect("write");
    // A future deletion time is reported and the data is still readable.
    assert!(!info.deletion_time.is_empty());
    assert_eq!(found(&kv, "k", None).await.0, obj(json!({"a": 2})));

    // Once the deletion time has passed the version reads as deleted.
    let mut meta = kv.metadata("k").await.expect("meta").expect("exists");
    if let Some(v) = meta.versions.get_mut(&2) {
        v.deletion_time = Some(model::now() - 1);
    }
    kv.store_metadata_for_test("k", &meta).await;
    assert!(matches!(
        kv.read("k", None).await.expect("read"),
        ReadOutcome::Gone(_)
    ));
    // Disabling on the mount stops new deletion times.
    kv.update_config(|c| c.delete_version_after = -1)
        .await
        .expect("config");
    let info = kv
        .write("k", obj(json!({"a": 3})), None)
        .await
        .expect("write");
    assert_eq!(info.deletion_time, "");
}

impl Kv<'_> {
    async fn store_metadata_for_test(&self, key: &str, meta: &KeyMetadata) {
        let k = metadata_key(self.uuid, key);
        let raw = serde_json::to_vec(meta).expect("json");
        self.barrier.put(&k, &raw).await.expect("put");
    }
}

#[tokio::test]
async fn invalid_paths_are_refused_before_storage() {
    let (b, physical) = setup();
    let kv = b.kv(MOUNT);
    for bad in [
        "", "a//b", "../x", "a/../b", "a/./b", "a/", "/a", "a\0b", "a\tb",
    ] {
        assert!(
            matches!(
                kv.write(bad, obj(json!({"a": 1})), None).await,
                Err(KvError::InvalidPath { .. })
            ),
            "{bad:?}"
        );
        assert!(kv.read(bad, None).await.is_err(), "{bad:?}");
    }
    assert!(physical.list("").await.expect("list").is_empty());
}

#[tokio::test]
async fn a_key_and_its_sub_keys_never_collide() {
    let (b, _) = setup();
    let kv = b.kv(MOUNT);
    b.kv(MOUNT)
        .write("a", obj(json!({"top": true})), None)
        .await
        .expect("write");
    kv.write("a/1", obj(json!({"sub": true})), None)
        .await
        .expect("write");
    assert_eq!(found(&kv, "a", Some(1)).await.0, obj(json!({"top": true})));
    assert_eq!(
        found(&kv, "a/1", Some(1)).await.0,
        obj(json!({"sub": true}))
    );
    // Another mount's engine sees nothing of this one.
    assert_eq!(
        b.kv("another-mount").read("a", None).await.expect("read"),
        ReadOutcome::NotFound
    );
}

#[tokio::test]
async fn concurrent_cas_creates_admit_exactly_one() {
    let (b, _) = setup();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.kv(MOUNT)
                .write("race", obj(json!({"writer": i})), Some(0))
                .await
                .is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("task"));
    }
    assert_eq!(wins, 1);
    let meta = b
        .kv(MOUNT)
        .metadata("race")
        .await
        .expect("meta")
        .expect("exists");
    assert_eq!(meta.current_version, 1);
}
