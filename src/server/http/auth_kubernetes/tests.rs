//! Router tests of Kubernetes auth against a local stand-in for the TokenReview API (the real
//! API server is exercised by the end-to-end test on testenv).

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::server::http::tests::TestServer;

/// A TokenReview endpoint: JWT "ns/name" is that service account; anything else is refused.
async fn fake_api_server() -> String {
    let app = axum::Router::new().route(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        post(|Json(review): Json<Value>| async move {
            let token = review["spec"]["token"].as_str().unwrap_or("");
            let status = match token.split_once('/') {
                Some((ns, name)) => json!({
                    "authenticated": true,
                    "user": {"username": format!("system:serviceaccount:{ns}:{name}"), "uid": "uid-1"},
                    "audiences": review["spec"]["audiences"],
                }),
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            Json(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn kubernetes_login_issues_role_tokens_and_refuses_others() {
    let (s, root) = TestServer::unsealed().await;
    let host = fake_api_server().await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/auth/kubernetes/config",
            Some(&root),
            Some(&json!({"kubernetes_host": host}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "not enabled yet: {v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("vault auth enable kubernetes"),
        "{v}"
    );
    let (st, _) = s
        .call(
            "POST",
            "/v1/sys/auth/kubernetes",
            Some(&root),
            Some(r#"{"type":"kubernetes"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s.call("GET", "/v1/sys/auth", Some(&root), None).await;
    assert_eq!(v["kubernetes/"]["type"], "kubernetes", "{v}");
    let (st, _) = s
        .call(
            "POST",
            "/v1/auth/kubernetes/config",
            Some(&root),
            Some(
                &json!({"kubernetes_host": host, "token_reviewer_jwt": "reviewer-secret"})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s
        .call("GET", "/v1/auth/kubernetes/config", Some(&root), None)
        .await;
    assert_eq!(v["data"]["kubernetes_host"], host.as_str());
    assert!(
        !v.to_string().contains("reviewer-secret"),
        "the reviewer JWT is never returned"
    );
    let role = json!({
        "bound_service_account_names": ["app"],
        "bound_service_account_namespaces": ["team-a"],
        "token_policies": ["app-read"],
        "token_ttl": "1h",
    });
    let (st, v) = s
        .call(
            "POST",
            "/v1/auth/kubernetes/role/app",
            Some(&root),
            Some(&role.to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (_, v) = s
        .call("LIST", "/v1/auth/kubernetes/role", Some(&root), None)
        .await;
    assert_eq!(v["data"]["keys"], json!(["app"]));
    let (_, v) = s
        .call("GET", "/v1/auth/kubernetes/role/app", Some(&root), None)
        .await;
    assert_eq!(v["data"]["token_ttl"], 3600);

    let (st, v) = s
        .call(
            "POST",
            "/v1/auth/kubernetes/login",
            None,
            Some(r#"{"role":"app","jwt":"team-a/app"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let auth = &v["auth"];
    assert!(
        auth["client_token"]
            .as_str()
            .unwrap_or("")
            .starts_with("hvs."),
        "{v}"
    );
    assert_eq!(auth["policies"], json!(["app-read", "default"]));
    assert_eq!(auth["metadata"]["service_account_namespace"], "team-a");
    assert_eq!(auth["metadata"]["role"], "app");
    assert_eq!(auth["lease_duration"], 3600);
    let token = auth["client_token"].as_str().unwrap_or("").to_owned();
    let (st, v) = s
        .call("GET", "/v1/auth/token/lookup-self", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::OK, "the issued token works: {v}");
    assert_eq!(v["data"]["display_name"], "kubernetes-team-a-app");

    for (body, code) in [
        (
            r#"{"role":"app","jwt":"team-b/app"}"#,
            StatusCode::FORBIDDEN,
        ),
        (
            r#"{"role":"app","jwt":"team-a/other"}"#,
            StatusCode::FORBIDDEN,
        ),
        (r#"{"role":"app","jwt":"garbage"}"#, StatusCode::FORBIDDEN),
        (
            r#"{"role":"nope","jwt":"team-a/app"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (r#"{"jwt":"team-a/app"}"#, StatusCode::BAD_REQUEST),
        (r#"{"role":"app"}"#, StatusCode::BAD_REQUEST),
    ] {
        let (st, v) = s
            .call("POST", "/v1/auth/kubernetes/login", None, Some(body))
            .await;
        assert_eq!(st, code, "{body}: {v}");
        assert!(v["auth"].is_null(), "{body}: no token");
    }

    let bad_role =
        json!({"bound_service_account_names": ["*"], "bound_service_account_namespaces": ["*"]});
    let (st, v) = s
        .call(
            "POST",
            "/v1/auth/kubernetes/role/wide",
            Some(&root),
            Some(&bad_role.to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("cannot both be"),
        "{v}"
    );
    let (st, _) = s
        .call(
            "POST",
            "/v1/auth/kubernetes/config",
            Some(&root),
            Some(r#"{"kubernetes_host":"ftp://x"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

/// Regression (issue 11): a Kubernetes-auth login token stayed valid and renewable after
/// `DELETE sys/auth/kubernetes`; Vault revokes every token a disabled method issued.
#[tokio::test]
async fn disabling_the_method_revokes_its_tokens() {
    let (s, root) = TestServer::unsealed().await;
    let host = fake_api_server().await;
    for (uri, body) in [
        (
            "/v1/sys/policies/acl/child-maker",
            json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
        ),
        ("/v1/sys/auth/kubernetes", json!({"type": "kubernetes"})),
        (
            "/v1/auth/kubernetes/config",
            json!({"kubernetes_host": host}),
        ),
        (
            "/v1/auth/kubernetes/role/app",
            json!({"bound_service_account_names": ["app"],
                   "bound_service_account_namespaces": ["team-a"],
                   "token_policies": ["child-maker"],
                   "token_ttl": "1h"}),
        ),
    ] {
        let (st, v) = s
            .call("POST", uri, Some(&root), Some(&body.to_string()))
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{uri}: {v}");
    }
    let (st, v) = s
        .call(
            "POST",
            "/v1/auth/kubernetes/login",
            None,
            Some(r#"{"role":"app","jwt":"team-a/app"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let login = v["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // A child of the login token goes with it.
    let (st, v) = s
        .call("POST", "/v1/auth/token/create", Some(&login), Some("{}"))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let child = v["auth"]["client_token"]
        .as_str()
        .expect("child")
        .to_owned();
    let (st, _) = s
        .call("GET", "/v1/auth/token/lookup-self", Some(&login), None)
        .await;
    assert_eq!(st, StatusCode::OK);

    let (st, _) = s
        .call("DELETE", "/v1/sys/auth/kubernetes", Some(&root), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    for t in [&login, &child] {
        let (st, _) = s
            .call("GET", "/v1/auth/token/lookup-self", Some(t), None)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "revoked with the method");
        let (st, _) = s
            .call("POST", "/v1/auth/token/renew-self", Some(t), Some("{}"))
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "no longer renewable");
    }
    // The root token (issued by token auth) is untouched.
    let (st, _) = s
        .call("GET", "/v1/auth/token/lookup-self", Some(&root), None)
        .await;
    assert_eq!(st, StatusCode::OK);
}
