//! Store tests: built-in policies, names, storage behind the barrier, and the ACL cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use serde_json::json;

use super::super::{Capability, DEFAULT_POLICY, PREFIX, PolicyError, PolicyStore, normalize_name};
use crate::server::barrier::{Barrier, BarrierError, Key, Keyring};
use crate::server::physical::{InmemBackend, Physical, PhysicalError, TxnOp};
use crate::server::token::TokenEntry;

/// In-memory storage that counts reads, to see the cache at work.
struct Counting {
    inner: InmemBackend,
    gets: AtomicUsize,
}

#[async_trait]
impl Physical for Counting {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PhysicalError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), PhysicalError> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), PhysicalError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PhysicalError> {
        self.inner.list(prefix).await
    }
    async fn transaction(&self, ops: Vec<TxnOp>) -> Result<(), PhysicalError> {
        self.inner.transaction(ops).await
    }
    fn kind(&self) -> &'static str {
        "inmem"
    }
}

/// A barrier and the policy store of one unsealed server.
struct Unsealed {
    b: Barrier,
    p: PolicyStore,
}

fn barrier() -> (Unsealed, Arc<Counting>) {
    let physical = Arc::new(Counting {
        inner: InmemBackend::new(),
        gets: AtomicUsize::new(0),
    });
    let keyring = Keyring::new(Key::generate().expect("key")).expect("keyring");
    (
        Unsealed {
            b: Barrier::new(
                Arc::clone(&physical) as Arc<dyn Physical>,
                Arc::new(keyring),
            ),
            p: PolicyStore::default(),
        },
        physical,
    )
}

/// A token entry built through serde, so new optional fields do not break this test.
fn entry(policies: &[&str]) -> TokenEntry {
    serde_json::from_value(json!({
        "hash": "h",
        "accessor": "a",
        "policies": policies,
        "display_name": "test",
        "creation_time": 0,
        "ttl": 0,
    }))
    .expect("token entry")
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn default_is_stored_on_first_use_updatable_not_deletable() {
    let (b, physical) = barrier();
    assert_eq!(
        physical.inner.get("sys/policy/default").await.expect("get"),
        None
    );
    assert_eq!(
        b.p.read(&b.b, "default").await.expect("read").as_deref(),
        Some(DEFAULT_POLICY)
    );
    let stored = physical
        .inner
        .get("sys/policy/default")
        .await
        .expect("get")
        .expect("stored");
    assert!(
        !stored.windows(8).any(|w| w == b"renew-se"),
        "stored encrypted"
    );
    assert_eq!(
        b.p.list(&b.b).await.expect("list"),
        names(&["default", "root"])
    );

    let custom = "path \"secret/*\" { capabilities = [\"read\"] }";
    assert_eq!(
        b.p.write(&b.b, "Default", custom).await.expect("write"),
        "default"
    );
    assert_eq!(
        b.p.read(&b.b, "default").await.expect("read").as_deref(),
        Some(custom)
    );
    let e =
        b.p.delete(&b.b, "default")
            .await
            .expect_err("delete default");
    assert_eq!(e.to_string(), "cannot delete default policy");
    assert_eq!(
        b.p.read(&b.b, "default").await.expect("read").as_deref(),
        Some(custom)
    );
}

#[tokio::test]
async fn root_is_built_in_and_immutable() {
    let (b, physical) = barrier();
    assert_eq!(
        b.p.read(&b.b, "root").await.expect("read").as_deref(),
        Some("")
    );
    let e =
        b.p.write(&b.b, "root", "path \"a\" { capabilities = [\"read\"] }")
            .await
            .expect_err("update root");
    assert_eq!(e.to_string(), "cannot update \"root\" policy");
    let e = b.p.delete(&b.b, "ROOT").await.expect_err("delete root");
    assert_eq!(e.to_string(), "cannot delete \"root\" policy");
    assert_eq!(
        physical.inner.get("sys/policy/root").await.expect("get"),
        None
    );
}

#[tokio::test]
async fn invalid_text_and_names_store_nothing() {
    let (b, physical) = barrier();
    let e =
        b.p.write(&b.b, "app", "path \"a\" { capabilities = [\"raed\"] }")
            .await
            .expect_err("bad hcl");
    assert!(matches!(e, PolicyError::Parse(_)), "{e}");
    assert_eq!(b.p.read(&b.b, "app").await.expect("read"), None);
    for bad in ["", "a/b", "a b", "..", "é", &"x".repeat(129)] {
        let e = b.p.write(&b.b, bad, "path \"a\" {}").await.expect_err(bad);
        assert!(matches!(e, PolicyError::InvalidName(_)), "{bad:?}: {e}");
        assert!(b.p.delete(&b.b, bad).await.is_err(), "{bad:?}");
        assert_eq!(b.p.read(&b.b, bad).await.expect("read"), None, "{bad:?}");
    }
    assert_eq!(
        physical.inner.list(PREFIX).await.expect("list"),
        Vec::<String>::new()
    );
    assert_eq!(normalize_name("My-App_1.v2").expect("name"), "my-app_1.v2");
    assert!(normalize_name(&"x".repeat(128)).is_ok());
}

#[tokio::test]
async fn crud_and_list_order() {
    let (b, _) = barrier();
    for name in ["zeta", "alpha", "mid"] {
        b.p.write(
            &b.b,
            name,
            &format!("path \"{name}/*\" {{ capabilities = [\"read\"] }}"),
        )
        .await
        .expect("write");
    }
    assert_eq!(
        b.p.list(&b.b).await.expect("list"),
        names(&["alpha", "default", "mid", "zeta", "root"])
    );
    b.p.delete(&b.b, "mid").await.expect("delete");
    b.p.delete(&b.b, "mid")
        .await
        .expect("deleting a missing policy succeeds");
    assert_eq!(b.p.read(&b.b, "mid").await.expect("read"), None);
    assert_eq!(
        b.p.list(&b.b).await.expect("list"),
        names(&["alpha", "default", "zeta", "root"])
    );
}

#[tokio::test]
async fn check_uses_listed_policies_only() {
    let (b, _) = barrier();
    b.p.write(
        &b.b,
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }",
    )
    .await
    .expect("write");
    let app = entry(&["app", "no-such-policy", "Bad Name!"]);
    assert!(
        b.p.check(&b.b, &app, "secret/data/app/db", Capability::Read)
            .await
            .expect("check")
    );
    assert!(
        !b.p.check(&b.b, &app, "secret/data/other", Capability::Read)
            .await
            .expect("check")
    );
    // default applies only when listed.
    assert!(
        !b.p.check(&b.b, &app, "auth/token/lookup-self", Capability::Read)
            .await
            .expect("check")
    );
    let with_default = entry(&["APP", "default"]);
    assert!(
        b.p.check(
            &b.b,
            &with_default,
            "auth/token/lookup-self",
            Capability::Read
        )
        .await
        .expect("check")
    );
    assert!(
        b.p.check(
            &b.b,
            &with_default,
            "sys/capabilities-self",
            Capability::Update
        )
        .await
        .expect("check")
    );
    assert!(
        !b.p.check(
            &b.b,
            &with_default,
            "sys/policies/acl/app",
            Capability::Read
        )
        .await
        .expect("check")
    );
    // root grants everything, sudo included.
    let root = entry(&["root"]);
    assert!(
        b.p.check(&b.b, &root, "sys/seal", Capability::Sudo)
            .await
            .expect("check")
    );
    assert_eq!(
        b.p.capabilities(&b.b, &root, "x").await.expect("caps"),
        vec!["root"]
    );
    assert_eq!(
        b.p.capabilities(&b.b, &with_default, "secret/data/app/x")
            .await
            .expect("caps"),
        vec!["read"]
    );
    assert!(
        !b.p.check(
            &b.b,
            &entry(&[]),
            "auth/token/lookup-self",
            Capability::Read
        )
        .await
        .expect("check")
    );
}

