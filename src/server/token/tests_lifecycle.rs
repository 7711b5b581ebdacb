//! Unit tests of the token store against an in-memory barrier: hashing at rest, accessors,
//! tree and orphan revocation. The fixture is shared with `tests_uses`.

use std::sync::Arc;

use serde_json::json;
use zeroize::Zeroizing;

use super::*;
use crate::server::barrier::{Key, Keyring};
use crate::server::physical::{InmemBackend, Physical};

pub(super) struct Fixture {
    pub(super) physical: Arc<dyn Physical>,
    pub(super) barrier: Barrier,
    pub(super) store: TokenStore,
    pub(super) root_token: Zeroizing<String>,
    pub(super) root: TokenEntry,
}

pub(super) async fn fixture() -> Fixture {
    let physical: Arc<dyn Physical> = Arc::new(InmemBackend::new());
    let barrier = Barrier::new(
        Arc::clone(&physical),
        Arc::new(Keyring::new(Key::generate().expect("key")).expect("keyring")),
    );
    let (store, salt_op) = TokenStore::generate().expect("salt");
    let (root_token, root, mut ops) = store.new_root().expect("root");
    ops.push(salt_op);
    barrier.transaction(ops).await.expect("store");
    Fixture {
        physical,
        barrier,
        store,
        root_token,
        root,
    }
}

pub(super) fn create_req(v: serde_json::Value) -> CreateRequest {
    match v {
        serde_json::Value::Object(m) => CreateRequest::from_json(&m).expect("request"),
        _ => panic!("object expected"),
    }
}

pub(super) fn sudo(orphan: bool) -> CreateOptions {
    CreateOptions {
        sudo: true,
        orphan,
        path: "auth/token/create".into(),
    }
}

impl Fixture {
    pub(super) async fn child(&self, parent: &TokenEntry, body: serde_json::Value) -> Issued {
        self.store
            .create(&self.barrier, parent, &create_req(body), &sudo(false))
            .await
            .expect("create")
    }

    pub(super) async fn valid(&self, token: &str) -> bool {
        self.store
            .lookup(&self.barrier, token)
            .await
            .expect("lookup")
            .is_some()
    }

    /// Every storage key, recursively.
    pub(super) async fn all_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            for k in self.physical.list(&dir).await.expect("list") {
                let full = format!("{dir}{k}");
                if full.ends_with('/') {
                    dirs.push(full);
                } else {
                    out.push(full);
                }
            }
        }
        out
    }

    pub(super) async fn set_expire(&self, entry: &TokenEntry, expire_time: u64) {
        let mut e = entry.clone();
        e.expire_time = expire_time;
        self.store
            .write_entry(&self.barrier, &e)
            .await
            .expect("write");
    }
}

#[tokio::test]
async fn tokens_are_stored_only_as_salted_hashes() {
    let f = fixture().await;
    let child = f
        .child(&f.root, json!({"policies": ["web"], "meta": {"k": "v"}}))
        .await;
    assert!(child.token.starts_with("hvs.") && child.token.len() == 28);
    assert_eq!(child.entry.accessor.len(), 24);
    let keys = f.all_keys().await;
    assert!(keys.contains(&format!("{ID_PREFIX}{}", child.entry.hash)));
    assert!(keys.contains(&format!(
        "{PARENT_PREFIX}{}/{}",
        f.root.hash, child.entry.hash
    )));
    assert!(keys.contains(&format!(
        "{ACCESSOR_PREFIX}{}",
        f.store.hash(&child.entry.accessor)
    )));
    for token in [f.root_token.as_str(), child.token.as_str()] {
        let secret = &token[4..];
        for k in &keys {
            assert!(!k.contains(secret), "key {k} holds a token");
            let raw = f.physical.get(k).await.expect("get").expect("value");
            assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
            // Not even behind the barrier: decrypted entries hold only hashes.
            if k.starts_with("sys/token/") {
                let plain = f.barrier.get(k).await.expect("decrypt").expect("value");
                assert!(
                    !plain.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{k}"
                );
            }
        }
    }
    // The salt survives a reload.
    let reloaded = TokenStore::load(&f.barrier).await.expect("load");
    let found = reloaded
        .lookup(&f.barrier, &child.token)
        .await
        .expect("lookup");
    assert_eq!(
        found.map(|e| e.policies),
        Some(vec!["default".to_owned(), "web".to_owned()])
    );
    for bad in ["", "hvs.wrong", &"x".repeat(10_000)] {
        assert_eq!(
            reloaded.lookup(&f.barrier, bad).await.expect("lookup"),
            None
        );
        assert_eq!(
            reloaded.use_token(&f.barrier, bad).await.expect("use"),
            None
        );
    }
}

