use super::*;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// pod_view

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).expect("valid Pod")
}

fn container_status(name: &str, restarts: i32, state: serde_json::Value) -> serde_json::Value {
    json!({
        "name": name,
        "image": "ghcr.io/sealkeep/sealkeep:test",
        "imageID": "",
        "ready": false,
        "restartCount": restarts,
        "state": state,
    })
}

#[test]
fn pod_view_of_a_crash_looping_terminating_pod() {
    let p = pod(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "vault-0",
            "namespace": "secrets",
            "deletionTimestamp": "2024-05-01T12:00:00Z",
        },
        "status": {
            "phase": "Running",
            "podIP": "198.18.9.5",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False"},
            ],
            "containerStatuses": [
                container_status("sidecar", 99, json!({"waiting": {"reason": "ImagePullBackOff"}})),
                container_status("server", 4, json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}})),
            ],
        },
    }));
    assert_eq!(
        pod_view(&p),
        PodView {
            name: "vault-0".into(),
            ip: Some("198.18.9.5".into()),
            phase: "Running".into(),
            ready: false,
            terminating: true,
            waiting_reason: Some("CrashLoopBackOff".into()),
            restarts: 4,
            revision: None,
            uid: None,
        }
    );
}

#[test]
fn pod_view_of_a_ready_pod() {
    let p = pod(json!({
        "metadata": {"name": "vault-0"},
        "status": {
            "phase": "Running",
            "podIP": "fd00::5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                container_status("server", 1, json!({"running": {"startedAt": "2024-05-01T12:00:00Z"}})),
            ],
        },
    }));
    let v = pod_view(&p);
    assert_eq!(v.ip.as_deref(), Some("fd00::5"));
    assert!(v.ready);
    assert!(!v.terminating);
    assert_eq!(v.waiting_reason, None);
    assert_eq!(v.restarts, 1);
}

#[test]
fn pod_view_ignores_other_containers() {
    let p = pod(json!({
        "metadata": {"name": "vault-0"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                container_status("init-helper", 3, json!({"waiting": {"reason": "CrashLoopBackOff"}})),
            ],
        },
    }));
    let v = pod_view(&p);
    assert_eq!(v.waiting_reason, None);
    assert_eq!(v.restarts, 0);
}

#[test]
fn pod_view_with_empty_ip_and_no_status() {
    let p = pod(json!({
        "metadata": {"name": "vault-0"},
        "status": {"phase": "Pending", "podIP": ""},
    }));
    let v = pod_view(&p);
    assert_eq!(v.ip, None);
    assert_eq!(v.phase, "Pending");

    let v = pod_view(&pod(json!({"metadata": {"name": "vault-1"}})));
    assert_eq!(
        v,
        PodView {
            name: "vault-1".into(),
            ip: None,
            phase: "Pending".into(),
            ready: false,
            terminating: false,
            waiting_reason: None,
            restarts: 0,
            revision: None,
            uid: None,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// pod_addr

#[test]
fn pod_addr_ipv4_and_ipv6() {
    assert_eq!(pod_addr("http", "198.18.1.2"), "http://198.18.1.2:8200");
    assert_eq!(pod_addr("https", "198.18.0.7"), "https://198.18.0.7:8200");
    assert_eq!(pod_addr("https", "fd00::1"), "https://[fd00::1]:8200");
    assert_eq!(
        pod_addr("http", "2001:db8::a:b"),
        "http://[2001:db8::a:b]:8200"
    );
}

// ---------------------------------------------------------------------------------------------
// observe and ask

fn http() -> reqwest::Client {
    http_client(None).expect("http client")
}

#[test]
fn http_client_rejects_a_bad_ca_bundle() {
    assert!(
        http_client(Some(
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
        ))
        .is_err()
    );
    assert!(http_client(None).is_ok());
}

#[tokio::test]
async fn pods_without_ip_or_terminating_are_not_asked() {
    let no_ip = PodView {
        name: "vault-0".into(),
        phase: "Pending".into(),
        ..PodView::default()
    };
    // A TEST-NET address that nothing answers: asking it would take POD_TIMEOUT and give
    // Unreachable, not NotAsked.
    let terminating = PodView {
        name: "vault-1".into(),
        ip: Some("192.0.2.1".into()),
        phase: "Running".into(),
        terminating: true,
        ..PodView::default()
    };
    let started = std::time::Instant::now();
    let obs = observe(vec![no_ip.clone(), terminating.clone()], "http", &http()).await;
    assert!(started.elapsed() < POD_TIMEOUT, "a request was made");
    assert_eq!(
        obs,
        vec![
            PodObservation {
                pod: no_ip,
                answer: Answer::NotAsked
            },
            PodObservation {
                pod: terminating,
                answer: Answer::NotAsked
            },
        ]
    );
    assert!(obs.iter().all(|o| o.seal().is_none()));
    assert!(obs.iter().all(|o| o.health().is_none()));
    assert!(obs.iter().all(|o| o.backend().is_none()));
}

#[tokio::test]
async fn observe_of_no_pods_is_empty() {
    assert!(observe(Vec::new(), "http", &http()).await.is_empty());
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let addr = format!("http://127.0.0.1:{}", closed_port());
    let answer = ask(&Client::with_http(&addr, http())).await;
    let Answer::Unreachable(e) = answer else {
        panic!("expected Unreachable, got {answer:?}");
    };
    assert!(e.contains(&addr), "{e}");
    assert!(e.contains("cannot reach the server"), "{e}");
}

/// Serves `app` on a loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

/// A Vault-shaped server: initialized, sealed, auto-unseal through KMS failing.
fn sealed_awskms_server() -> Router {
    Router::new()
        .route(
            "/v1/sys/seal-status",
            get(|| async {
                Json(json!({
                    "type": "awskms",
                    "initialized": true,
                    "sealed": true,
                    "t": 1,
                    "n": 1,
                    "progress": 0,
                    "nonce": "",
                    "version": "1.15.4",
                    "build_date": "2023-12-04T17:45:28Z",
                    "migration": false,
                    "recovery_seal": true,
                    "storage_type": "file",
                }))
            }),
        )
        .route(
            "/v1/sys/health",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({
                        "initialized": true,
                        "sealed": true,
                        "standby": true,
                        "performance_standby": false,
                        "replication_performance_mode": "disabled",
                        "replication_dr_mode": "disabled",
                        "server_time_utc": 1_714_564_800,
                        "version": "1.15.4",
                    })),
                )
            }),
        )
        .route(
            "/v1/sys/seal-backend-status",
            get(|| async {
                Json(json!({
                    "healthy": false,
                    "unhealthy_since": "2024-05-01T12:00:00Z",
                    "backends": [{
                        "name": "awskms",
                        "healthy": false,
                        "unhealthy_since": "2024-05-01T12:00:00Z",
                        "key_id": "alias/sealkeep-unseal",
                        "endpoint": "https://kms.eu-west-1.amazonaws.com",
                    }],
                    "last_error_class": "KeyNotFound",
                    "last_error": "NotFoundException: Alias arn:aws:kms:eu-west-1:123456789012:alias/sealkeep-unseal is not found.",
                }))
            }),
        )
}

