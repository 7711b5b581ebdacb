//! Unit tests of the token store's use counting (also concurrent), expiry, renewal, login
//! tokens and the nesting bound.

use std::sync::Arc;

use serde_json::json;

use super::tests_lifecycle::{create_req, fixture, sudo};
use super::*;

#[tokio::test]
async fn num_uses_run_out_and_the_last_use_succeeds() {
    let f = fixture().await;
    let t = f.child(&f.root, json!({"num_uses": 3})).await;
    let uses = |_: ()| f.store.use_token(&f.barrier, &t.token);
    assert_eq!(uses(()).await.expect("use").map(|e| e.num_uses), Some(2));
    assert_eq!(uses(()).await.expect("use").map(|e| e.num_uses), Some(1));
    assert_eq!(
        uses(()).await.expect("use").map(|e| e.num_uses),
        Some(-1),
        "final use"
    );
    assert_eq!(uses(()).await.expect("use"), None);
    assert!(
        f.all_keys()
            .await
            .iter()
            .all(|k| !k.contains(&t.entry.hash))
    );
    // Lookups do not count as uses; unlimited tokens are never written on use.
    let unlimited = f.child(&f.root, json!({})).await;
    for _ in 0..3 {
        assert!(f.valid(&unlimited.token).await);
        let e = f
            .store
            .use_token(&f.barrier, &unlimited.token)
            .await
            .expect("use");
        assert_eq!(e.map(|e| e.num_uses), Some(0));
    }
    // A limited-use token cannot create children.
    let limited = f.child(&f.root, json!({"num_uses": 5})).await;
    let err = f
        .store
        .create(
            &f.barrier,
            &limited.entry,
            &create_req(json!({})),
            &sudo(false),
        )
        .await
        .expect_err("restricted");
    assert_eq!(
        err.to_string(),
        "restricted use token cannot generate child tokens"
    );
}

#[tokio::test]
async fn concurrent_requests_never_share_the_last_use() {
    let f = Arc::new(fixture().await);
    let t = f.child(&f.root, json!({"num_uses": 5})).await;
    let token = Arc::new(t.token.to_string());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (f, token) = (Arc::clone(&f), Arc::clone(&token));
        tasks.spawn(async move { f.store.use_token(&f.barrier, &token).await.expect("use") });
    }
    let mut granted = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Some(e) = r.expect("task") {
            granted.push(e.num_uses);
        }
    }
    granted.sort_unstable();
    assert_eq!(granted, vec![-1, 1, 2, 3, 4]);
}

#[tokio::test]
async fn expired_tokens_and_their_children_are_invalid_and_deleted_lazily() {
    let f = fixture().await;
    let now = crate::server::unix_now();
    let parent = f.child(&f.root, json!({"ttl": "1h"})).await;
    let child = f.child(&parent.entry, json!({"ttl": "1h"})).await;
    assert!(f.valid(&child.token).await);
    f.set_expire(&parent.entry, now - 1).await;
    assert!(!f.valid(&parent.token).await);
    assert!(
        !f.valid(&child.token).await,
        "a child never outlives its parent"
    );
    assert_eq!(
        f.store
            .use_token(&f.barrier, &parent.token)
            .await
            .expect("use"),
        None
    );
    let keys = f.all_keys().await;
    assert!(
        keys.iter()
            .all(|k| !k.contains(&parent.entry.hash) && !k.contains(&child.entry.hash))
    );
}

