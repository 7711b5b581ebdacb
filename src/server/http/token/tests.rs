//! Router tests for `/v1/auth/token/*` with `oneshot`: status codes, Vault's response shapes
//! and error messages. Shamir seal, in-memory storage, the root token from init.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::server::core::{Core, SealBackend};
use crate::server::http::{AppState, router};
use crate::server::physical::{InmemBackend, Physical};
use crate::telemetry::ServerMetrics;

struct T {
    app: axum::Router,
    physical: Arc<dyn Physical>,
    root: String,
}

async fn call_app(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let resp = app
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

/// An initialized, unsealed server and its root token.
async fn server() -> T {
    let physical: Arc<dyn Physical> = Arc::new(InmemBackend::new());
    let core = Core::new(
        Arc::clone(&physical),
        SealBackend::Shamir,
        ServerMetrics::new(),
        None,
    )
    .await
    .expect("core");
    let app = router(AppState {
        core,
        max_body: 64 * 1024,
    });
    let init = json!({"secret_shares": 1, "secret_threshold": 1});
    let (st, v) = call_app(&app, "PUT", "/v1/sys/init", None, Some(init)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let key = v["keys"][0].clone();
    let (st, _) = call_app(
        &app,
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(json!({"key": key})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let root = v["root_token"].as_str().expect("root").to_owned();
    T {
        app,
        physical,
        root,
    }
}

impl T {
    async fn call(&self, method: &str, op: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let body = (!body.is_null()).then_some(body);
        let uri = format!("/v1/auth/token/{op}");
        call_app(&self.app, method, &uri, Some(token), body).await
    }

    async fn post(&self, op: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", op, token, body).await
    }

    /// Creates a token as `parent`; returns (token, auth block).
    async fn create(&self, parent: &str, body: Value) -> (String, Value) {
        let (st, v) = self.post("create", parent, body).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let auth = v["auth"].clone();
        (
            auth["client_token"].as_str().expect("token").to_owned(),
            auth,
        )
    }

    async fn lookup(&self, token: &str) -> (StatusCode, Value) {
        self.post("lookup", &self.root, json!({"token": token}))
            .await
    }
}

fn errors(v: &Value) -> String {
    v["errors"][0].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn create_returns_vaults_auth_block() {
    let t = server().await;
    let (st, v) = t
        .post(
            "create",
            &t.root,
            json!({"policies": ["web", "db"], "ttl": "1h", "meta": {"team": "a"},
                   "display_name": "ci job", "num_uses": 0}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["data"].clone(),
            v["warnings"].clone(),
            v["lease_id"].clone()
        ),
        (Value::Null, Value::Null, json!(""))
    );
    assert_eq!(v["mount_type"], "token");
    let auth = &v["auth"];
    let token = auth["client_token"].as_str().expect("token");
    assert!(token.starts_with("hvs.") && token.len() == 28, "{token}");
    assert_eq!(auth["accessor"].as_str().map(str::len), Some(24));
    assert_eq!(auth["policies"], json!(["db", "default", "web"]));
    assert_eq!(auth["token_policies"], auth["policies"]);
    assert_eq!(auth["metadata"], json!({"team": "a"}));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["entity_id"], "");
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["orphan"], false);
    assert_eq!(auth["num_uses"], 0);

    // A root child without ttl inherits root and never expires; metadata is null when empty.
    let (_, auth) = t.create(&t.root, json!({})).await;
    assert_eq!(
        (
            auth["policies"].clone(),
            auth["lease_duration"].clone(),
            auth["renewable"].clone()
        ),
        (json!(["root"]), json!(0), json!(false))
    );
    assert_eq!(auth["metadata"], Value::Null);
    // Over the system max: capped with a warning.
    let (st, v) = t
        .post(
            "create",
            &t.root,
            json!({"policies": ["web"], "ttl": "10000h"}),
        )
        .await;
    assert_eq!(
        (st, v["auth"]["lease_duration"].clone()),
        (StatusCode::OK, json!(768 * 3600))
    );
    assert!(
        v["warnings"][0]
            .as_str()
            .expect("warning")
            .contains("capped"),
        "{v}"
    );

    let (st, v) = t
        .post("create-orphan", &t.root, json!({"policies": ["web"]}))
        .await;
    assert_eq!(
        (st, v["auth"]["orphan"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (_, auth) = t
        .create(&t.root, json!({"no_parent": true, "policies": ["web"]}))
        .await;
    assert_eq!(auth["orphan"], true);
}

#[tokio::test]
async fn create_refuses_bad_input_with_the_field_named() {
    let t = server().await;
    let cases = [
        (
            json!({"ttl": "soon"}),
            "ttl: \"soon\" is not a valid duration",
        ),
        (
            json!({"explicit_max_ttl": -3}),
            "explicit_max_ttl must be positive",
        ),
        (json!({"num_uses": -1}), "number of uses cannot be negative"),
        (
            json!({"policies": {"a": 1}}),
            "policies: expected a list of strings",
        ),
        (
            json!({"meta": {"k": [1]}}),
            "meta: the value of \"k\" must be a string",
        ),
        (
            json!({"renewable": "perhaps"}),
            "renewable: \"perhaps\" is not a boolean",
        ),
        (
            json!({"type": "batch"}),
            "type: batch tokens are not supported",
        ),
        (
            json!({"id": "hvs.mine"}),
            "id: custom token IDs are not supported",
        ),
    ];
    for (body, expected) in cases {
        let (st, v) = t.post("create", &t.root, body.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(errors(&v).starts_with(expected), "{body}: {v}");
    }
    let req = Request::builder()
        .method("POST")
        .uri("/v1/auth/token/create")
        .header("X-Vault-Token", &t.root)
        .body(Body::from("{not json"))
        .expect("request");
    let resp = t.app.clone().oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // A limited-use parent cannot create children.
    let (limited, _) = t.create(&t.root, json!({"num_uses": 5})).await;
    let (st, v) = t.post("create", &limited, json!({})).await;
    assert_eq!(
        (st, errors(&v)),
        (
            StatusCode::BAD_REQUEST,
            "restricted use token cannot generate child tokens".to_owned()
        )
    );
    // Nothing was stored for the refused requests: only root and the limited token exist.
    let ids = t.physical.list("sys/token/id/").await.expect("list");
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[tokio::test]
async fn lookup_self_lookup_and_lookup_accessor() {
    let t = server().await;
    let (st, v) = t.call("GET", "lookup-self", &t.root, Value::Null).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let d = &v["data"];
    assert_eq!(d["id"], t.root.as_str());
    assert_eq!(
        (
            d["policies"].clone(),
            d["path"].clone(),
            d["display_name"].clone()
        ),
        (json!(["root"]), json!("auth/token/root"), json!("root"))
    );
    assert_eq!(
        (
            d["orphan"].clone(),
            d["ttl"].clone(),
            d["expire_time"].clone()
        ),
        (json!(true), json!(0), Value::Null)
    );
    assert_eq!(
        (
            d["creation_ttl"].clone(),
            d["explicit_max_ttl"].clone(),
            d["num_uses"].clone()
        ),
        (json!(0), json!(0), json!(0))
    );
    assert_eq!(
        (
            d["type"].clone(),
            d["entity_id"].clone(),
            d["meta"].clone(),
            d["renewable"].clone()
        ),
        (json!("service"), json!(""), Value::Null, json!(false))
    );
    assert!(
        d["creation_time"].as_u64().is_some()
            && d["issue_time"].as_str().is_some_and(|s| s.ends_with('Z'))
    );
    let root_accessor = d["accessor"].as_str().expect("accessor").to_owned();

    let (child, auth) = t
        .create(
            &t.root,
            json!({"policies": ["web"], "ttl": "1h", "meta": {"a": "b"}}),
        )
        .await;
    let (st, v) = t.lookup(&child).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let d = &v["data"];
    assert_eq!(
        (d["id"].clone(), d["path"].clone(), d["orphan"].clone()),
        (json!(child), json!("auth/token/create"), json!(false))
    );
    assert_eq!(
        (
            d["creation_ttl"].clone(),
            d["renewable"].clone(),
            d["meta"].clone()
        ),
        (json!(3600), json!(true), json!({"a": "b"}))
    );
    assert!(
        d["ttl"]
            .as_u64()
            .is_some_and(|s| (3590..=3600).contains(&s)),
        "{d}"
    );
    assert!(d["expire_time"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert_eq!(d["policies"], json!(["default", "web"]));
    // GET with a query parameter, as Vault reads GET parameters.
    let uri = format!("/v1/auth/token/lookup?token={child}");
    let (st, v) = call_app(&t.app, "GET", &uri, Some(&t.root), None).await;
    assert_eq!(
        (st, v["data"]["accessor"].clone()),
        (StatusCode::OK, auth["accessor"].clone())
    );
    // Empty token: the caller's own.
    let (_, v) = t.post("lookup", &t.root, json!({})).await;
    assert_eq!(v["data"]["accessor"], root_accessor.as_str());

    let (st, v) = t.lookup("hvs.doesnotexist").await;
    assert_eq!(
        (st, v),
        (StatusCode::FORBIDDEN, json!({"errors": ["bad token"]}))
    );

    let (st, v) = t
        .post(
            "lookup-accessor",
            &t.root,
            json!({"accessor": auth["accessor"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["data"]["id"].clone(), v["data"]["display_name"].clone()),
        (json!(""), json!("token"))
    );
    let (st, v) = t
        .post("lookup-accessor", &t.root, json!({"accessor": "nope"}))
        .await;
    assert_eq!(
        (st, errors(&v)),
        (StatusCode::BAD_REQUEST, "invalid accessor".to_owned())
    );
    let (st, v) = t.post("lookup-accessor", &t.root, json!({})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(errors(&v).starts_with("missing accessor"), "{v}");
}

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
    let (st, _) = call_app(
        &t.app,
        "POST",
        "/v1/auth/token/create",
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = t
        .post("create", "hvs.wrongwrongwrongwrongwron", json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = call_app(&t.app, "PUT", "/v1/sys/seal", Some(&t.root), None).await;
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
    let mut dirs = vec![String::new()];
    let mut scanned = 0;
    while let Some(dir) = dirs.pop() {
        for k in t.physical.list(&dir).await.expect("list") {
            let full = format!("{dir}{k}");
            if full.ends_with('/') {
                dirs.push(full);
                continue;
            }
            let raw = t.physical.get(&full).await.expect("get").expect("value");
            for token in [&t.root, &child, &grandchild] {
                let secret = &token.as_bytes()[4..];
                assert!(!full.as_bytes().windows(secret.len()).any(|w| w == secret));
                assert!(!raw.windows(secret.len()).any(|w| w == secret), "{full}");
            }
            scanned += 1;
        }
    }
    assert!(scanned >= 10, "scanned {scanned} entries");
}
