//! `initialize` writes the operator's Kubernetes-auth role on a raft server with the root token
//! from `sys/init`, before revoking it: a loopback pod that records every request (method,
//! path, token, body) in order, the mock API server for the Secret calls, the fake KMS.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::initialize::{api, expect_marker_then_replaces, opened};
use super::*;
use crate::operator::operator_auth::{self, Identity};

const ROOT: &str = "hvs.SUPER-SECRET-ROOT-TOKEN";

/// One request the fake pod received.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    what: String,
    token: String,
    body: Value,
}

/// What the fake pod answers.
#[derive(Clone, Copy)]
struct Pod {
    sealed_shamir: bool,
    /// Kubernetes auth enabled and configured already (by the user).
    configured: bool,
}

async fn fake_pod(pod: Pod) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let l = l.clone();
            async move {
                let what = format!("{method} {}", uri.path());
                let token = headers
                    .get("x-vault-token")
                    .and_then(|t| t.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Ok(mut l) = l.lock() {
                    l.push(Seen {
                        what: what.clone(),
                        token,
                        body,
                    });
                }
                answer(pod, &what)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = Client::new(&format!("http://{addr}"), Duration::from_secs(5)).expect("client");
    (client, log)
}

fn answer(pod: Pod, what: &str) -> Response {
    let json = |v: Value| axum::Json(v).into_response();
    match what {
        "PUT /v1/sys/init" => json(json!({
            "keys_base64": ["UNSEAL-SHARE-1"],
            "recovery_keys_base64": ["RECOVERY-SHARE-1", "RECOVERY-SHARE-2"],
            "root_token": ROOT,
        })),
        "GET /v1/sys/seal-status" => json(json!({
            "type": if pod.sealed_shamir { "shamir" } else { "awskms" },
            "initialized": true, "sealed": pod.sealed_shamir, "t": 1, "n": 1, "progress": 0,
        })),
        "GET /v1/sys/auth" => {
            let mut m = json!({"token/": {"type": "token"}});
            if pod.configured {
                m["kubernetes/"] = json!({"type": "kubernetes"});
            }
            json(m)
        }
        "GET /v1/auth/kubernetes/config" if pod.configured => {
            json(json!({"data": {"kubernetes_host": "https://k8s.example:6443"}}))
        }
        "GET /v1/auth/kubernetes/config" => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"errors": []}))).into_response()
        }
        "POST /v1/sys/auth/kubernetes"
        | "POST /v1/auth/kubernetes/config"
        | "PUT /v1/sys/policies/acl/sealkeep-operator"
        | "POST /v1/auth/kubernetes/role/sealkeep-operator"
        | "POST /v1/auth/token/revoke-self" => StatusCode::NO_CONTENT.into_response(),
        _ => (StatusCode::IM_A_TEAPOT, "unexpected request").into_response(),
    }
}

fn operator() -> Identity {
    Identity::new(
        Some("sealkeep-system"),
        Some("sealkeep"),
        PathBuf::from("/unused"),
    )
    .expect("valid")
    .expect("present")
}

fn whats(log: &Arc<Mutex<Vec<Seen>>>) -> Vec<String> {
    log.lock()
        .expect("log")
        .iter()
        .map(|s| s.what.clone())
        .collect()
}

#[tokio::test]
async fn the_role_is_written_with_the_root_token_before_it_is_revoked() {
    let mut v = awskms();
    v.init.revoke_root_token = true;
    let (secrets, handle) = api();
    let (client, log) = fake_pod(Pod {
        sealed_shamir: false,
        configured: false,
    })
    .await;
    let verifier = tokio::spawn(expect_marker_then_replaces(handle, 2));
    let id = operator();
    let done = initialize(
        &secrets,
        &v,
        SecretState::Absent,
        "vault-0",
        &client,
        &FakeKms::default(),
        Some(&id),
    )
    .await
    .expect("initialized");
    assert_eq!(done.operator_role, RoleSetup::Created);
    assert_eq!(done.revoke, Revoke::Revoked);
    assert_eq!(
        whats(&log),
        [
            "PUT /v1/sys/init",
            "GET /v1/sys/seal-status",
            "GET /v1/sys/auth",
            "POST /v1/sys/auth/kubernetes",
            "GET /v1/auth/kubernetes/config",
            "POST /v1/auth/kubernetes/config",
            "PUT /v1/sys/policies/acl/sealkeep-operator",
            "POST /v1/auth/kubernetes/role/sealkeep-operator",
            "POST /v1/auth/token/revoke-self",
        ]
    );
    let seen = log.lock().expect("log").clone();
    for s in &seen[2..] {
        assert_eq!(
            s.token, ROOT,
            "{} with the root token from sys/init",
            s.what
        );
    }
    assert_eq!(seen[3].body, operator_auth::enable_request());
    assert_eq!(seen[5].body, operator_auth::config_request());
    assert_eq!(seen[6].body, operator_auth::policy_request());
    assert_eq!(
        seen[7].body,
        operator_auth::role_request("sealkeep-system", "sealkeep")
    );
    let written = verifier.await.expect("verifier");
    assert!(opened(&written[1]).root_token_revoked);
}

