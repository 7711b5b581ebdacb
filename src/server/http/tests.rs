//! Router tests with `oneshot`: no socket, shamir seal, in-memory storage.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, router};
use crate::server::core::{Core, SealBackend};
use crate::server::physical::{InmemBackend, Physical};
use crate::telemetry::ServerMetrics;

/// Largest request body of the test servers.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// The router over a fresh core (shamir seal, in-memory storage), called with `oneshot`. The
/// one harness of the HTTP router tests.
pub(crate) struct TestServer {
    pub(crate) app: axum::Router,
    pub(crate) core: Arc<Core>,
    pub(crate) physical: Arc<dyn Physical>,
}

impl TestServer {
    /// An uninitialized server.
    pub(crate) async fn new() -> Self {
        Self::over(Arc::new(InmemBackend::new())).await
    }

    /// An uninitialized server over `physical`.
    pub(crate) async fn over(physical: Arc<dyn Physical>) -> Self {
        let core = Core::new(
            Arc::clone(&physical),
            SealBackend::Shamir,
            ServerMetrics::new(),
            None,
        )
        .await
        .expect("core");
        let app = router(AppState {
            core: Arc::clone(&core),
            max_body: MAX_BODY,
            body_timeout: std::time::Duration::from_secs(30),
            unauthenticated_metrics: false,
            forwarder: Default::default(),
        });
        Self {
            app,
            core,
            physical,
        }
    }

    /// A server initialized with one key share and unsealed, and its root token.
    pub(crate) async fn unsealed() -> (Self, String) {
        Self::unsealed_over(Arc::new(InmemBackend::new())).await
    }

    /// [`TestServer::unsealed`] over `physical`.
    pub(crate) async fn unsealed_over(physical: Arc<dyn Physical>) -> (Self, String) {
        let s = Self::over(physical).await;
        let init = s.init(1, 1).await;
        let (st, v) = s.unseal(&key(&init, 0)).await;
        assert_eq!((st, v["sealed"].clone()), (StatusCode::OK, json!(false)));
        let root = init["root_token"].as_str().expect("root token").to_owned();
        (s, root)
    }

    /// One request: `token` as `X-Vault-Token`, `body` as sent. Returns the status and the
    /// body as JSON (`Null` when empty, a JSON string when it is not JSON).
    pub(crate) async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        self.call_with_headers(method, uri, token, body, &[]).await
    }

    /// [`TestServer::call`] with extra request headers.
    pub(crate) async fn call_with_headers(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("response");
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

    /// Every key in physical storage under `prefix`, folders walked.
    pub(crate) async fn stored_keys(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut folders = vec![prefix.to_owned()];
        while let Some(folder) = folders.pop() {
            for k in self.physical.list(&folder).await.expect("list") {
                let full = format!("{folder}{k}");
                if full.ends_with('/') {
                    folders.push(full);
                } else {
                    out.push(full);
                }
            }
        }
        out
    }

    async fn init(&self, shares: u32, threshold: u32) -> Value {
        let (st, v) = self
            .call(
                "PUT",
                "/v1/sys/init",
                None,
                Some(&json!({"secret_shares": shares, "secret_threshold": threshold}).to_string()),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    async fn unseal(&self, key: &str) -> (StatusCode, Value) {
        self.call(
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(&json!({ "key": key }).to_string()),
        )
        .await
    }
}

fn key(v: &Value, i: usize) -> String {
    v["keys"][i].as_str().expect("key").to_owned()
}

#[tokio::test]
async fn shamir_init_unseal_progress_wrong_share_and_reset() {
    let s = TestServer::new().await;
    let (st, v) = s.call("GET", "/v1/sys/init", None, None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"initialized": false})));
    let (st, v) = s.call("GET", "/v1/sys/health", None, None).await;
    assert_eq!(st.as_u16(), 501);
    assert_eq!(v["initialized"], false);

    let init = s.init(5, 3).await;
    assert_eq!(init["keys"].as_array().expect("keys").len(), 5);
    assert_eq!(init["keys_base64"].as_array().expect("keys").len(), 5);
    assert!(init.get("recovery_keys").is_none());
    assert!(
        init["root_token"]
            .as_str()
            .expect("token")
            .starts_with("hvs.")
    );

    let (st, v) = s
        .call(
            "POST",
            "/v1/sys/init",
            None,
            Some("{\"secret_shares\":1,\"secret_threshold\":1}"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v, json!({"errors": ["Vault is already initialized"]}));

    let (_, v) = s.call("GET", "/v1/sys/seal-status", None, None).await;
    assert_eq!(
        (
            v["type"].clone(),
            v["sealed"].clone(),
            v["t"].clone(),
            v["n"].clone()
        ),
        (json!("shamir"), json!(true), json!(3), json!(5))
    );
    assert!(
        v.get("cluster_id").is_none(),
        "cluster_id only when unsealed"
    );
    let (st, _) = s.call("GET", "/v1/sys/health", None, None).await;
    assert_eq!(st.as_u16(), 503);

    // Progress after each share; a wrong share makes the attempt fail with 400.
    let (_, v) = s.unseal(&key(&init, 0)).await;
    assert_eq!(v["progress"], 1);
    let nonce = v["nonce"].as_str().expect("nonce").to_owned();
    assert!(!nonce.is_empty());
    let (_, v) = s.unseal(&key(&init, 1)).await;
    assert_eq!(
        (v["progress"].clone(), v["nonce"].clone()),
        (json!(2), json!(nonce))
    );
    let mut wrong = hex::decode(key(&init, 2)).expect("hex");
    wrong[0] ^= 0xff;
    let (st, v) = s.unseal(&hex::encode(wrong)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v, json!({"errors": ["Unseal failed, invalid key"]}));
    let (_, v) = s.call("GET", "/v1/sys/seal-status", None, None).await;
    assert_eq!(
        (v["sealed"].clone(), v["progress"].clone()),
        (json!(true), json!(0))
    );

    // Reset discards progress.
    s.unseal(&key(&init, 0)).await;
    let (_, v) = s
        .call("PUT", "/v1/sys/unseal", None, Some("{\"reset\": true}"))
        .await;
    assert_eq!(v["progress"], 0);

    // Base64 shares work too; three good shares unseal.
    let b64 = |i: usize| init["keys_base64"][i].as_str().expect("b64").to_owned();
    s.unseal(&b64(4)).await;
    s.unseal(&key(&init, 2)).await;
    let (st, v) = s.unseal(&b64(0)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["sealed"], false, "{v}");
    assert!(v["cluster_id"].as_str().is_some_and(|c| !c.is_empty()));
    let (st, v) = s.call("GET", "/v1/sys/health", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["sealed"], false);
}

