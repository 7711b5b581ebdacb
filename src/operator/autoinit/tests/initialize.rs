//! `initialize` scenarios: kube's mock API server (tower-test) for the Secret calls, a loopback
//! HTTP server for the pod's `sys/init` and `revoke-self`, and the fake KMS. Each scenario
//! lists the exact API requests, in order, and fails on any other.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use http::{Request, Response};
use kube::client::Body;

use super::*;
use crate::operator::initsecret::kms::KmsErrorClass;

pub(super) type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// What the fake pod saw.
#[derive(Default)]
struct PodLog {
    inits: usize,
    revoked_tokens: Vec<String>,
}

/// A fake server pod on loopback; `revoke_status` is what revoke-self answers.
async fn pod_server(revoke_status: StatusCode) -> (Client, Arc<Mutex<PodLog>>) {
    let log = Arc::new(Mutex::new(PodLog::default()));
    let (l1, l2) = (log.clone(), log.clone());
    let app = Router::new()
        .route(
            "/v1/sys/init",
            put(move || async move {
                if let Ok(mut l) = l1.lock() {
                    l.inits += 1;
                }
                axum::Json(serde_json::json!({
                    "keys_base64": [],
                    "recovery_keys_base64": ["RECOVERY-SHARE-1", "RECOVERY-SHARE-2"],
                    "root_token": "hvs.SUPER-SECRET-ROOT-TOKEN",
                }))
            }),
        )
        .route(
            "/v1/auth/token/revoke-self",
            post(move |headers: HeaderMap| async move {
                let token = headers
                    .get("x-vault-token")
                    .and_then(|t| t.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if let Ok(mut l) = l2.lock() {
                    l.revoked_tokens.push(token);
                }
                revoke_status
            }),
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

pub(super) fn api() -> (Api<Secret>, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(svc, "secrets");
    (Api::namespaced(client, "secrets"), handle)
}

async fn secret_body(req: Request<Body>) -> Secret {
    let bytes = req.into_body().collect_bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("a Secret")
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, code: u16, s: &Secret) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(s).expect("json")))
            .expect("response"),
    );
}

/// Serves the marker `create`, then `puts` replaces; returns the Secrets written.
pub(super) async fn expect_marker_then_replaces(mut handle: Handle, puts: usize) -> Vec<Secret> {
    let (req, send) = handle.next_request().await.expect("create");
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(req.uri().path(), "/api/v1/namespaces/secrets/secrets");
    let marker = secret_body(req).await;
    assert_eq!(secret_state(Some(&marker), UID), SecretState::Pending);
    assert_eq!(marker.data, None);
    respond(send, 201, &marker);
    let mut written = Vec::new();
    for _ in 0..puts {
        let (req, send) = handle.next_request().await.expect("replace");
        assert_eq!(req.method(), http::Method::PUT);
        assert_eq!(
            req.uri().path(),
            "/api/v1/namespaces/secrets/secrets/vault-init"
        );
        let s = secret_body(req).await;
        respond(send, 200, &s);
        written.push(s);
    }
    written
}

pub(super) fn opened(s: &Secret) -> InitContents {
    let data = s.data.as_ref().expect("data");
    for (k, b) in data {
        let text = String::from_utf8_lossy(&b.0);
        assert!(
            !text.contains("SUPER-SECRET") && !text.contains("RECOVERY-SHARE"),
            "{k} is in clear"
        );
    }
    let Ok(Stored::Envelope(env)) = parse(data) else {
        panic!("an awskms-envelope-v1 Secret");
    };
    open(&env, &fake_data_key().plaintext, "secrets", "vault-init").expect("opens")
}

#[tokio::test]
async fn kms_failure_creates_no_marker_and_does_not_initialize() {
    let v = awskms();
    let (secrets, mut handle) = api();
    let (client, log) = pod_server(StatusCode::NO_CONTENT).await;
    let kms = FakeKms::failing(
        KmsErrorClass::AccessDenied,
        "KMS denied GenerateDataKey on key \"alias/k\"",
    );
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        initialize(
            &secrets,
            &v,
            SecretState::Absent,
            "vault-0",
            &client,
            &kms,
            None,
        ),
    )
    .await
    .expect("returns at once");
    let e = r.expect_err("KMS failed");
    assert!(matches!(e, InitError::DataKey { .. }), "{e:?}");
    assert_eq!(e.failure(), InitFailure::SecretKms);
    let msg = e.to_string();
    assert!(
        msg.contains("alias/k")
            && msg.contains("kms:GenerateDataKey")
            && msg.contains("not initialized"),
        "{msg}"
    );
    assert_eq!(log.lock().expect("log").inits, 0, "sys/init was called");
    // No API request at all: the mock has nothing queued.
    drop(secrets);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), handle.next_request())
            .await
            .ok()
            .flatten()
            .is_none(),
        "an API request was made"
    );
    let calls = kms.calls.lock().expect("calls").clone();
    assert_eq!(
        calls,
        [(
            "GenerateDataKey".to_owned(),
            "alias/k".to_owned(),
            "secrets/vault-init".to_owned()
        )]
    );
}