#[tokio::test]
async fn answered_with_health_code_and_backend() {
    let addr = serve(sealed_awskms_server()).await;
    let answer = ask(&Client::with_http(&addr, http())).await;
    let Answer::Answered {
        seal,
        health,
        backend,
    } = answer
    else {
        panic!("expected Answered, got {answer:?}");
    };
    assert_eq!(seal.seal_type, "awskms");
    assert!(seal.initialized);
    assert!(seal.sealed);
    assert!(seal.recovery_seal);
    assert_eq!(seal.version, "1.15.4");
    assert_eq!(seal.storage_type, "file");

    let health = health.expect("health decoded despite 503");
    assert_eq!(health.code, 503);
    assert!(health.sealed);
    assert!(health.standby);
    assert_eq!(health.version, "1.15.4");

    let backend = backend.expect("backend");
    assert!(!backend.healthy);
    assert_eq!(backend.last_error_class, "KeyNotFound");
    assert!(backend.last_error.contains("alias/sealkeep-unseal"));
    assert_eq!(backend.unhealthy_since, "2024-05-01T12:00:00Z");
    assert_eq!(backend.backends.len(), 1);
    assert_eq!(backend.backends[0].name, "awskms");
    assert_eq!(
        backend.backends[0].endpoint.as_deref(),
        Some("https://kms.eu-west-1.amazonaws.com")
    );
    assert_eq!(
        backend.backends[0].key_id.as_deref(),
        Some("alias/sealkeep-unseal")
    );
}

#[tokio::test]
async fn health_and_backend_are_best_effort() {
    // Only seal-status exists (an older server): the other two are None, still Answered.
    let app = Router::new().route(
        "/v1/sys/seal-status",
        get(|| async {
            Json(json!({
                "type": "shamir", "initialized": false, "sealed": true,
                "t": 0, "n": 0, "progress": 0,
            }))
        }),
    );
    let addr = serve(app).await;
    let answer = ask(&Client::with_http(&addr, http())).await;
    let Answer::Answered {
        seal,
        health,
        backend,
    } = answer
    else {
        panic!("expected Answered, got {answer:?}");
    };
    assert_eq!(seal.seal_type, "shamir");
    assert!(!seal.initialized);
    assert_eq!(seal.version, "");
    assert_eq!(health, None);
    assert_eq!(backend, None);
}

#[tokio::test]
async fn seal_status_error_is_unreachable_with_the_status() {
    let app = Router::new().route(
        "/v1/sys/seal-status",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "storage is broken") }),
    );
    let addr = serve(app).await;
    let answer = ask(&Client::with_http(&addr, http())).await;
    let Answer::Unreachable(e) = answer else {
        panic!("expected Unreachable, got {answer:?}");
    };
    assert!(e.contains("500"), "{e}");
    assert!(e.contains("storage is broken"), "{e}");
}

#[tokio::test]
async fn garbage_seal_status_is_unreachable() {
    let app = Router::new().route(
        "/v1/sys/seal-status",
        get(|| async { Json(json!({"hello": "world"})) }),
    );
    let addr = serve(app).await;
    let answer = ask(&Client::with_http(&addr, http())).await;
    let Answer::Unreachable(e) = answer else {
        panic!("expected Unreachable, got {answer:?}");
    };
    assert!(e.contains("unexpected response"), "{e}");
}

#[test]
fn pod_view_carries_the_revision_label_and_uid() {
    let p = pod(json!({
        "metadata": {"name": "vault-2", "uid": "u-2", "labels": {"controller-revision-hash": "vault-7c9b"}},
    }));
    let v = pod_view(&p);
    assert_eq!(v.revision.as_deref(), Some("vault-7c9b"));
    assert_eq!(v.uid.as_deref(), Some("u-2"));
}
