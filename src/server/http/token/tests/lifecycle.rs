//! Router tests: renew, revoke (tree, self, accessor, orphan), use counting, routing and
//! storage at rest.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{errors, server};

#[tokio::test]
async fn renew_renew_self_and_renew_accessor() {
    let t = server().await;
    let (child, auth) = t.create(&t.root, json!({"ttl": "10m"})).await;
    let (st, v) = t
        .post(
            "renew",
            &t.root,
            json!({"token": child, "increment": "30m"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["auth"]["lease_duration"].clone(),
            v["auth"]["client_token"].clone()
        ),
        (json!(1800), json!(child))
    );
    assert_eq!(v["auth"]["renewable"], true);
    let (_, v) = t.lookup(&child).await;
    assert!(v["data"]["ttl"].as_u64().is_some_and(|s| s > 1700), "{v}");
    assert!(v["data"]["last_renewal_time"].as_u64().is_some());

    let (st, v) = t
        .post("renew-self", &child, json!({"increment": 120}))
        .await;
    assert_eq!(
        (st, v["auth"]["lease_duration"].clone()),
        (StatusCode::OK, json!(120))
    );
    let (st, v) = t
        .post(
            "renew-accessor",
            &t.root,
            json!({"accessor": auth["accessor"], "increment": "1h"}),
        )
        .await;
    assert_eq!(
        (
            st,
            v["auth"]["client_token"].clone(),
            v["auth"]["lease_duration"].clone()
        ),
        (StatusCode::OK, json!(""), json!(3600))
    );

    let (fixed, _) = t
        .create(&t.root, json!({"ttl": "10m", "renewable": false}))
        .await;
    let (st, v) = t.post("renew", &t.root, json!({"token": fixed})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(errors(&v).starts_with("lease is not renewable"), "{v}");
    let (st, v) = t.post("renew-self", &t.root, json!({})).await;
    assert!(
        st == StatusCode::BAD_REQUEST && errors(&v).starts_with("lease is not renewable"),
        "{v}"
    );
    let (st, v) = t.post("renew", &t.root, json!({"token": "hvs.nope"})).await;
    assert_eq!(
        (st, errors(&v)),
        (StatusCode::BAD_REQUEST, "token not found".to_owned())
    );
    let (st, v) = t.post("renew", &t.root, json!({})).await;
    assert!(
        st == StatusCode::BAD_REQUEST && errors(&v).starts_with("missing token ID"),
        "{v}"
    );
    let (st, v) = t
        .post(
            "renew",
            &t.root,
            json!({"token": child, "increment": "later"}),
        )
        .await;
    assert!(
        st == StatusCode::BAD_REQUEST && errors(&v).starts_with("increment: "),
        "{v}"
    );
}

#[tokio::test]
async fn revoke_variants_and_child_revocation() {
    let t = server().await;
    let (parent, _) = t.create(&t.root, json!({})).await;
    let (child, _) = t.create(&parent, json!({})).await;
    let (grandchild, _) = t.create(&child, json!({})).await;
    let (orphan, _) = t.create(&parent, json!({"no_parent": true})).await;
    let (st, v) = t.post("revoke", &t.root, json!({"token": parent})).await;
    assert_eq!((st, v), (StatusCode::NO_CONTENT, Value::Null));
    for gone in [&parent, &child, &grandchild] {
        assert_eq!(t.lookup(gone).await.0, StatusCode::FORBIDDEN);
        let (st, v) = t.call("GET", "lookup-self", gone, Value::Null).await;
        assert_eq!(
            (st, v),
            (
                StatusCode::FORBIDDEN,
                json!({"errors": ["permission denied"]})
            )
        );
    }
    assert_eq!(t.lookup(&orphan).await.0, StatusCode::OK, "orphans survive");
    // Unknown tokens: 204 like Vault; a missing field is a 400.
    assert_eq!(
        t.post("revoke", &t.root, json!({"token": "hvs.gone"}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (st, v) = t.post("revoke", &t.root, json!({})).await;
    assert!(
        st == StatusCode::BAD_REQUEST && errors(&v).starts_with("missing token ID"),
        "{v}"
    );

    let (st, _) = t.post("revoke-self", &orphan, Value::Null).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(t.lookup(&orphan).await.0, StatusCode::FORBIDDEN);

    let (by_accessor, auth) = t.create(&t.root, json!({})).await;
    let (st, _) = t
        .post(
            "revoke-accessor",
            &t.root,
            json!({"accessor": auth["accessor"]}),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(t.lookup(&by_accessor).await.0, StatusCode::FORBIDDEN);
    let (st, v) = t
        .post(
            "revoke-accessor",
            &t.root,
            json!({"accessor": auth["accessor"]}),
        )
        .await;
    assert_eq!(
        (st, v["warnings"].clone()),
        (StatusCode::OK, json!(["No token found with this accessor"]))
    );

    // revoke-orphan: the children live on as orphans.
    let (p, _) = t.create(&t.root, json!({})).await;
    let (c, _) = t.create(&p, json!({})).await;
    assert_eq!(
        t.post("revoke-orphan", &t.root, json!({"token": p}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.lookup(&p).await.0, StatusCode::FORBIDDEN);
    let (st, v) = t.lookup(&c).await;
    assert_eq!(
        (st, v["data"]["orphan"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (st, v) = t.post("revoke-orphan", &t.root, json!({"token": p})).await;
    assert_eq!(
        (st, errors(&v)),
        (
            StatusCode::BAD_REQUEST,
            "token to revoke not found".to_owned()
        )
    );
    // The root token itself is still fine.
    assert_eq!(
        t.call("GET", "lookup-self", &t.root, Value::Null).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn num_uses_are_counted_per_request() {
    let t = server().await;
    let (limited, _) = t.create(&t.root, json!({"num_uses": 2})).await;
    let (st, v) = t.call("GET", "lookup-self", &limited, Value::Null).await;
    assert_eq!(
        (st, v["data"]["num_uses"].clone()),
        (StatusCode::OK, json!(1))
    );
    let (st, v) = t.call("GET", "lookup-self", &limited, Value::Null).await;
    assert_eq!(
        (st, v["data"]["num_uses"].clone()),
        (StatusCode::OK, json!(-1)),
        "final use succeeds"
    );
    let (st, _) = t.call("GET", "lookup-self", &limited, Value::Null).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn routing_methods_auth_and_sealed() {
    let t = server().await;
    let (st, v) = t.call("GET", "create", &t.root, Value::Null).await;
    assert_eq!(
        (st, errors(&v)),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "unsupported operation".to_owned()
        )
    );
    let (st, v) = t.post("frobnicate", &t.root, json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(errors(&v).contains("auth/token/frobnicate"), "{v}");
    let (st, _) = t
        .server
        .call("POST", "/v1/auth/token/create", None, Some("{}"))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = t
        .post("create", "hvs.wrongwrongwrongwrongwron", json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = t
        .server
        .call("PUT", "/v1/sys/seal", Some(&t.root), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = t.call("GET", "lookup-self", &t.root, Value::Null).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": ["Vault is sealed"]})
        )
    );
}

#[tokio::test]
async fn no_token_reaches_physical_storage() {
    let t = server().await;
    let (child, _) = t.create(&t.root, json!({"meta": {"note": "x"}})).await;
    let (grandchild, _) = t.create(&child, json!({})).await;
    let mut scanned = 0;
    for full in t.server.stored_keys("").await {
        let raw = t
            .server
            .physical
            .get(&full)
            .await
            .expect("get")
            .expect("value");
        for token in [&t.root, &child, &grandchild] {
            let secret = &token.as_bytes()[4..];
            assert!(!full.as_bytes().windows(secret.len()).any(|w| w == secret));
            assert!(!raw.windows(secret.len()).any(|w| w == secret), "{full}");
        }
        scanned += 1;
    }
    assert!(scanned >= 10, "scanned {scanned} entries");
}

#[tokio::test]
async fn tidy_starts_in_the_background() {
    let t = server().await;
    let (st, v) = t.post("tidy", &t.root, Value::Null).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert!(
        v["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("Tidy operation successfully started")),
        "{v}"
    );
    assert_eq!(
        t.call("GET", "tidy", &t.root, Value::Null).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}