#[tokio::test]
async fn cache_serves_repeats_and_writes_invalidate_it() {
    let (b, physical) = barrier();
    b.p.write(
        &b.b,
        "app",
        "path \"secret/a\" { capabilities = [\"read\"] }",
    )
    .await
    .expect("write");
    let set = names(&["app", "default"]);
    // The store is this test's own: the first check stores `default` (a write, so nothing is
    // cached), the second loads and caches, a repeat must hit the cache.
    for _ in 0..2 {
        let acl = b.p.acl_for(&b.b, &set).await.expect("acl");
        assert!(acl.allows("secret/a", Capability::Read));
    }
    let before = physical.gets.load(Ordering::SeqCst);
    let acl = b.p.acl_for(&b.b, &set).await.expect("acl");
    assert!(acl.allows("secret/a", Capability::Read));
    assert_eq!(
        physical.gets.load(Ordering::SeqCst),
        before,
        "a repeated check should not read storage"
    );

    let generation = b.p.generation();
    b.p.write(
        &b.b,
        "app",
        "path \"secret/b\" { capabilities = [\"read\"] }",
    )
    .await
    .expect("write");
    assert!(b.p.generation() > generation);
    let acl = b.p.acl_for(&b.b, &set).await.expect("acl");
    assert!(!acl.allows("secret/a", Capability::Read));
    assert!(acl.allows("secret/b", Capability::Read));
    b.p.delete(&b.b, "app").await.expect("delete");
    assert!(
        !b.p.acl_for(&b.b, &set)
            .await
            .expect("acl")
            .allows("secret/b", Capability::Read)
    );
}

#[tokio::test]
async fn barriers_do_not_share_cached_policies() {
    let (one, _) = barrier();
    let (two, _) = barrier();
    one.p
        .write(&one.b, "app", "path \"x\" { capabilities = [\"read\"] }")
        .await
        .expect("write");
    two.p
        .write(&two.b, "app", "path \"y\" { capabilities = [\"read\"] }")
        .await
        .expect("write");
    let set = names(&["app"]);
    for _ in 0..3 {
        assert!(
            one.p
                .acl_for(&one.b, &set)
                .await
                .expect("acl")
                .allows("x", Capability::Read)
        );
        assert!(
            !two.p
                .acl_for(&two.b, &set)
                .await
                .expect("acl")
                .allows("x", Capability::Read)
        );
    }
}

#[tokio::test]
async fn a_tampered_policy_is_an_error_not_ignored() {
    let (b, physical) = barrier();
    // A valid ciphertext of text that no longer parses (as if written by a newer version).
    b.b.put(
        "sys/policy/app",
        b"path \"a\" { capabilities = [\"future\"] }",
    )
    .await
    .expect("put");
    let e =
        b.p.acl_for(&b.b, &names(&["app"]))
            .await
            .expect_err("unparsable");
    assert!(
        matches!(e, BarrierError::Integrity { ref path } if path == "sys/policy/app"),
        "{e}"
    );
    physical
        .inner
        .put("sys/policy/app", vec![0; 40])
        .await
        .expect("put");
    assert!(
        b.p.check(&b.b, &entry(&["app"]), "a", Capability::Read)
            .await
            .is_err()
    );
}
