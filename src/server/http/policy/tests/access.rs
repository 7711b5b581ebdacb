//! Router tests: tokens limited by policies, `sys/capabilities-self`, sealed and anonymous calls.

use axum::http::StatusCode;
use serde_json::json;

use super::{APP_POLICY, Server};

#[tokio::test]
async fn a_limited_token_is_refused_outside_its_policy() {
    let s = Server::new().await;
    s.put_policy("app", APP_POLICY).await;
    s.put_policy(
        "app-extra",
        "path \"secret/*\" { capabilities = [\"deny\"] }",
    )
    .await;
    let token = s.token(&["app"]).await;
    let denied = (
        StatusCode::FORBIDDEN,
        json!({"errors": ["permission denied"]}),
    );

    // Inside the policy: reading policies it may read.
    let (st, v) = s
        .server
        .call("GET", "/v1/sys/policies/acl/app-extra", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Outside: other policies, writes, lists, deletes, and the policy list.
    let body = json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"}).to_string();
    for (method, uri, body) in [
        ("GET", "/v1/sys/policies/acl/app", None),
        (
            "PUT",
            "/v1/sys/policies/acl/app-escalate",
            Some(body.as_str()),
        ),
        ("DELETE", "/v1/sys/policies/acl/app-extra", None),
        ("LIST", "/v1/sys/policies/acl", None),
        ("GET", "/v1/sys/policy", None),
        ("PUT", "/v1/sys/seal", None),
    ] {
        assert_eq!(
            s.server.call(method, uri, Some(&token), body).await,
            denied,
            "{method} {uri}"
        );
    }
    let (st, _) = s
        .root_call("GET", "/v1/sys/policies/acl/app-escalate", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing was written");
    // Without default, not even capabilities-self.
    let (st, _) = s
        .server
        .call(
            "POST",
            "/v1/sys/capabilities-self",
            Some(&token),
            Some("{\"paths\":[\"x\"]}"),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A policy change applies to the live token at once.
    s.put_policy(
        "app",
        "path \"sys/policies/acl/*\" { capabilities = [\"list\"] }",
    )
    .await;
    let (st, v) = s
        .server
        .call("LIST", "/v1/sys/policies/acl", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = s
        .server
        .call("GET", "/v1/sys/policies/acl/app-extra", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn capabilities_self_reports_per_path() {
    let s = Server::new().await;
    s.put_policy("app", APP_POLICY).await;
    let token = s.token(&["app", "default"]).await;
    let body =
        json!({"paths": ["secret/data/app/db", "secret/data/other", "sys/capabilities-self"]});
    let (st, v) = s
        .server
        .call(
            "POST",
            "/v1/sys/capabilities-self",
            Some(&token),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["secret/data/app/db"], json!(["list", "read"]));
    assert_eq!(v["secret/data/other"], json!(["deny"]));
    assert_eq!(v["data"]["sys/capabilities-self"], json!(["update"]));
    assert!(v.get("capabilities").is_none());

    let (_, v) = s
        .server
        .call(
            "PUT",
            "/v1/sys/capabilities-self",
            Some(&token),
            Some("{\"path\": \"secret/data/app/x\"}"),
        )
        .await;
    assert_eq!(v["capabilities"], json!(["list", "read"]));
    let (_, v) = s
        .root_call(
            "POST",
            "/v1/sys/capabilities-self",
            Some("{\"paths\": \"a,b\"}"),
        )
        .await;
    assert_eq!((&v["a"], &v["b"]), (&json!(["root"]), &json!(["root"])));
    let (st, v) = s
        .root_call("POST", "/v1/sys/capabilities-self", Some("{}"))
        .await;
    assert_eq!(
        (st, v),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["missing token or paths"]})
        )
    );
}

#[tokio::test]
async fn sealed_and_anonymous_requests() {
    let s = Server::new().await;
    let (st, _) = s
        .server
        .call("LIST", "/v1/sys/policies/acl", None, None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.root_call("PUT", "/v1/sys/seal", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s
        .root_call("GET", "/v1/sys/policies/acl/default", None)
        .await;
    assert_eq!(
        (st, v),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": ["Vault is sealed"]})
        )
    );
}

#[tokio::test]
async fn case_and_percent_encoding_cannot_bypass_a_deny() {
    let s = Server::new().await;
    s.put_policy(
        "admin",
        "path \"sys/policies/acl/*\" { capabilities = [\"read\", \"update\"] }\npath \"sys/policies/acl/admin\" { capabilities = [\"deny\"] }",
    )
    .await;
    let token = s.token(&["admin"]).await;
    let body = json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"}).to_string();
    for uri in [
        "/v1/sys/policies/acl/admin",
        "/v1/sys/policies/acl/ADMIN",
        "/v1/sys/policies/acl/%61dmin",
    ] {
        let (st, _) = s.server.call("PUT", uri, Some(&token), Some(&body)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{uri}");
        let (st, _) = s.server.call("GET", uri, Some(&token), None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{uri}");
    }
    let (st, _) = s
        .server
        .call("GET", "/v1/sys/policies/acl/default", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = s.root_call("GET", "/v1/sys/policies/acl/admin", None).await;
    assert!(
        !v["data"]["policy"].as_str().unwrap_or("").contains("sudo"),
        "{v}"
    );
}
