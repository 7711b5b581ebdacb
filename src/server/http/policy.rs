//! HTTP layer: ACL policy endpoints (`sys/policies/acl`, the legacy `sys/policy`) and
//! `sys/capabilities-self`. Every handler takes a [`Caller`], so the ACL protects them (for
//! example `sys/policies/acl/*` needs `update` to write). No I/O of its own; storage through
//! the policy store.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::caller::capability;
use super::{ApiError, AppState, Caller, Envelope, is_list, read_json};
use crate::server::policy::PolicyError;

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Barrier(e) => e.into(),
            other => Self::bad_request(other.to_string()),
        }
    }
}

/// Vault's response envelope.
/// The envelope with `data`'s fields also at the top level, as Vault answers the legacy
/// `sys/policy` and `sys/capabilities*` routes.
fn injected(data: Map<String, Value>) -> Value {
    Envelope::new(Value::Object(data))
        .inject_data()
        .into_value()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `sys/policies/acl/:name`: the text is `policy`.
    Acl,
    /// `sys/policy/:name`: the text is read as `rules`, and may be written as `rules`.
    Legacy,
}

#[derive(Debug, Default, Deserialize)]
struct WriteRequest {
    policy: Option<String>,
    rules: Option<String>,
}

/// `LIST /v1/sys/policies/acl` (or `GET ?list=true`).
pub(super) async fn acl_list(
    caller: Caller,
    method: Method,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if !is_list(&method, query.as_deref()) {
        return Err(ApiError::method_not_allowed());
    }
    let keys = caller
        .unsealed
        .policies
        .list(&caller.unsealed.barrier)
        .await?;
    Ok(Envelope::new(json!({ "keys": keys })).into_response())
}

/// `GET` or `LIST /v1/sys/policy`: the names as both `policies` and `keys`.
pub(super) async fn legacy_list(caller: Caller, method: Method) -> Result<Response, ApiError> {
    if method != Method::GET && method.as_str() != "LIST" {
        return Err(ApiError::method_not_allowed());
    }
    let keys = caller
        .unsealed
        .policies
        .list(&caller.unsealed.barrier)
        .await?;
    let mut data = Map::new();
    data.insert("policies".into(), json!(keys));
    data.insert("keys".into(), json!(keys));
    Ok(Json(injected(data)).into_response())
}

/// `GET/PUT/POST/DELETE /v1/sys/policies/acl/:name`.
pub(super) async fn acl_policy(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let name = caller
        .path
        .strip_prefix("sys/policies/acl/")
        .unwrap_or_default()
        .to_owned();
    named(
        &state,
        &caller,
        &method,
        query.as_deref(),
        &name,
        body,
        Flavor::Acl,
    )
    .await
}

/// `GET/PUT/POST/DELETE /v1/sys/policy/:name`.
pub(super) async fn legacy_policy(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let name = caller
        .path
        .strip_prefix("sys/policy/")
        .unwrap_or_default()
        .to_owned();
    named(
        &state,
        &caller,
        &method,
        query.as_deref(),
        &name,
        body,
        Flavor::Legacy,
    )
    .await
}

async fn named(
    state: &AppState,
    caller: &Caller,
    method: &Method,
    query: Option<&str>,
    name: &str,
    body: Body,
    flavor: Flavor,
) -> Result<Response, ApiError> {
    let barrier = &caller.unsealed.barrier;
    if is_list(method, query) {
        return Err(ApiError::method_not_allowed());
    }
    // The ACL saw the decoded path; the store acts on the lower-cased name. Check that name's
    // path too, so `ADMIN` cannot slip past a rule written for `admin`.
    let prefix = match flavor {
        Flavor::Acl => "sys/policies/acl",
        Flavor::Legacy => "sys/policy",
    };
    let canonical = format!("{prefix}/{}", name.to_ascii_lowercase());
    if canonical != caller.path && !caller.allows(&canonical, capability(method, query)).await? {
        return Err(ApiError::permission_denied());
    }
    match *method {
        Method::GET => {
            let Some(text) = caller.unsealed.policies.read(barrier, name).await? else {
                return Err(ApiError::not_found());
            };
            let name = name.to_ascii_lowercase();
            Ok(Json(match flavor {
                Flavor::Acl => Envelope::new(json!({ "name": name, "policy": text })).into_value(),
                Flavor::Legacy => {
                    let mut data = Map::new();
                    data.insert("name".into(), json!(name));
                    data.insert("rules".into(), json!(text));
                    injected(data)
                }
            })
            .into_response())
        }
        Method::PUT | Method::POST => {
            let req: WriteRequest = read_json(state, body).await?;
            let mut warnings = Vec::new();
            let mut text = req.policy.unwrap_or_default();
            if text.is_empty()
                && flavor == Flavor::Legacy
                && let Some(rules) = req.rules.filter(|r| !r.is_empty())
            {
                text = rules;
                warnings.push("'rules' is deprecated, please use 'policy' instead".to_owned());
            }
            if text.is_empty() {
                return Err(ApiError::bad_request(
                    "'policy' parameter not supplied or empty",
                ));
            }
            let text = decode_base64(text);
            let stored = caller.unsealed.policies.write(barrier, name, &text).await?;
            if stored != name {
                warnings.insert(0, format!("policy name was converted to {stored}"));
            }
            if warnings.is_empty() {
                Ok(StatusCode::NO_CONTENT.into_response())
            } else {
                Ok(Envelope::new(Value::Null)
                    .warnings(warnings)
                    .into_response())
            }
        }
        Method::DELETE => {
            caller.unsealed.policies.delete(barrier, name).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Vault accepts a base64-encoded policy: text that decodes (to UTF-8) is used decoded.
fn decode_base64(text: String) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or(text)
}

/// A list, or a comma-separated string (Vault's `TypeCommaStringSlice`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Paths {
    List(Vec<String>),
    One(String),
}

impl Paths {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::List(v) => v,
            Self::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct CapabilitiesRequest {
    paths: Option<Paths>,
    /// Deprecated in Vault, still accepted.
    path: Option<Paths>,
}

/// `POST /v1/sys/capabilities-self`: the caller's capabilities on each path, plus
/// `capabilities` when one path was asked.
pub(super) async fn capabilities_self(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    if method != Method::PUT && method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let req: CapabilitiesRequest = read_json(&state, body).await?;
    let mut paths = req.paths.map(Paths::into_vec).unwrap_or_default();
    if paths.is_empty() {
        paths = req.path.map(Paths::into_vec).unwrap_or_default();
    }
    if paths.is_empty() {
        return Err(ApiError::bad_request("missing token or paths"));
    }
    let acl = caller
        .unsealed
        .policies
        .acl_for(&caller.unsealed.barrier, &caller.entry.policies)
        .await?;
    let mut data = Map::new();
    for path in &paths {
        data.insert(path.clone(), json!(acl.capabilities(path)));
    }
    if let [only] = paths.as_slice() {
        data.insert("capabilities".into(), json!(acl.capabilities(only)));
    }
    Ok(Json(injected(data)).into_response())
}

#[cfg(test)]
mod tests;