#[tokio::test]
async fn awskms_init_stores_an_envelope_and_keeps_the_root_token_by_default() {
    let v = awskms();
    let (secrets, handle) = api();
    let (client, log) = pod_server(StatusCode::NO_CONTENT).await;
    let verifier = tokio::spawn(expect_marker_then_replaces(handle, 1));
    let done = initialize(
        &secrets,
        &v,
        SecretState::Absent,
        "vault-0",
        &client,
        &FakeKms::default(),
        None,
    )
    .await
    .expect("initialized");
    assert_eq!(
        done,
        Initialized {
            secret: "vault-init".into(),
            revoke: Revoke::NotRequested,
            operator_role: RoleSetup::Skipped(crate::operator::operator_auth::no_identity(
                "secrets", "vault"
            )),
        }
    );
    let written = verifier.await.expect("verifier");
    let c = opened(&written[0]);
    assert_eq!(c.root_token.as_deref(), Some("hvs.SUPER-SECRET-ROOT-TOKEN"));
    assert!(!c.root_token_revoked);
    assert_eq!(c.keys, ["RECOVERY-SHARE-1", "RECOVERY-SHARE-2"]);
    let log = log.lock().expect("log");
    assert_eq!(log.inits, 1);
    assert!(log.revoked_tokens.is_empty());
}

#[tokio::test]
async fn revoke_root_token_revokes_it_after_storing_and_records_it() {
    let mut v = awskms();
    v.init.revoke_root_token = true;
    let (secrets, handle) = api();
    let (client, log) = pod_server(StatusCode::NO_CONTENT).await;
    let verifier = tokio::spawn(expect_marker_then_replaces(handle, 2));
    let done = initialize(
        &secrets,
        &v,
        SecretState::Absent,
        "vault-0",
        &client,
        &FakeKms::default(),
        None,
    )
    .await
    .expect("initialized");
    assert_eq!(done.revoke, Revoke::Revoked);
    let written = verifier.await.expect("verifier");
    // First the keys with the token (so a failed revoke loses nothing), then the record.
    let first = opened(&written[0]);
    assert_eq!(
        first.root_token.as_deref(),
        Some("hvs.SUPER-SECRET-ROOT-TOKEN")
    );
    let second = opened(&written[1]);
    assert_eq!(second.root_token, None);
    assert!(second.root_token_revoked);
    assert_eq!(second.keys, ["RECOVERY-SHARE-1", "RECOVERY-SHARE-2"]);
    assert_eq!(data(&written[1], "root-token-revoked"), "true");
    assert_eq!(
        log.lock().expect("log").revoked_tokens,
        ["hvs.SUPER-SECRET-ROOT-TOKEN"],
        "revoke-self with the root token itself"
    );
}

#[tokio::test]
async fn failed_revoke_keeps_the_stored_token_and_says_so() {
    let mut v = awskms();
    v.init.revoke_root_token = true;
    let (secrets, handle) = api();
    let (client, _log) = pod_server(StatusCode::FORBIDDEN).await;
    let verifier = tokio::spawn(expect_marker_then_replaces(handle, 1));
    let done = initialize(
        &secrets,
        &v,
        SecretState::Absent,
        "vault-0",
        &client,
        &FakeKms::default(),
        None,
    )
    .await
    .expect("initialized");
    let Revoke::Failed(msg) = done.revoke else {
        panic!("expected a failed revoke: {done:?}");
    };
    assert!(
        msg.contains("still valid") && msg.contains("vault-init") && msg.contains("403"),
        "{msg}"
    );
    assert!(
        !msg.contains("SUPER-SECRET"),
        "the message leaks the token: {msg}"
    );
    let written = verifier.await.expect("verifier");
    assert_eq!(
        opened(&written[0]).root_token.as_deref(),
        Some("hvs.SUPER-SECRET-ROOT-TOKEN")
    );
}

#[tokio::test]
async fn shamir_init_stores_plain_keys_without_kms() {
    let v = shamir();
    let (secrets, mut handle) = api();
    let (client, _log) = pod_server(StatusCode::NO_CONTENT).await;
    let kms = FakeKms::failing(KmsErrorClass::Unreachable, "must not be called");
    let verifier = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("create");
        assert_eq!(req.method(), http::Method::POST);
        let marker = secret_body(req).await;
        respond(send, 201, &marker);
        let (req, send) = handle.next_request().await.expect("replace");
        assert_eq!(
            req.uri().path(),
            "/api/v1/namespaces/secrets/secrets/shamir-init"
        );
        let s = secret_body(req).await;
        respond(send, 200, &s);
        s
    });
    initialize(
        &secrets,
        &v,
        SecretState::Absent,
        "shamir-0",
        &client,
        &kms,
        None,
    )
    .await
    .expect("initialized");
    let s = verifier.await.expect("verifier");
    assert_eq!(data(&s, "format"), "plain-v1");
    assert_eq!(data(&s, "root-token"), "hvs.SUPER-SECRET-ROOT-TOKEN");
    assert!(kms.calls.lock().expect("calls").is_empty());
}