#[tokio::test]
async fn an_existing_method_and_config_are_kept() {
    let v = awskms();
    let (secrets, handle) = api();
    let (client, log) = fake_pod(Pod {
        sealed_shamir: false,
        configured: true,
    })
    .await;
    let verifier = tokio::spawn(expect_marker_then_replaces(handle, 1));
    let id = operator();
    let done = initialize(
        &secrets,
        &v,
        SecretState::Absent,
        "vault-0",
        &client,
        &FakeKms::default(),
        Some(&id),
    )
    .await
    .expect("initialized");
    assert_eq!(done.operator_role, RoleSetup::Created);
    assert_eq!(
        whats(&log),
        [
            "PUT /v1/sys/init",
            "GET /v1/sys/seal-status",
            "GET /v1/sys/auth",
            "GET /v1/auth/kubernetes/config",
            "PUT /v1/sys/policies/acl/sealkeep-operator",
            "POST /v1/auth/kubernetes/role/sealkeep-operator",
        ]
    );
    verifier.await.expect("verifier");
}

/// Shamir leaves the server sealed after init: nothing is written, and the Event says how to
/// create the role by hand.
#[tokio::test]
async fn a_sealed_shamir_server_gets_the_manual_commands() {
    let v = shamir();
    let (secrets, mut handle) = api();
    let (client, log) = fake_pod(Pod {
        sealed_shamir: true,
        configured: false,
    })
    .await;
    let verifier = tokio::spawn(async move {
        for code in [201, 200] {
            let (req, send) = handle.next_request().await.expect("secret call");
            let bytes = req.into_body().collect_bytes().await.expect("body");
            send.send_response(
                http::Response::builder()
                    .status(code)
                    .body(kube::client::Body::from(bytes.to_vec()))
                    .expect("response"),
            );
        }
    });
    let id = operator();
    let done = initialize(
        &secrets,
        &v,
        SecretState::Absent,
        "shamir-0",
        &client,
        &FakeKms::default(),
        Some(&id),
    )
    .await
    .expect("initialized");
    let RoleSetup::Failed(msg) = &done.operator_role else {
        panic!("expected Failed, got {:?}", done.operator_role);
    };
    assert!(
        msg.contains("sealed") && msg.contains("no root token fallback"),
        "{msg}"
    );
    assert!(
        msg.contains(&operator_auth::manual_commands(
            "secrets", "shamir", "http", &id
        )),
        "{msg}"
    );
    assert!(!msg.contains(ROOT), "the message leaks the root token");
    assert_eq!(whats(&log), ["PUT /v1/sys/init", "GET /v1/sys/seal-status"]);
    verifier.await.expect("verifier");
}

/// A file server has no raft administration: no role, no extra request.
#[tokio::test]
async fn a_file_server_writes_no_role() {
    let mut v = awskms();
    v.storage = crate::operator::validate::Storage::File;
    let (secrets, handle) = api();
    let (client, log) = fake_pod(Pod {
        sealed_shamir: false,
        configured: false,
    })
    .await;
    let verifier = tokio::spawn(expect_marker_then_replaces(handle, 1));
    let id = operator();
    let done = initialize(
        &secrets,
        &v,
        SecretState::Absent,
        "vault-0",
        &client,
        &FakeKms::default(),
        Some(&id),
    )
    .await
    .expect("initialized");
    assert!(matches!(done.operator_role, RoleSetup::Skipped(_)));
    assert_eq!(whats(&log), ["PUT /v1/sys/init"]);
    verifier.await.expect("verifier");
}
