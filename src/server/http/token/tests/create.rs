//! Router tests: create and create-orphan (auth block, bad input) and the lookups.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{errors, server};

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
    // Like Vault: unknown policies are a warning, not an error ("default" always exists).
    assert_eq!(
        (
            v["data"].clone(),
            v["warnings"].clone(),
            v["lease_id"].clone()
        ),
        (
            Value::Null,
            json!([
                "Policy \"db\" does not exist",
                "Policy \"web\" does not exist"
            ]),
            json!("")
        )
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
    let (st, _) = t
        .server
        .call(
            "POST",
            "/v1/auth/token/create",
            Some(&t.root),
            Some("{not json"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

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
    let ids = t.server.physical.list("sys/token/id/").await.expect("list");
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
    let (st, v) = t.server.call("GET", &uri, Some(&t.root), None).await;
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
