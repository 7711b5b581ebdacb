//! Router tests for `/v1/auth/token/*` with `oneshot`: status codes, Vault's response shapes
//! and error messages. Shamir seal, in-memory storage, the root token from init. This file
//! holds the harness.

mod create;
mod lifecycle;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::server::http::tests::TestServer;

/// A test server and its root token.
pub(super) struct T {
    pub(super) server: TestServer,
    pub(super) root: String,
}

/// An initialized, unsealed server and its root token.
pub(super) async fn server() -> T {
    let (server, root) = TestServer::unsealed().await;
    T { server, root }
}

impl T {
    /// `op` under `/v1/auth/token/` as `token`; a `Null` body is no body.
    pub(super) async fn call(
        &self,
        method: &str,
        op: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let body = (!body.is_null()).then(|| body.to_string());
        let uri = format!("/v1/auth/token/{op}");
        self.server
            .call(method, &uri, Some(token), body.as_deref())
            .await
    }

    pub(super) async fn post(&self, op: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", op, token, body).await
    }

    /// Creates a token as `parent`; returns (token, auth block).
    pub(super) async fn create(&self, parent: &str, body: Value) -> (String, Value) {
        let (st, v) = self.post("create", parent, body).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let auth = v["auth"].clone();
        (
            auth["client_token"].as_str().expect("token").to_owned(),
            auth,
        )
    }

    pub(super) async fn lookup(&self, token: &str) -> (StatusCode, Value) {
        self.post("lookup", &self.root, json!({"token": token}))
            .await
    }
}

pub(super) fn errors(v: &Value) -> String {
    v["errors"][0].as_str().unwrap_or_default().to_owned()
}
