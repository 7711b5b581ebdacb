//! Store tests: built-in policies, names, storage behind the barrier, and the ACL cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use serde_json::json;

use super::super::{
    Capability, DEFAULT_POLICY, PREFIX, PolicyError, acl_for, capabilities, check, delete, list,
    normalize_name, read, store, write,
};
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

fn barrier() -> (Barrier, Arc<Counting>) {
    let physical = Arc::new(Counting {
        inner: InmemBackend::new(),
        gets: AtomicUsize::new(0),
    });
    let keyring = Keyring::new(Key::generate().expect("key")).expect("keyring");
    (
        Barrier::new(
            Arc::clone(&physical) as Arc<dyn Physical>,
            Arc::new(keyring),
        ),
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
        read(&b, "default").await.expect("read").as_deref(),
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
    assert_eq!(list(&b).await.expect("list"), names(&["default", "root"]));

    let custom = "path \"secret/*\" { capabilities = [\"read\"] }";
    assert_eq!(
        write(&b, "Default", custom).await.expect("write"),
        "default"
    );
    assert_eq!(
        read(&b, "default").await.expect("read").as_deref(),
        Some(custom)
    );
    let e = delete(&b, "default").await.expect_err("delete default");
    assert_eq!(e.to_string(), "cannot delete default policy");
    assert_eq!(
        read(&b, "default").await.expect("read").as_deref(),
        Some(custom)
    );
}

#[tokio::test]
async fn root_is_built_in_and_immutable() {
    let (b, physical) = barrier();
    assert_eq!(read(&b, "root").await.expect("read").as_deref(), Some(""));
    let e = write(&b, "root", "path \"a\" { capabilities = [\"read\"] }")
        .await
        .expect_err("update root");
    assert_eq!(e.to_string(), "cannot update \"root\" policy");
    let e = delete(&b, "ROOT").await.expect_err("delete root");
    assert_eq!(e.to_string(), "cannot delete \"root\" policy");
    assert_eq!(
        physical.inner.get("sys/policy/root").await.expect("get"),
        None
    );
}

#[tokio::test]
async fn invalid_text_and_names_store_nothing() {
    let (b, physical) = barrier();
    let e = write(&b, "app", "path \"a\" { capabilities = [\"raed\"] }")
        .await
        .expect_err("bad hcl");
    assert!(matches!(e, PolicyError::Parse(_)), "{e}");
    assert_eq!(read(&b, "app").await.expect("read"), None);
    for bad in ["", "a/b", "a b", "..", "é", &"x".repeat(129)] {
        let e = write(&b, bad, "path \"a\" {}").await.expect_err(bad);
        assert!(matches!(e, PolicyError::InvalidName(_)), "{bad:?}: {e}");
        assert!(delete(&b, bad).await.is_err(), "{bad:?}");
        assert_eq!(read(&b, bad).await.expect("read"), None, "{bad:?}");
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
        write(
            &b,
            name,
            &format!("path \"{name}/*\" {{ capabilities = [\"read\"] }}"),
        )
        .await
        .expect("write");
    }
    assert_eq!(
        list(&b).await.expect("list"),
        names(&["alpha", "default", "mid", "zeta", "root"])
    );
    delete(&b, "mid").await.expect("delete");
    delete(&b, "mid")
        .await
        .expect("deleting a missing policy succeeds");
    assert_eq!(read(&b, "mid").await.expect("read"), None);
    assert_eq!(
        list(&b).await.expect("list"),
        names(&["alpha", "default", "zeta", "root"])
    );
}

#[tokio::test]
async fn check_uses_listed_policies_only() {
    let (b, _) = barrier();
    write(
        &b,
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }",
    )
    .await
    .expect("write");
    let app = entry(&["app", "no-such-policy", "Bad Name!"]);
    assert!(
        check(&b, &app, "secret/data/app/db", Capability::Read)
            .await
            .expect("check")
    );
    assert!(
        !check(&b, &app, "secret/data/other", Capability::Read)
            .await
            .expect("check")
    );
    // default applies only when listed.
    assert!(
        !check(&b, &app, "auth/token/lookup-self", Capability::Read)
            .await
            .expect("check")
    );
    let with_default = entry(&["APP", "default"]);
    assert!(
        check(
            &b,
            &with_default,
            "auth/token/lookup-self",
            Capability::Read
        )
        .await
        .expect("check")
    );
    assert!(
        check(
            &b,
            &with_default,
            "sys/capabilities-self",
            Capability::Update
        )
        .await
        .expect("check")
    );
    assert!(
        !check(&b, &with_default, "sys/policies/acl/app", Capability::Read)
            .await
            .expect("check")
    );
    // root grants everything, sudo included.
    let root = entry(&["root"]);
    assert!(
        check(&b, &root, "sys/seal", Capability::Sudo)
            .await
            .expect("check")
    );
    assert_eq!(
        capabilities(&b, &root, "x").await.expect("caps"),
        vec!["root"]
    );
    assert_eq!(
        capabilities(&b, &with_default, "secret/data/app/x")
            .await
            .expect("caps"),
        vec!["read"]
    );
    assert!(
        !check(&b, &entry(&[]), "auth/token/lookup-self", Capability::Read)
            .await
            .expect("check")
    );
}

#[tokio::test]
async fn cache_serves_repeats_and_writes_invalidate_it() {
    let (b, physical) = barrier();
    write(&b, "app", "path \"secret/a\" { capabilities = [\"read\"] }")
        .await
        .expect("write");
    let set = names(&["app", "default"]);
    let mut hit = false;
    // Other tests bump the shared generation concurrently; some repeat must still be a hit.
    for _ in 0..50 {
        let before = physical.gets.load(Ordering::SeqCst);
        let acl = acl_for(&b, &set).await.expect("acl");
        assert!(acl.allows("secret/a", Capability::Read));
        if physical.gets.load(Ordering::SeqCst) == before {
            hit = true;
            break;
        }
    }
    assert!(hit, "repeated checks should not read storage");

    let generation = store::generation();
    write(&b, "app", "path \"secret/b\" { capabilities = [\"read\"] }")
        .await
        .expect("write");
    assert!(store::generation() > generation);
    let acl = acl_for(&b, &set).await.expect("acl");
    assert!(!acl.allows("secret/a", Capability::Read));
    assert!(acl.allows("secret/b", Capability::Read));
    delete(&b, "app").await.expect("delete");
    assert!(
        !acl_for(&b, &set)
            .await
            .expect("acl")
            .allows("secret/b", Capability::Read)
    );
}

#[tokio::test]
async fn barriers_do_not_share_cached_policies() {
    let (one, _) = barrier();
    let (two, _) = barrier();
    write(&one, "app", "path \"x\" { capabilities = [\"read\"] }")
        .await
        .expect("write");
    write(&two, "app", "path \"y\" { capabilities = [\"read\"] }")
        .await
        .expect("write");
    let set = names(&["app"]);
    for _ in 0..3 {
        assert!(
            acl_for(&one, &set)
                .await
                .expect("acl")
                .allows("x", Capability::Read)
        );
        assert!(
            !acl_for(&two, &set)
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
    b.put(
        "sys/policy/app",
        b"path \"a\" { capabilities = [\"future\"] }",
    )
    .await
    .expect("put");
    let e = acl_for(&b, &names(&["app"])).await.expect_err("unparsable");
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
        check(&b, &entry(&["app"]), "a", Capability::Read)
            .await
            .is_err()
    );
}
