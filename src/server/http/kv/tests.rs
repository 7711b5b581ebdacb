//! Router tests for mounted KV v2 engines with `oneshot`: the harness, routing, ACL and bad
//! input. Shamir seal, in-memory storage, the root token from init.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::server::http::tests::MAX_BODY;
use crate::server::http::tests::TestServer;

/// A test server and its root token.
pub(crate) struct Srv {
    pub(crate) server: TestServer,
    pub(crate) root: String,
}

/// An initialized, unsealed server and its root token.
pub(crate) async fn srv() -> Srv {
    let (server, root) = TestServer::unsealed().await;
    Srv { server, root }
}

impl Srv {
    /// A request with the root token and an optional JSON body.
    pub(crate) async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        self.server
            .call(method, uri, Some(&self.root), body.as_deref())
            .await
    }

    /// A request with the root token, a raw body and extra headers.
    pub(crate) async fn send_raw(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.server
            .call_with_headers(method, uri, Some(&self.root), body, headers)
            .await
    }

    /// Keys stored under `logical/` (every engine's data).
    pub(crate) async fn logical_keys(&self) -> Vec<String> {
        self.server.stored_keys("logical/").await
    }
}

pub(crate) fn error(v: &Value) -> String {
    v["errors"][0].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn routing_unknown_mounts_sealed_and_unauthenticated() {
    let s = srv().await;
    let (st, v) = s.call("GET", "/v1/nomount/data/x", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        error(&v),
        "no handler for route \"nomount/data/x\". route entry not found."
    );
    // Unknown sys/ paths keep the router's fallback.
    let (st, v) = s.call("GET", "/v1/sys/nothing-here", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(error(&v).starts_with("no handler for route"), "{v}");
    // No token: 403 before anything is looked up, as Vault.
    let (st, v) = s.server.call("GET", "/v1/secret/data/x", None, None).await;
    assert_eq!(
        (st, error(&v)),
        (StatusCode::FORBIDDEN, "permission denied".into())
    );
    let (st, _) = s
        .server
        .call("GET", "/v1/nomount/x", Some("hvs.bogus"), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Sealed: 503 for engines, as for every non-sys path.
    let (st, _) = s.call("PUT", "/v1/sys/seal", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.call("GET", "/v1/secret/data/x", None).await;
    assert_eq!(
        (st, error(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed".into())
    );
}

#[tokio::test]
async fn path_traversal_and_encoded_slashes_are_refused() {
    let s = srv().await;
    let body = json!({"data": {"a": "b"}});
    for (uri, rule) in [
        ("/v1/secret/data/a/../b", "'.' and '..'"),
        ("/v1/secret/data/..", "'.' and '..'"),
        ("/v1/secret/data/%2E%2E/x", "'.' and '..'"),
        ("/v1/secret/data/./x", "'.' and '..'"),
        ("/v1/secret/data/a%2Fb", "encoded slashes (%2F)"),
        ("/v1/secret/data/a%2fb", "encoded slashes (%2F)"),
        ("/v1/secret/data//x", "segments must not be empty"),
        ("/v1/secret//data/x", "segments must not be empty"),
        ("/v1/secret/data/a%00b", "control characters (NUL included)"),
        ("/v1/secret/data/a%0Ab", "control characters (NUL included)"),
        ("/v1/secret/data/a%zz", "invalid percent-encoding"),
        ("/v1/secret/data/%C3%28", "not valid UTF-8"),
    ] {
        for method in ["POST", "GET", "DELETE"] {
            let (st, v) = s.call(method, uri, Some(body.clone())).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{method} {uri}: {v}");
            assert!(error(&v).contains(rule), "{method} {uri}: {v}");
        }
    }
    // A trailing slash is a folder: only LIST takes one.
    let (st, v) = s
        .call("POST", "/v1/secret/data/x/", Some(body.clone()))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(error(&v).contains("segments must not be empty"), "{v}");
    assert!(s.logical_keys().await.is_empty(), "nothing stored");
    // Percent-encoded characters other than '/' are fine and decoded.
    let (st, _) = s.call("POST", "/v1/secret/data/a%20b", Some(body)).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.call("LIST", "/v1/secret/metadata", None).await;
    assert_eq!(
        (st, v["data"]["keys"].clone()),
        (StatusCode::OK, json!(["a b"]))
    );
}

#[tokio::test]
async fn bad_bodies_are_refused_and_nothing_is_stored() {
    let s = srv().await;
    let uri = "/v1/secret/data/app/x";
    let cases: [(&str, &str); 8] = [
        ("{\"data\": {\"a\": ", "failed to parse JSON input"),
        ("not json", "failed to parse JSON input"),
        ("[1, 2]", "request body must be a JSON object, got an array"),
        (
            "{\"data\": \"secret\"}",
            "data must be a JSON object of key/value pairs, got a string",
        ),
        (
            "{\"data\": [1]}",
            "data must be a JSON object of key/value pairs, got an array",
        ),
        ("{}", "no data provided"),
        ("{\"data\": null}", "no data provided"),
        (
            "{\"data\": {}, \"options\": {\"cas\": \"x\"}}",
            "error parsing check-and-set parameter",
        ),
    ];
    for (body, msg) in cases {
        let (st, v) = s.send_raw("POST", uri, Some(body), &[]).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(error(&v).starts_with(msg), "{body}: {v}");
    }
    let (st, v) = s.send_raw("POST", uri, None, &[]).await;
    assert_eq!(
        (st, error(&v)),
        (StatusCode::BAD_REQUEST, "no data provided".to_owned())
    );
    // Oversized: 413 from the body limit.
    let big = json!({"data": {"blob": "x".repeat(MAX_BODY)}}).to_string();
    let (st, v) = s.send_raw("POST", uri, Some(&big), &[]).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(error(&v).contains("max_request_size"), "{v}");
    assert!(s.logical_keys().await.is_empty(), "nothing stored");
    // Just under the limit is accepted.
    let fits = json!({"data": {"blob": "x".repeat(MAX_BODY - 100)}}).to_string();
    let (st, _) = s.send_raw("POST", uri, Some(&fits), &[]).await;
    assert_eq!(st, StatusCode::OK);
}

/// Writes a policy and returns a token that has only it.
pub(crate) async fn token_with_policy(s: &Srv, name: &str, hcl: &str) -> String {
    let (st, v) = s
        .call(
            "PUT",
            &format!("/v1/sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .await;
    assert!(st.is_success(), "policy write: {st} {v}");
    let (st, v) = s
        .call(
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": [name], "no_default_policy": true})),
        )
        .await;
    assert!(st.is_success(), "token create: {st} {v}");
    v["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

async fn put(s: &Srv, token: &str, key: &str) -> StatusCode {
    let body = json!({"data": {"a": "1"}}).to_string();
    let uri = format!("/v1/secret/data/{key}");
    s.server
        .call("POST", &uri, Some(token), Some(&body))
        .await
        .0
}

#[tokio::test]
async fn writes_need_create_for_new_keys_and_update_for_existing_ones() {
    let s = srv().await;
    let creator = token_with_policy(
        &s,
        "creator",
        "path \"secret/data/*\" { capabilities = [\"create\", \"read\"] }",
    )
    .await;
    let updater = token_with_policy(
        &s,
        "updater",
        "path \"secret/data/*\" { capabilities = [\"update\"] }\npath \"secret/metadata/*\" { capabilities = [\"list\"] }",
    )
    .await;
    assert_eq!(put(&s, &updater, "new").await, StatusCode::FORBIDDEN);
    assert_eq!(put(&s, &creator, "new").await, StatusCode::OK);
    assert_eq!(put(&s, &creator, "new").await, StatusCode::FORBIDDEN);
    assert_eq!(put(&s, &updater, "new").await, StatusCode::OK);
    let (st, _) = s
        .server
        .call("GET", "/v1/secret/data/new", Some(&updater), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s
        .server
        .call("GET", "/v1/secret/data/new", Some(&creator), None)
        .await;
    assert_eq!(
        (st, v["data"]["metadata"]["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    // LIST needs list on the folder; the creator has none.
    let (st, _) = s
        .server
        .call("LIST", "/v1/secret/metadata/", Some(&updater), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .server
        .call("LIST", "/v1/secret/metadata/", Some(&creator), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // A refused request to an unknown mount is 403 too, not 404.
    let (st, _) = s
        .server
        .call("GET", "/v1/nomount/x", Some(&creator), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}
