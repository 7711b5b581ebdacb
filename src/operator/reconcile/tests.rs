//! Reconcile scenarios against kube's mock API server (tower-test), in the ApiServerVerifier
//! style of kube-rs/controller-rs: each scenario lists the exact requests the reconciler must
//! make, and fails on any other.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

use super::*;
use crate::operator::observe;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn context() -> (Arc<Context>, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(svc, "default");
    let ctx = Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "sealkeep-operator".into(),
                instance: Some("test".into()),
            },
        ),
        client,
        default_image: Some("ghcr.io/sealkeep/sealkeep:test".into()),
        metrics: OperatorMetrics::new(),
        http: observe::http_client(None).expect("http client"),
        applied: AppliedCache::default(),
        failures: Default::default(),
        kms: Arc::new(crate::operator::initsecret::kms::FakeKms::default()),
        secrets_role: None,
        tokens: Default::default(),
        account: None,
    };
    (Arc::new(ctx), handle)
}

fn secret_server(spec: Value, status: Option<Value>) -> SecretServer {
    let mut obj = json!({
        "apiVersion": "sealkeep.dev/v1alpha1",
        "kind": "SecretServer",
        "metadata": {"name": "vault", "namespace": "team", "uid": "uid-1", "generation": 2},
        "spec": spec,
    });
    if let Some(s) = status {
        obj["status"] = s;
    }
    serde_json::from_value(obj).expect("SecretServer")
}

async fn body_json(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("json body")
}

fn ok(v: Value) -> Response<Body> {
    Response::builder()
        .status(200)
        .body(Body::from(serde_json::to_vec(&v).expect("json")))
        .expect("response")
}

/// Serves the requests of an invalid spec: one status apply, then one Event.
async fn expect_invalid_spec_writes(handle: Handle) -> Value {
    expect_invalid_spec_writes_noting(handle, "spec.replicas is 2").await
}

/// As [`expect_invalid_spec_writes`], with the Event's note containing `note`.
async fn expect_invalid_spec_writes_noting(mut handle: Handle, note: &str) -> Value {
    let (req, send) = handle.next_request().await.expect("status request");
    assert_eq!(req.method(), http::Method::PATCH);
    assert_eq!(
        req.uri().path(),
        "/apis/sealkeep.dev/v1alpha1/namespaces/team/secretservers/vault/status"
    );
    let query = req.uri().query().unwrap_or_default().to_owned();
    assert!(query.contains("fieldManager=sealkeep-operator"), "{query}");
    assert!(query.contains("force=true"), "{query}");
    let patch = body_json(req).await;
    send.send_response(ok(json!({
        "apiVersion": "sealkeep.dev/v1alpha1", "kind": "SecretServer",
        "metadata": {"name": "vault", "namespace": "team"}, "spec": {"seal": {"shamir": {}}},
    })));
    let (req, send) = handle.next_request().await.expect("event request");
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(
        req.uri().path(),
        "/apis/events.k8s.io/v1/namespaces/team/events"
    );
    let event = body_json(req).await;
    assert_eq!(event["reason"], "InvalidSpec");
    assert_eq!(event["type"], "Warning");
    assert!(
        event["note"].as_str().unwrap_or("").contains(note),
        "{event}"
    );
    send.send_response(ok(event));
    patch
}

#[tokio::test]
async fn invalid_spec_writes_status_and_event_then_waits_for_a_change() {
    let (ctx, handle) = context();
    let ss = Arc::new(secret_server(
        json!({"replicas": 2, "seal": {"shamir": {}}}),
        None,
    ));
    let verifier = tokio::spawn(expect_invalid_spec_writes(handle));
    let action = tokio::time::timeout(Duration::from_secs(5), reconcile(ss, ctx))
        .await
        .expect("reconcile finished")
        .expect("reconcile ok");
    assert_eq!(action, Action::await_change());
    let patch = verifier.await.expect("verifier");
    let conditions = patch["status"]["conditions"]
        .as_array()
        .expect("conditions");
    let ready = conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or("")
            .contains("set spec.replicas: 1"),
        "{ready}"
    );
    assert_eq!(patch["status"]["reason"], "InvalidSpec");
    assert_eq!(patch["status"]["observedGeneration"], 2);
    assert_eq!(patch["apiVersion"], "sealkeep.dev/v1alpha1");
    assert_eq!(patch["kind"], "SecretServer");
}

/// Kubernetes auth with a user-named ServiceAccount: refused before anything is applied (no
/// ClusterRoleBinding, no finalizer, no children): only the status and the Event.
#[tokio::test]
async fn kubernetes_auth_with_a_foreign_service_account_binds_nothing() {
    let (ctx, handle) = context();
    let ss = Arc::new(secret_server(
        json!({
            "seal": {"shamir": {}},
            "serviceAccount": {"name": "payments"},
            "auth": {"kubernetes": {"enabled": true}},
        }),
        None,
    ));
    let verifier = tokio::spawn(expect_invalid_spec_writes_noting(
        handle,
        "existing ServiceAccount \"payments\"",
    ));
    let action = tokio::time::timeout(Duration::from_secs(5), reconcile(ss, ctx))
        .await
        .expect("reconcile finished")
        .expect("reconcile ok");
    assert_eq!(action, Action::await_change());
    let patch = verifier.await.expect("verifier");
    assert_eq!(patch["status"]["reason"], "InvalidSpec");
}

#[tokio::test]
async fn invalid_spec_already_reported_makes_no_request() {
    let (ctx, handle) = context();
    let spec = json!({"replicas": 2, "seal": {"shamir": {}}});
    // First reconcile: learn the status the operator writes.
    let ss = Arc::new(secret_server(spec.clone(), None));
    let verifier = tokio::spawn(expect_invalid_spec_writes(handle));
    reconcile(ss, ctx).await.expect("first reconcile");
    let written = verifier.await.expect("verifier");

    // Second reconcile with that status in place: nothing to write, nothing to publish.
    let (ctx, mut handle) = context();
    let ss = Arc::new(secret_server(spec, Some(written["status"].clone())));
    let run = tokio::spawn(reconcile(ss, ctx));
    tokio::select! {
        r = handle.next_request() => {
            if let Some((req, _)) = r {
                let what = format!("{} {}", req.method(), req.uri());
                panic!("a steady invalid spec must make no API request; got {what}: {}", body_json(req).await);
            }
        }
        _ = tokio::time::sleep(Duration::from_secs(5)) => panic!("reconcile did not finish"),
    }
    let action = run.await.expect("join").expect("second reconcile");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn error_policy_backs_off_exponentially_and_resets_after_success() {
    let (ctx, _handle) = context();
    let ss = Arc::new(secret_server(json!({"seal": {"shamir": {}}}), None));
    let err = Error::TlsSecret("tls".into());
    let delays: Vec<Action> = (0..3)
        .map(|_| error_policy(ss.clone(), &err, ctx.clone()))
        .collect();
    assert_eq!(
        delays,
        [
            Action::requeue(Duration::from_secs(2)),
            Action::requeue(Duration::from_secs(4)),
            Action::requeue(Duration::from_secs(8)),
        ]
    );
    for _ in 0..20 {
        error_policy(ss.clone(), &err, ctx.clone());
    }
    assert_eq!(
        error_policy(ss.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(300)),
        "capped at 5 minutes"
    );
}
