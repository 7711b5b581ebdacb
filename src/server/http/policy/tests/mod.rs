//! Router tests of the policy endpoints with `oneshot`: no socket, shamir seal, in-memory storage.

mod access;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::server::http::tests::TestServer;

/// A test server and its root token.
pub(super) struct Server {
    pub(super) server: TestServer,
    root: String,
}

impl Server {
    /// An initialized, unsealed server and its root token.
    pub(super) async fn new() -> Self {
        let (server, root) = TestServer::unsealed().await;
        Self { server, root }
    }

    pub(super) async fn root_call(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        self.server.call(method, uri, Some(&self.root), body).await
    }

    pub(super) async fn put_policy(&self, name: &str, text: &str) {
        let body = json!({ "policy": text }).to_string();
        let (st, v) = self
            .root_call("PUT", &format!("/v1/sys/policies/acl/{name}"), Some(&body))
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    }

    /// A token with exactly `policies`: through `auth/token/create` when that endpoint exists,
    /// else stored the way the token store stores entries (salted hash under `ID_PREFIX`).
    pub(super) async fn token(&self, policies: &[&str]) -> String {
        // Vault drops "default" from a no_default_policy token even when it is listed.
        let no_default = !policies.contains(&"default");
        let body = json!({ "policies": policies, "no_default_policy": no_default }).to_string();
        let (st, v) = self
            .root_call("POST", "/v1/auth/token/create", Some(&body))
            .await;
        if st == StatusCode::OK {
            return v["auth"]["client_token"]
                .as_str()
                .expect("client_token")
                .to_owned();
        }
        let unsealed = self.server.core.unsealed().await.expect("unsealed");
        let token = format!("hvs.policytest{}", uuid::Uuid::new_v4().simple());
        let hash = unsealed.tokens.hash(&token);
        let entry = json!({
            "hash": hash,
            "accessor": uuid::Uuid::new_v4().simple().to_string(),
            "policies": policies,
            "display_name": "token-policy-test",
            "creation_time": crate::server::unix_now(),
            "ttl": 0,
        });
        unsealed
            .barrier
            .put(
                &format!("{}{hash}", crate::server::token::ID_PREFIX),
                entry.to_string().as_bytes(),
            )
            .await
            .expect("store token");
        token
    }
}

pub(super) const APP_POLICY: &str = r#"
# apps read their own secrets
path "secret/data/app/*" {
  capabilities = ["read", "list"]
}
path "sys/policies/acl/app-*" {
  capabilities = ["read"]
}
"#;