#[tokio::test]
async fn renewal_rules() {
    let f = fixture().await;
    let t = f.child(&f.root, json!({"ttl": "10m"})).await;
    let (e, w) = f
        .store
        .renew(&f.barrier, &t.entry.hash, 3600)
        .await
        .expect("renew");
    assert_eq!((e.lease_ttl, e.ttl), (3600, 600), "creation ttl stays");
    assert!(w.is_empty());
    assert!(e.last_renewal_time.is_some());
    let (e, _) = f
        .store
        .renew(&f.barrier, &t.entry.hash, 0)
        .await
        .expect("renew");
    assert_eq!(e.lease_ttl, 3600, "no increment repeats the last grant");

    let capped = f
        .child(&f.root, json!({"ttl": "10m", "explicit_max_ttl": "20m"}))
        .await;
    let (e, w) = f
        .store
        .renew(&f.barrier, &capped.entry.hash, 86_400)
        .await
        .expect("renew");
    assert!(
        e.lease_ttl <= 1200 && e.lease_ttl >= 1190,
        "{}",
        e.lease_ttl
    );
    assert!(w[0].contains("capped"), "{w:?}");

    let fixed = f
        .child(&f.root, json!({"ttl": "10m", "renewable": false}))
        .await;
    let err = f
        .store
        .renew(&f.barrier, &fixed.entry.hash, 60)
        .await
        .expect_err("fixed");
    assert!(matches!(err, TokenError::NotRenewable(_)), "{err}");
    let err = f
        .store
        .renew(&f.barrier, &f.root.hash, 60)
        .await
        .expect_err("root");
    assert!(err.to_string().starts_with("lease is not renewable"));
    let err = f
        .store
        .renew(&f.barrier, &"0".repeat(64), 60)
        .await
        .expect_err("unknown");
    assert!(matches!(err, TokenError::NotFound));

    let periodic = f
        .child(&f.root, json!({"period": "30m", "ttl": "5m"}))
        .await;
    assert_eq!(periodic.entry.ttl, 1800);
    let (e, _) = f
        .store
        .renew(&f.barrier, &periodic.entry.hash, 99_999)
        .await
        .expect("renew");
    assert_eq!(e.lease_ttl, 1800, "periodic tokens renew to their period");
}

#[tokio::test]
async fn issue_makes_orphan_login_tokens() {
    let f = fixture().await;
    let mut req = IssueRequest::new("auth/kubernetes/login", "kubernetes-default-app");
    req.policies = vec!["App".into()];
    req.ttl = 600;
    req.max_ttl = 900;
    req.meta.insert("service_account_name".into(), "app".into());
    let issued = f.store.issue(&f.barrier, &req).await.expect("issue");
    let auth = issued.auth();
    assert_eq!(auth.policies, ["app", "default"]);
    assert_eq!(
        (auth.lease_duration, auth.renewable, auth.orphan),
        (600, true, true)
    );
    assert_eq!(auth.client_token, issued.token.as_str());
    let e = f
        .store
        .lookup(&f.barrier, &issued.token)
        .await
        .expect("lookup")
        .expect("valid");
    assert_eq!(
        (e.path.as_str(), e.display_name.as_str()),
        ("auth/kubernetes/login", "kubernetes-default-app")
    );
    let (e, _) = f
        .store
        .renew(&f.barrier, &e.hash, 3600)
        .await
        .expect("renew");
    assert!(e.lease_ttl <= 900, "the method's max_ttl caps renewals");
    req.policies = vec!["root".into()];
    let err = f.store.issue(&f.barrier, &req).await.expect_err("root");
    assert_eq!(err.to_string(), "auth methods cannot create root tokens");
    assert!(
        !format!("{issued:?}{auth:?}").contains(issued.token.as_str()),
        "Debug hides tokens"
    );
}

#[tokio::test]
async fn nesting_is_bounded() {
    let f = fixture().await;
    let mut parent = f.root.clone();
    for _ in 0..MAX_DEPTH {
        parent = f.child(&parent, json!({})).await.entry;
    }
    let err = f
        .store
        .create(&f.barrier, &parent, &create_req(json!({})), &sudo(false))
        .await
        .expect_err("too deep");
    assert!(err.to_string().contains("create-orphan"), "{err}");
    // Revoking the top of a deep chain still revokes all of it.
    let first = f
        .store
        .lookup_accessor(&f.barrier, &parent.accessor)
        .await
        .expect("lookup");
    assert!(first.is_some());
    let top = f
        .all_keys()
        .await
        .into_iter()
        .filter_map(|k| {
            k.strip_prefix(&format!("{PARENT_PREFIX}{}/", f.root.hash))
                .map(str::to_owned)
        })
        .next()
        .expect("top child");
    assert_eq!(
        f.store.revoke_tree(&f.barrier, &top).await.expect("revoke"),
        MAX_DEPTH
    );
    assert_eq!(
        f.store
            .lookup_accessor(&f.barrier, &parent.accessor)
            .await
            .expect("lookup"),
        None
    );
}
