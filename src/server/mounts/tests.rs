//! Unit tests of the mount table over the in-memory backend.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::server::barrier::{Key, Keyring};
use crate::server::kv::ReadOutcome;
use crate::server::physical::{InmemBackend, Physical};

/// The barrier, mount store and key locks of one unsealed server.
struct Setup {
    barrier: Barrier,
    store: MountStore,
    locks: KeyLocks,
}

impl Setup {
    fn m(&self) -> Mounts<'_> {
        Mounts::new(&self.barrier, &self.store, &self.locks)
    }
}

fn setup() -> (Setup, Arc<InmemBackend>) {
    let physical = Arc::new(InmemBackend::new());
    let barrier = Barrier::new(
        Arc::clone(&physical) as Arc<dyn Physical>,
        Arc::new(Keyring::new(Key::generate().expect("key")).expect("keyring")),
    );
    (
        Setup {
            barrier,
            store: MountStore::default(),
            locks: KeyLocks::default(),
        },
        physical,
    )
}

fn kv2() -> NewMount {
    NewMount {
        kind: "kv".into(),
        options: [("version".to_owned(), "2".to_owned())].into(),
        ..Default::default()
    }
}

fn data(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().expect("object")
}

#[tokio::test]
async fn the_default_table_is_created_once_and_routes() {
    let (b, physical) = setup();
    assert!(physical.get(MOUNT_TABLE_PATH).await.expect("get").is_none());
    let t1 = b.m().table().await.expect("table");
    let t2 = b.m().table().await.expect("table");
    assert_eq!(t1, t2, "the same table (same UUIDs) on every access");
    let paths: Vec<_> = t1.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["sys/", "secret/"]);
    let secret = t1.get("secret/").expect("secret/");
    assert_eq!(secret.kind, "kv");
    assert!(secret.accessor.starts_with("kv_"), "{}", secret.accessor);
    assert_eq!(
        serde_json::to_value(&secret.options).expect("json"),
        json!({"version": "2"})
    );

    let (e, rest) = t1.route("secret/data/app/db").expect("routed");
    assert_eq!((e.path.as_str(), rest), ("secret/", "data/app/db"));
    assert_eq!(
        t1.route("secret").map(|(e, r)| (e.path.as_str(), r)),
        Some(("secret/", ""))
    );
    assert!(t1.route("secretx/data/a").is_none());
    assert!(
        t1.route("sys/mounts").is_none(),
        "sys/ is never routed to an engine"
    );
    // The stored table is ciphertext.
    let raw = physical
        .get(MOUNT_TABLE_PATH)
        .await
        .expect("get")
        .expect("stored");
    assert!(!String::from_utf8_lossy(&raw).contains("secret/"));
}

#[tokio::test]
async fn mount_validates_type_path_and_overlap() {
    let (b, _) = setup();
    let e = b.m().mount("team/kv", kv2()).await.expect("mount");
    assert_eq!(e.path, "team/kv/");
    let v2 = NewMount {
        kind: "kv-v2".into(),
        ..Default::default()
    };
    assert_eq!(
        b.m().mount("other/", v2).await.expect("kv-v2").options,
        Some([("version".to_owned(), "2".to_owned())].into())
    );
    let t = b.m().table().await.expect("table");
    let (routed, rest) = t.route("team/kv/data/x").expect("routed");
    assert_eq!((routed.uuid.as_str(), rest), (e.uuid.as_str(), "data/x"));

    for (kind, version) in [
        ("kv", None),
        ("kv", Some("1")),
        ("pki", None),
        ("kv-v2", Some("1")),
    ] {
        let mut req = NewMount {
            kind: kind.into(),
            ..Default::default()
        };
        if let Some(v) = version {
            req.options.insert("version".into(), v.into());
        }
        let err = b.m().mount("new", req).await.expect_err("unsupported");
        assert!(matches!(err, MountError::UnsupportedType { .. }), "{err}");
        assert!(err.to_string().contains("KV version 2"), "{err}");
    }
    for reserved in ["sys", "sys/x", "auth/x", "cubbyhole", "identity", "audit"] {
        assert!(
            matches!(
                b.m().mount(reserved, kv2()).await,
                Err(MountError::Reserved { .. })
            ),
            "{reserved}"
        );
    }
    for bad in ["", "/", "a//b", "../x", "a/../b", "a\0b"] {
        assert!(
            matches!(
                b.m().mount(bad, kv2()).await,
                Err(MountError::InvalidPath { .. })
            ),
            "{bad:?}"
        );
    }
    for overlap in ["secret", "secret/sub", "team", "team/kv/deeper"] {
        let err = b.m().mount(overlap, kv2()).await.expect_err("in use");
        assert!(
            err.to_string().starts_with("path is already in use at "),
            "{err}"
        );
    }
    assert_eq!(b.m().table().await.expect("table").entries.len(), 4);
}