#[tokio::test]
async fn acl_crud_list_and_envelope() {
    let s = Server::new().await;
    s.put_policy("app", APP_POLICY).await;

    let (st, v) = s.root_call("GET", "/v1/sys/policies/acl/app", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["data"], json!({"name": "app", "policy": APP_POLICY}));
    for field in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "warnings",
        "auth",
    ] {
        assert!(v.get(field).is_some(), "envelope field {field}: {v}");
    }

    let (st, v) = s.root_call("LIST", "/v1/sys/policies/acl", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["data"]["keys"], json!(["app", "default", "root"]));
    let (_, v2) = s
        .root_call("GET", "/v1/sys/policies/acl?list=true", None)
        .await;
    assert_eq!(v2["data"]["keys"], v["data"]["keys"]);
    let (st, _) = s.root_call("GET", "/v1/sys/policies/acl", None).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);

    // The default policy exists and reads back; root reads as empty text.
    let (st, v) = s
        .root_call("GET", "/v1/sys/policies/acl/default", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["data"]["policy"]
            .as_str()
            .expect("text")
            .contains("auth/token/lookup-self")
    );
    let (_, v) = s.root_call("GET", "/v1/sys/policies/acl/root", None).await;
    assert_eq!(v["data"], json!({"name": "root", "policy": ""}));

    // Upper-case names are lower-cased with a warning; base64 text is decoded.
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "path \"x\" { capabilities = [\"read\"] }",
    );
    let (st, v) = s
        .root_call(
            "POST",
            "/v1/sys/policies/acl/Ops",
            Some(&json!({ "policy": b64 }).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["warnings"], json!(["policy name was converted to ops"]));
    let (_, v) = s.root_call("GET", "/v1/sys/policies/acl/OPS", None).await;
    assert_eq!(
        v["data"]["policy"],
        "path \"x\" { capabilities = [\"read\"] }"
    );

    let (st, _) = s
        .root_call("DELETE", "/v1/sys/policies/acl/ops", None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.root_call("GET", "/v1/sys/policies/acl/ops", None).await;
    assert_eq!((st, v), (StatusCode::NOT_FOUND, json!({"errors": []})));
}

#[tokio::test]
async fn bad_input_is_400_and_stores_nothing() {
    let s = Server::new().await;
    let cases = [
        (
            json!({"policy": "path \"secret/*\" {\n  capabilities = [\"raed\"]\n}"}),
            "failed to parse policy: line 2, column 3: unknown capability \"raed\"; use one of create, read, update, patch, delete, list, sudo, deny, subscribe, recover",
        ),
        (
            json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] "}),
            "failed to parse policy: line 1, column 43: missing '}' before the end of the file",
        ),
        (
            json!({"policy": ""}),
            "'policy' parameter not supplied or empty",
        ),
        (
            json!({"rules": "path \"a\" {}"}),
            "'policy' parameter not supplied or empty",
        ),
    ];
    for (body, message) in cases {
        let (st, v) = s
            .root_call("PUT", "/v1/sys/policies/acl/bad", Some(&body.to_string()))
            .await;
        assert_eq!(
            (st, v),
            (StatusCode::BAD_REQUEST, json!({ "errors": [message] })),
            "{body}"
        );
    }
    let (st, v) = s
        .root_call("PUT", "/v1/sys/policies/acl/bad", Some("{\"policy\": 5}"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["errors"][0]
            .as_str()
            .expect("msg")
            .starts_with("failed to parse JSON input")
    );
    let (st, v) = s
        .root_call(
            "PUT",
            "/v1/sys/policies/acl/bad%20name",
            Some("{\"policy\": \"path \\\"a\\\" {}\"}"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .expect("msg")
            .starts_with("invalid policy name"),
        "{v}"
    );
    let (st, _) = s.root_call("GET", "/v1/sys/policies/acl/bad", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Built-ins: root cannot change, default cannot go.
    let body = json!({"policy": "path \"a\" { capabilities = [\"read\"] }"}).to_string();
    let (st, v) = s
        .root_call("PUT", "/v1/sys/policies/acl/root", Some(&body))
        .await;
    assert_eq!(
        (st, v),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["cannot update \"root\" policy"]})
        )
    );
    let (st, v) = s
        .root_call("DELETE", "/v1/sys/policies/acl/root", None)
        .await;
    assert_eq!(
        (st, v),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["cannot delete \"root\" policy"]})
        )
    );
    let (st, v) = s.root_call("DELETE", "/v1/sys/policy/default", None).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["cannot delete default policy"]})
        )
    );
    let (st, _) = s
        .root_call("PUT", "/v1/sys/policies/acl/default", Some(&body))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn legacy_sys_policy_routes() {
    let s = Server::new().await;
    let (st, _) = s
        .root_call(
            "PUT",
            "/v1/sys/policy/app",
            Some(&json!({ "policy": APP_POLICY }).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s
        .root_call(
            "PUT",
            "/v1/sys/policy/old",
            Some(&json!({ "rules": "path \"a\" { policy = \"read\" }" }).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["warnings"],
        json!(["'rules' is deprecated, please use 'policy' instead"])
    );

    let (st, v) = s.root_call("GET", "/v1/sys/policy", None).await;
    assert_eq!(st, StatusCode::OK);
    let names = json!(["app", "default", "old", "root"]);
    assert_eq!((&v["policies"], &v["keys"]), (&names, &names));
    assert_eq!(v["data"]["policies"], names);
    let (_, v) = s.root_call("LIST", "/v1/sys/policy", None).await;
    assert_eq!(v["keys"], names);

    let (st, v) = s.root_call("GET", "/v1/sys/policy/app", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (&v["name"], &v["rules"]),
        (&json!("app"), &json!(APP_POLICY))
    );
    assert_eq!(v["data"], json!({"name": "app", "rules": APP_POLICY}));
    let (st, _) = s.root_call("DELETE", "/v1/sys/policy/app", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.root_call("GET", "/v1/sys/policy/app", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
