//! Router tests for `/v1/auth/token/*` with `oneshot`: status codes, Vault's response shapes
//! and error messages. Shamir seal, in-memory storage, the root token from init. This file
//! holds the harness.

mod create;
mod lifecycle;

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

pub(super) struct T {
    pub(super) app: axum::Router,
    pub(super) physical: Arc<dyn Physical>,
    pub(super) root: String,
}

pub(super) async fn call_app(
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
pub(super) async fn server() -> T {
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
    pub(super) async fn call(
        &self,
        method: &str,
        op: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let body = (!body.is_null()).then_some(body);
        let uri = format!("/v1/auth/token/{op}");
        call_app(&self.app, method, &uri, Some(token), body).await
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