#[tokio::test]
async fn unmount_removes_the_entry_and_all_data_in_batches() {
    let (b, physical) = setup();
    let e = b.m().mount("big", kv2()).await.expect("mount");
    let kv = b.m().kv(&e.uuid);
    // More keys than one purge batch, in nested folders.
    for i in 0..(PURGE_BATCH + 40) {
        kv.write(&format!("f{}/k{i}", i % 7), data(json!({"i": i})), None)
            .await
            .expect("write");
    }
    let secret = b
        .m()
        .table()
        .await
        .expect("table")
        .get("secret/")
        .cloned()
        .expect("secret/");
    b.m()
        .kv(&secret.uuid)
        .write("keep", data(json!({"a": 1})), None)
        .await
        .expect("write");

    assert!(b.m().unmount("big/").await.expect("unmount"));
    assert!(!b.m().unmount("big").await.expect("again"));
    let t = b.m().table().await.expect("table");
    assert!(t.get("big/").is_none());
    assert!(t.purging.is_empty());
    let prefix = format!("{}{}/", kv::LOGICAL_PREFIX, e.uuid);
    assert!(physical.list(&prefix).await.expect("list").is_empty());
    // Other mounts keep their data.
    assert!(matches!(
        b.m()
            .kv(&secret.uuid)
            .read("keep", None)
            .await
            .expect("read"),
        ReadOutcome::Found { .. }
    ));
    assert!(matches!(
        b.m().unmount("sys").await,
        Err(MountError::Reserved { .. })
    ));
}

#[tokio::test]
async fn unmounting_secret_is_remembered_and_a_new_mount_starts_empty() {
    let (b, _) = setup();
    let old = b
        .m()
        .table()
        .await
        .expect("table")
        .get("secret/")
        .cloned()
        .expect("secret/");
    b.m()
        .kv(&old.uuid)
        .write("x", data(json!({"a": 1})), None)
        .await
        .expect("write");
    assert!(b.m().unmount("secret").await.expect("unmount"));
    assert!(b.m().table().await.expect("table").get("secret/").is_none());
    let new = b.m().mount("secret", kv2()).await.expect("remount");
    assert_ne!(new.uuid, old.uuid);
    assert_eq!(
        b.m().kv(&new.uuid).read("x", None).await.expect("read"),
        ReadOutcome::NotFound
    );
}

#[tokio::test]
async fn an_interrupted_purge_is_finished_later() {
    let (b, physical) = setup();
    let e = b.m().mount("gone", kv2()).await.expect("mount");
    b.m()
        .kv(&e.uuid)
        .write("a", data(json!({"a": 1})), None)
        .await
        .expect("write");
    // Simulate a crash after the table write and before the purge.
    {
        let _lock = b.store.table_lock.lock().await;
        let mut t = b.m().load_or_create_locked().await.expect("table");
        t.entries.retain(|x| x.path != "gone/");
        t.purging.push(e.uuid.clone());
        b.m().store(&t).await.expect("store");
    }
    b.m().mount("later", kv2()).await.expect("mount");
    let prefix = format!("{}{}/", kv::LOGICAL_PREFIX, e.uuid);
    assert!(physical.list(&prefix).await.expect("list").is_empty());
    assert!(b.m().table().await.expect("table").purging.is_empty());
}

#[tokio::test]
async fn tune_changes_settings_and_max_versions() {
    let (b, _) = setup();
    let t = Tune {
        description: Some("team secrets".into()),
        default_lease_ttl: Some(60),
        options: Some([("max_versions".to_owned(), "3".to_owned())].into()),
        ..Default::default()
    };
    let e = b.m().tune("secret", t).await.expect("tune");
    assert_eq!(e.description, "team secrets");
    assert_eq!(e.config.default_lease_ttl, 60);
    assert_eq!(
        serde_json::to_value(&e.options).expect("json"),
        json!({"version": "2"})
    );
    assert_eq!(
        b.m()
            .kv(&e.uuid)
            .config()
            .await
            .expect("config")
            .max_versions,
        3
    );

    let downgrade = Tune {
        options: Some([("version".to_owned(), "1".to_owned())].into()),
        ..Default::default()
    };
    assert!(matches!(
        b.m().tune("secret", downgrade).await,
        Err(MountError::UnsupportedType { .. })
    ));
    let bad = Tune {
        options: Some([("max_versions".to_owned(), "many".to_owned())].into()),
        ..Default::default()
    };
    assert!(matches!(
        b.m().tune("secret", bad).await,
        Err(MountError::InvalidOption(_))
    ));
    assert!(matches!(
        b.m().tune("nope", Tune::default()).await,
        Err(MountError::NotFound { .. })
    ));
}