#[tokio::test]
async fn seal_needs_root_token_and_blocks_secrets() {
    let (s, root) = TestServer::unsealed().await;
    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/data/app/db",
            Some(&root),
            Some("{\"data\":{\"password\":\"hunter2\"}}"),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.call("PUT", "/v1/sys/seal", None, None).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::FORBIDDEN,
            json!({"errors": ["permission denied"]})
        )
    );
    let (st, _) = s
        .call("PUT", "/v1/sys/seal", Some("hvs.not-a-token"), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.call("PUT", "/v1/sys/seal", Some(&root), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s
        .call("GET", "/v1/secret/data/app/db", Some(&root), None)
        .await;
    assert_eq!(
        (st, v),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": ["Vault is sealed"]})
        )
    );
    let (st, _) = s.call("GET", "/v1/other/thing", None, None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    let (st, _) = s.call("GET", "/v1/sys/leader", None, None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn health_parameters_and_head() {
    let s = TestServer::new().await;
    let (st, _) = s
        .call(
            "GET",
            "/v1/sys/health?uninitcode=204&sealedcode=204",
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.call("HEAD", "/v1/sys/health", None, None).await;
    assert_eq!((st.as_u16(), v), (501, Value::Null));
    let (st, v) = s
        .call("GET", "/v1/sys/health?sealedcode=notanumber", None, None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["errors"][0].as_str().expect("msg").contains("sealedcode"));
    let (st, _) = s
        .call("GET", "/v1/sys/health?standbyok=maybe", None, None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    s.init(1, 1).await;
    let (st, _) = s
        .call(
            "GET",
            "/v1/sys/health?standbyok=true&sealedcode=299",
            None,
            None,
        )
        .await;
    assert_eq!(st.as_u16(), 299);
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let s = TestServer::new().await;
    let (st, v) = s.call("PUT", "/v1/sys/init", None, Some("{not json")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["errors"][0]
            .as_str()
            .expect("msg")
            .starts_with("failed to parse JSON input"),
        "{v}"
    );
    let (st, v) = s
        .call(
            "PUT",
            "/v1/sys/init",
            None,
            Some("{\"secret_shares\":\"five\"}"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["errors"][0]
            .as_str()
            .expect("msg")
            .contains("invalid type"),
        "{v}"
    );
    let huge = format!(
        "{{\"secret_shares\": 5, \"pad\": \"{}\"}}",
        "x".repeat(100 * 1024)
    );
    let (st, v) = s.call("PUT", "/v1/sys/init", None, Some(&huge)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        v["errors"][0]
            .as_str()
            .expect("msg")
            .contains("max_request_size"),
        "{v}"
    );
    let (st, v) = s
        .call(
            "PUT",
            "/v1/sys/init",
            None,
            Some("{\"secret_shares\":3,\"secret_threshold\":5}"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = s
        .call(
            "PUT",
            "/v1/sys/init",
            None,
            Some("{\"recovery_shares\":3,\"recovery_threshold\":2}"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["errors"][0]
            .as_str()
            .expect("msg")
            .contains("not applicable to seal type shamir"),
        "{v}"
    );
    // Nothing above initialized the server.
    let (_, v) = s.call("GET", "/v1/sys/init", None, None).await;
    assert_eq!(v["initialized"], false);
    let (st, v) = s
        .call("PUT", "/v1/sys/unseal", None, Some("{\"key\":\"%%%\"}"))
        .await;
    assert_eq!(
        (st, v["errors"][0].clone()),
        (StatusCode::BAD_REQUEST, json!("Vault is not initialized"))
    );
    s.init(5, 3).await;
    let (st, v) = s
        .call("PUT", "/v1/sys/unseal", None, Some("{\"key\":\"%%%\"}"))
        .await;
    assert_eq!(
        (st, v["errors"][0].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("'key' must be a valid hex or base64 string")
        )
    );
    let (st, _) = s
        .call("PUT", "/v1/sys/unseal", None, Some("{\"key\":\"abcd\"}"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s.call("DELETE", "/v1/sys/seal-status", None, None).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn tampered_storage_is_an_error_not_data() {
    let (s, root) = TestServer::unsealed().await;
    let (st, _) = s
        .call(
            "POST",
            "/v1/secret/data/t",
            Some(&root),
            Some("{\"data\":{\"a\":\"b\"}}"),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // The secret's metadata entry: `logical/<secret/ mount uuid>/metadata/t`.
    let mounts = s.physical.list("logical/").await.expect("list");
    let key = format!("logical/{}metadata/t", mounts[0]);
    let mut raw = s.physical.get(&key).await.expect("get").expect("stored");
    let last = raw.len() - 1;
    raw[last] ^= 1;
    s.physical.put(&key, raw).await.expect("put");
    let (st, v) = s.call("GET", "/v1/secret/data/t", Some(&root), None).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        v["errors"][0]
            .as_str()
            .expect("msg")
            .contains("integrity check failed"),
        "{v}"
    );
    s.physical.put(&key, vec![1, 2, 3]).await.expect("put");
    let (st, _) = s.call("GET", "/v1/secret/data/t", Some(&root), None).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn kv_list_verb_rotate_and_key_status() {
    let (s, root) = TestServer::unsealed().await;
    for p in ["app/a", "app/b"] {
        let (st, _) = s
            .call(
                "PUT",
                &format!("/v1/secret/data/{p}"),
                Some(&root),
                Some("{\"data\":{\"k\":\"v\"}}"),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, v) = s
        .call("LIST", "/v1/secret/metadata/app", Some(&root), None)
        .await;
    assert_eq!(
        (st, v["data"]["keys"].clone()),
        (StatusCode::OK, json!(["a", "b"]))
    );
    let (_, v2) = s
        .call(
            "GET",
            "/v1/secret/metadata/app?list=true",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(v2["data"]["keys"], json!(["a", "b"]));
    let (st, v) = s
        .call("GET", "/v1/secret/data/missing", Some(&root), None)
        .await;
    assert_eq!((st, v), (StatusCode::NOT_FOUND, json!({"errors": []})));
    let (st, v) = s
        .call(
            "PUT",
            "/v1/secret/data/app/a",
            Some(&root),
            Some("{\"data\":{},\"options\":{\"cas\":0}}"),
        )
        .await;
    assert_eq!(
        (st, v["errors"][0].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("check-and-set parameter did not match the current version")
        )
    );

    let (_, v) = s.call("GET", "/v1/sys/key-status", Some(&root), None).await;
    assert_eq!(v["term"], 1);
    let (st, _) = s.call("GET", "/v1/sys/key-status", None, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.call("POST", "/v1/sys/rotate", Some(&root), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s.call("GET", "/v1/sys/key-status", Some(&root), None).await;
    assert_eq!(v["term"], 2);
    // Old-term values still decrypt; new writes use term 2.
    let (st, v) = s
        .call("GET", "/v1/secret/data/app/a", Some(&root), None)
        .await;
    assert_eq!(
        (st, v["data"]["data"]["k"].clone()),
        (StatusCode::OK, json!("v"))
    );

    let (st, v) = s
        .call(
            "GET",
            "/v1/sys/metrics?format=prometheus",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let text = v.as_str().expect("text");
    assert!(text.contains("sealkeep_sealed 0"), "{text}");
    assert!(
        text.contains("sealkeep_unseal_attempts_total{method=\"shares\",result=\"ok\"} 1"),
        "{text}"
    );
    let (st, _) = s.call("GET", "/v1/sys/metrics", Some(&root), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

mod cancel;
mod forwarding;
mod raft;
mod security;
