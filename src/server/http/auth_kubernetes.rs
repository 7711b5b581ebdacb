//! HTTP layer: `sys/auth` (enable/list/disable the Kubernetes auth method) and
//! `auth/kubernetes/{config, role/:name, login}`.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{ApiError, AppState, Caller, Envelope, is_list, read_json};
use crate::server::auth::kubernetes::{self as k8s, Config, K8sAuthError, Role};
use crate::server::token::fields::{parse_bool, parse_duration, parse_string, parse_string_list};
use crate::server::token::{IssueRequest, TokenError};

impl From<K8sAuthError> for ApiError {
    fn from(e: K8sAuthError) -> Self {
        match e {
            K8sAuthError::Denied => ApiError::permission_denied(),
            K8sAuthError::Invalid(_) | K8sAuthError::NoRole(_) | K8sAuthError::NotConfigured => {
                ApiError::bad_request(e.to_string())
            }
            K8sAuthError::NotEnabled => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            K8sAuthError::Review { .. } => {
                tracing::warn!(error = %e, "kubernetes login");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            K8sAuthError::Barrier(b) => b.into(),
            K8sAuthError::Corrupt(_) => {
                tracing::error!(error = %e, "kubernetes auth");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

fn field_err(e: TokenError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

fn envelope(data: Value) -> Response {
    Envelope::new(data).into_response()
}

fn method_entry(kind: &str, accessor: &str) -> Value {
    json!({
        "type": kind,
        "description": "",
        "accessor": accessor,
        "config": {"default_lease_ttl": 0, "max_lease_ttl": 0},
        "local": false,
        "seal_wrap": false,
        "options": null,
    })
}

/// `GET /v1/sys/auth`.
pub(super) async fn list_methods(caller: Caller, method: Method) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let mut map = Map::new();
    map.insert("token/".into(), method_entry("token", "auth_token"));
    if k8s::enabled(&caller.unsealed.barrier).await? {
        map.insert(
            "kubernetes/".into(),
            method_entry("kubernetes", "auth_kubernetes"),
        );
    }
    let mut body = Value::Object(map.clone());
    body["data"] = Value::Object(map);
    Ok(Json(body).into_response())
}

/// `POST /v1/sys/auth/:path` (enable) and `DELETE` (disable). Only `kubernetes` at
/// `kubernetes/` exists.
pub(super) async fn method(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    let path = caller.path.strip_prefix("sys/auth/").unwrap_or_default();
    let barrier = &caller.unsealed.barrier;
    match method {
        Method::POST | Method::PUT => {
            let req: Map<String, Value> = read_json(&state, body).await?;
            let kind = req.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "kubernetes" || path != "kubernetes" {
                return Err(ApiError::bad_request(format!(
                    "auth method {kind:?} at {path:?} is not supported: Sealkeep has token auth and the \"kubernetes\" method at path \"kubernetes\""
                )));
            }
            if !k8s::enable(barrier).await? {
                return Err(ApiError::bad_request(
                    "path is already in use at kubernetes/",
                ));
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE if path == "kubernetes" => {
            k8s::disable(barrier).await?;
            // As Vault: disabling a method revokes every token it issued.
            let revoked = caller
                .unsealed
                .tokens
                .revoke_issued_by(barrier, "auth/kubernetes/")
                .await?;
            tracing::info!(
                revoked,
                "disabled auth method kubernetes/ and revoked its tokens"
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `auth/kubernetes/config`.
pub(super) async fn config(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    let barrier = &caller.unsealed.barrier;
    match method {
        Method::GET => {
            let cfg = k8s::read_config(barrier)
                .await?
                .ok_or_else(ApiError::not_found)?;
            Ok(envelope(json!({
                "kubernetes_host": cfg.kubernetes_host,
                "kubernetes_ca_cert": cfg.kubernetes_ca_cert,
                "disable_local_ca_jwt": cfg.disable_local_ca_jwt,
                "token_reviewer_jwt_set": !cfg.token_reviewer_jwt.is_empty(),
            })))
        }
        Method::POST | Method::PUT => {
            let req: Map<String, Value> = read_json(&state, body).await?;
            let cfg = Config {
                kubernetes_host: parse_string("kubernetes_host", req.get("kubernetes_host"))
                    .map_err(field_err)?
                    .unwrap_or_default(),
                kubernetes_ca_cert: parse_string(
                    "kubernetes_ca_cert",
                    req.get("kubernetes_ca_cert"),
                )
                .map_err(field_err)?
                .unwrap_or_default(),
                token_reviewer_jwt: parse_string(
                    "token_reviewer_jwt",
                    req.get("token_reviewer_jwt"),
                )
                .map_err(field_err)?
                .unwrap_or_default(),
                disable_local_ca_jwt: parse_bool(
                    "disable_local_ca_jwt",
                    req.get("disable_local_ca_jwt"),
                )
                .map_err(field_err)?
                .unwrap_or(false),
            };
            k8s::write_config(barrier, cfg).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn role_json(r: &Role) -> Value {
    json!({
        "bound_service_account_names": r.bound_service_account_names,
        "bound_service_account_namespaces": r.bound_service_account_namespaces,
        "audience": r.audience,
        "token_policies": r.token_policies,
        "policies": r.token_policies,
        "token_ttl": r.token_ttl,
        "ttl": r.token_ttl,
        "token_max_ttl": r.token_max_ttl,
        "max_ttl": r.token_max_ttl,
    })
}

/// `LIST auth/kubernetes/role`.
pub(super) async fn roles(
    caller: Caller,
    method: Method,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if !is_list(&method, query.as_deref()) {
        return Err(ApiError::method_not_allowed());
    }
    let keys = k8s::list_roles(&caller.unsealed.barrier).await?;
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(envelope(json!({ "keys": keys })))
}

/// `auth/kubernetes/role/:name`.
pub(super) async fn role(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    let name = caller
        .path
        .strip_prefix("auth/kubernetes/role/")
        .unwrap_or_default()
        .to_owned();
    let barrier = &caller.unsealed.barrier;
    match method {
        Method::GET => {
            let r = k8s::read_role(barrier, &name)
                .await?
                .ok_or_else(ApiError::not_found)?;
            Ok(envelope(role_json(&r)))
        }
        Method::POST | Method::PUT => {
            let req: Map<String, Value> = read_json(&state, body).await?;
            let list = |k: &str| {
                parse_string_list(k, req.get(k))
                    .map(|l| {
                        l.unwrap_or_default()
                            .into_iter()
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                    })
                    .map_err(field_err)
            };
            let mut token_policies = list("token_policies")?;
            if token_policies.is_empty() {
                token_policies = list("policies")?;
            }
            let dur = |a: &str, b: &str| -> Result<u64, ApiError> {
                Ok(parse_duration(a, req.get(a))
                    .map_err(field_err)?
                    .or(parse_duration(b, req.get(b)).map_err(field_err)?)
                    .unwrap_or(0))
            };
            let r = Role {
                bound_service_account_names: list("bound_service_account_names")?,
                bound_service_account_namespaces: list("bound_service_account_namespaces")?,
                audience: parse_string("audience", req.get("audience"))
                    .map_err(field_err)?
                    .unwrap_or_default(),
                token_policies,
                token_ttl: dur("token_ttl", "ttl")?,
                token_max_ttl: dur("token_max_ttl", "max_ttl")?,
            };
            k8s::write_role(barrier, &name, &r).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE => {
            k8s::delete_role(barrier, &name).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `POST auth/kubernetes/login` `{role, jwt}`: unauthenticated, like every Vault login.
pub(super) async fn login(
    State(state): State<AppState>,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    if method != Method::POST && method != Method::PUT {
        return Err(ApiError::method_not_allowed());
    }
    let unsealed = state.core.unsealed().await?;
    let barrier = &unsealed.barrier;
    let req: Map<String, Value> = read_json(&state, body).await?;
    let role_name = parse_string("role", req.get("role"))
        .map_err(field_err)?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("missing role: set \"role\" to a role of auth/kubernetes/role")
        })?;
    let jwt = zeroize::Zeroizing::new(
        parse_string("jwt", req.get("jwt"))
            .map_err(field_err)?
            .filter(|j| !j.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "missing jwt: send the pod's service-account token as \"jwt\"",
                )
            })?,
    );
    if jwt.len() > 16 * 1024 {
        return Err(ApiError::bad_request("jwt is longer than 16 KiB"));
    }
    let role = k8s::read_role(barrier, &role_name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("invalid role name {role_name:?}")))?;
    let cfg = k8s::read_config(barrier).await?.unwrap_or_default();
    let sa = k8s::review(&cfg, &jwt, &role.audience).await?;
    if !k8s::admits(&role, &sa) {
        tracing::info!(role = %role_name, namespace = %sa.namespace, service_account = %sa.name, "kubernetes login refused: not bound to the role");
        return Err(ApiError::permission_denied());
    }
    let mut issue = IssueRequest::new(
        "auth/kubernetes/login",
        format!("kubernetes-{}-{}", sa.namespace, sa.name),
    );
    issue.policies = role.token_policies.clone();
    issue.ttl = role.token_ttl;
    issue.max_ttl = role.token_max_ttl;
    issue.meta = k8s::login_meta(&role_name, &sa);
    let issued = unsealed.tokens.issue(barrier, &issue).await?;
    Ok(Envelope::new(Value::Null)
        .auth(json!(issued.auth()))
        .into_response())
}

#[cfg(test)]
mod tests;