#[tokio::test]
async fn accessor_lookup_and_revoke() {
    let f = fixture().await;
    let child = f.child(&f.root, json!({"ttl": "1h"})).await;
    let by_accessor = f
        .store
        .lookup_accessor(&f.barrier, &child.entry.accessor)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(by_accessor.hash, child.entry.hash);
    let root_by_accessor = f
        .store
        .lookup_accessor(&f.barrier, &f.root.accessor)
        .await
        .expect("lookup");
    assert_eq!(
        root_by_accessor.map(|e| e.display_name),
        Some("root".to_owned())
    );
    for bad in ["", "nope", &"a".repeat(300)] {
        assert_eq!(
            f.store
                .lookup_accessor(&f.barrier, bad)
                .await
                .expect("lookup"),
            None
        );
    }
    let hash = f
        .store
        .accessor_hash(&f.barrier, &child.entry.accessor)
        .await
        .expect("hash")
        .expect("found");
    assert_eq!(
        f.store
            .revoke_tree(&f.barrier, &hash)
            .await
            .expect("revoke"),
        1
    );
    assert!(!f.valid(&child.token).await);
    assert_eq!(
        f.store
            .lookup_accessor(&f.barrier, &child.entry.accessor)
            .await
            .expect("lookup"),
        None
    );
    assert!(f.valid(&f.root_token).await);
    // Nothing of the child is left in storage.
    let keys = f.all_keys().await;
    assert!(
        keys.iter().all(|k| !k.contains(&child.entry.hash)),
        "{keys:?}"
    );
}

#[tokio::test]
async fn revoking_a_parent_revokes_children_recursively_but_not_orphans() {
    let f = fixture().await;
    let a = f.child(&f.root, json!({})).await;
    let b = f.child(&a.entry, json!({})).await;
    let c = f.child(&b.entry, json!({})).await;
    let c2 = f.child(&b.entry, json!({})).await;
    let orphan = f
        .store
        .create(&f.barrier, &a.entry, &create_req(json!({})), &sudo(true))
        .await
        .expect("orphan");
    let no_parent = f.child(&a.entry, json!({"no_parent": true})).await;
    assert_eq!(
        (orphan.entry.parent.clone(), no_parent.entry.parent.clone()),
        (None, None)
    );
    assert_eq!(
        f.store
            .revoke_tree(&f.barrier, &a.entry.hash)
            .await
            .expect("revoke"),
        4
    );
    for t in [&a, &b, &c, &c2] {
        assert!(!f.valid(&t.token).await);
    }
    assert!(f.valid(&orphan.token).await && f.valid(&no_parent.token).await);
    assert!(f.valid(&f.root_token).await);
    let left: Vec<_> = f
        .all_keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with(PARENT_PREFIX))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Revoking again is a no-op.
    assert_eq!(
        f.store
            .revoke_tree(&f.barrier, &a.entry.hash)
            .await
            .expect("revoke"),
        0
    );
}

#[tokio::test]
async fn revoke_orphan_keeps_children_as_orphans() {
    let f = fixture().await;
    let a = f.child(&f.root, json!({})).await;
    let b = f.child(&a.entry, json!({})).await;
    let c = f.child(&b.entry, json!({})).await;
    assert!(
        f.store
            .revoke_orphan(&f.barrier, &a.entry.hash)
            .await
            .expect("revoke")
    );
    assert!(!f.valid(&a.token).await);
    let b_now = f
        .store
        .lookup(&f.barrier, &b.token)
        .await
        .expect("lookup")
        .expect("b lives");
    assert_eq!(b_now.parent, None);
    assert!(
        f.valid(&c.token).await,
        "grandchildren keep their (living) parent"
    );
    assert!(
        !f.store
            .revoke_orphan(&f.barrier, &a.entry.hash)
            .await
            .expect("again")
    );
}

#[tokio::test]
async fn tidy_removes_expired_trees_and_dangling_index_entries() {
    let f = fixture().await;
    let now = crate::server::unix_now();
    let expired = f.child(&f.root, json!({"ttl": "1h"})).await;
    let under_expired = f.child(&expired.entry, json!({"ttl": "1h"})).await;
    let kept = f.child(&f.root, json!({"ttl": "1h"})).await;
    f.set_expire(&expired.entry, now - 1).await;
    // Index entries whose token vanished (as after a crash mid-revocation).
    let ghost = f.child(&f.root, json!({})).await;
    f.barrier
        .delete(&format!("{ID_PREFIX}{}", ghost.entry.hash))
        .await
        .expect("delete");
    let report = f.store.tidy(&f.barrier).await.expect("tidy");
    assert_eq!(
        report,
        TidyReport {
            tokens: 2,
            accessors: 1,
            parent_links: 1,
            interrupted: false,
        }
    );
    assert!(f.valid(&kept.token).await && f.valid(&f.root_token).await);
    let keys = f.all_keys().await;
    for gone in [&expired, &under_expired, &ghost] {
        assert!(
            keys.iter().all(|k| !k.contains(&gone.entry.hash)),
            "{keys:?}"
        );
    }
    assert_eq!(
        f.store.tidy(&f.barrier).await.expect("tidy"),
        TidyReport::default()
    );
}
