//! HTTP layer: `sys/audit` (enable, list, disable `file` devices) and the audit middleware that
//! records every logical request and response on the enabled devices, fail-closed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Authenticated, Caller, RequestPath, is_list, read_json, token};
use crate::server::audit::entry::{self, AuthInfo, RequestInfo};
use crate::server::audit::{self, AuditError, Device};

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid(m) => ApiError::bad_request(m),
            other => {
                tracing::error!(error = %other, "audit");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

/// Paths served before the logical router in Vault, never audited.
fn unaudited(path: &str) -> bool {
    matches!(
        path,
        "sys/health"
            | "sys/seal-status"
            | "sys/leader"
            | "sys/init"
            | "sys/unseal"
            | "sys/metrics"
            | "sys/seal-backend-status"
    )
}

fn operation(method: &Method, query: Option<&str>) -> &'static str {
    match method.as_str() {
        "LIST" => "list",
        "GET" | "HEAD" if is_list(method, query) => "list",
        "GET" | "HEAD" => "read",
        "DELETE" => "delete",
        "PATCH" => "patch",
        _ => "update",
    }
}

/// Login endpoints: audited, but the request carries no token to resolve.
fn is_login(path: &str) -> bool {
    path.starts_with("auth/") && path.ends_with("/login")
}

/// Records the request before the handler runs and the response after it. A request that no
/// enabled device can record is refused with 500, as Vault does. The path recorded is the one
/// the front door decoded and the ACL checks; the token is resolved by the one resolver
/// ([`Authenticated::resolve`]), whose answer the handler then reuses.
pub(super) async fn middleware(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(logical) = req
        .extensions()
        .get::<RequestPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    if unaudited(&logical) {
        return next.run(req).await;
    }
    let Ok(unsealed) = state.core.unsealed().await else {
        return next.run(req).await;
    };
    let devices = match unsealed.audit.devices(&unsealed.barrier).await {
        Ok(d) if d.is_empty() => return next.run(req).await,
        Ok(d) => d,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let hasher = match unsealed.audit.hasher(&unsealed.barrier).await {
        Ok(h) => h.clone(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(_) => return super::too_large(&state).into_response(),
    };
    let data: Option<Value> = serde_json::from_slice(&bytes).ok();
    let client_token = token(&parts.headers);
    let auth = if is_login(&logical) {
        None
    } else {
        Authenticated::resolve(&mut parts, &state)
            .await
            .ok()
            .map(|who| AuthInfo {
                accessor: who.entry.accessor.clone(),
                display_name: who.entry.display_name.clone(),
                policies: who.entry.policies.clone(),
                metadata: json!({}),
            })
    };
    let id = uuid::Uuid::new_v4().to_string();
    let info = RequestInfo {
        id: &id,
        operation: operation(&parts.method, parts.uri.query()),
        path: &logical,
        client_token: client_token.as_deref(),
        remote_address: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        data: data.as_ref(),
    };
    let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let line = entry::request_entry(&hasher, &time, auth.as_ref(), &info);
    if let Err(e) = audit::record(&devices, "request", line.to_string().as_bytes()) {
        return ApiError::from(e).into_response();
    }
    let resp = next
        .run(Request::from_parts(parts.clone(), Body::from(bytes)))
        .await;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = match axum::body::to_bytes(rbody, usize::MAX).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the response failed",
            )
            .into_response();
        }
    };
    let rjson: Option<Value> = serde_json::from_slice(&rbytes).ok();
    let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let line = entry::response_entry(
        &hasher,
        &time,
        auth.as_ref(),
        &info,
        rparts.status.as_u16(),
        rjson.as_ref(),
    );
    if let Err(e) = audit::record(&devices, "response", line.to_string().as_bytes()) {
        return ApiError::from(e).into_response();
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

fn device_json(d: &Device) -> Value {
    json!({
        "type": d.device_type,
        "description": d.description,
        "options": d.options,
        "local": d.local,
        "path": d.path,
    })
}

/// `GET /v1/sys/audit`: the enabled devices, keyed by path.
pub(super) async fn list(caller: Caller, method: Method) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    // `sudo` on sys/audit is required by the front door (SUDO_PATHS), as in Vault.
    let devices = caller
        .unsealed
        .audit
        .devices(&caller.unsealed.barrier)
        .await?;
    let map: serde_json::Map<String, Value> = devices
        .iter()
        .map(|d| (d.path.clone(), device_json(d)))
        .collect();
    let mut body = Value::Object(map.clone());
    body["data"] = Value::Object(map);
    Ok(Json(body).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct EnableRequest {
    #[serde(rename = "type")]
    device_type: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    options: BTreeMap<String, String>,
    #[serde(default)]
    local: bool,
}

/// `PUT/POST /v1/sys/audit/:path` enables, `DELETE` disables.
pub(super) async fn device(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    let path = caller.path.strip_prefix("sys/audit/").unwrap_or_default();
    let barrier = &caller.unsealed.barrier;
    let store = &caller.unsealed.audit;
    match method {
        Method::PUT | Method::POST => {
            let req: EnableRequest = read_json(&state, body).await?;
            let device_type = req
                .device_type
                .ok_or_else(|| ApiError::bad_request("type is required: set \"type\": \"file\""))?;
            let device = Device::new(path, &device_type, req.description, req.options, req.local)?;
            store.enable(barrier, device).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE => {
            store.disable(barrier, path).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests;
