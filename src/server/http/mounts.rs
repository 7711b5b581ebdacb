//! HTTP layer: `sys/mounts` (list, enable, read, disable) and `sys/mounts/<path>/tune`, in
//! Vault's shapes. Network I/O only through axum; the table lives in [`crate::server::mounts`].

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{ApiError, AppState, Authenticated, Caller, Envelope, read_json};
use crate::server::kv::model::parse_duration;
use crate::server::mounts::{
    self, MountConfig, MountEntry, MountError, NewMount, SYSTEM_MAX_TTL, Tune,
};

impl From<MountError> for ApiError {
    fn from(e: MountError) -> Self {
        match e {
            MountError::Kv(e) => e.into(),
            MountError::Corrupt(_) | MountError::Barrier(_) => Self::internal(&e),
            MountError::InvalidPath { .. }
            | MountError::Reserved { .. }
            | MountError::InUse { .. }
            | MountError::UnsupportedType { .. }
            | MountError::InvalidOption(_)
            | MountError::NotFound { .. } => Self::bad_request(e.to_string()),
        }
    }
}

const RUNNING_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "+builtin.sealkeep");

fn entry_json(e: &MountEntry) -> Value {
    json!({
        "accessor": e.accessor,
        "config": {
            "default_lease_ttl": e.config.default_lease_ttl,
            "force_no_cache": e.config.force_no_cache,
            "max_lease_ttl": e.config.max_lease_ttl,
        },
        "deprecation_status": "supported",
        "description": e.description,
        "external_entropy_access": false,
        "local": e.local,
        "options": e.options,
        "plugin_version": "",
        "running_plugin_version": RUNNING_VERSION,
        "running_sha256": "",
        "seal_wrap": e.seal_wrap,
        "type": e.kind,
        "uuid": e.uuid,
    })
}

/// Vault's sys envelope; like Vault, the fields of `data` are repeated at the top level.
fn sys_response(data: Map<String, Value>) -> Response {
    Envelope::new(Value::Object(data))
        .mount_type("system")
        .inject_data()
        .into_response()
}

/// `GET /v1/sys/mounts`.
pub(super) async fn list(caller: Caller, method: Method) -> Result<Response, ApiError> {
    if !matches!(method, Method::GET | Method::HEAD) {
        return Err(ApiError::method_not_allowed());
    }
    let table = caller.unsealed.mounts().table().await?;
    let data = table
        .entries
        .iter()
        .map(|e| (e.path.clone(), entry_json(e)))
        .collect();
    Ok(sys_response(data))
}

/// `/v1/sys/mounts/<path>` (GET, POST/PUT, DELETE) and `/v1/sys/mounts/<path>/tune`.
pub(super) async fn mount_path(
    caller: Caller,
    State(state): State<AppState>,
    method: Method,
    body: Body,
) -> Result<Response, ApiError> {
    // The path the front door decoded (once) and the ACL checked: never decoded again.
    let rest = caller.path.strip_prefix("sys/mounts/").unwrap_or_default();
    let (path, is_tune) = match rest.strip_suffix("/tune") {
        Some(p) => (p.to_owned(), true),
        None => (rest.to_owned(), false),
    };
    let mounts = caller.unsealed.mounts();
    match (is_tune, method) {
        (false, Method::GET | Method::HEAD) => {
            let entry = find(&caller, &path).await?;
            Ok(sys_response(as_map(entry_json(&entry))))
        }
        (false, Method::POST | Method::PUT) => {
            let body = body_object(&state, body).await?;
            mounts.mount(&path, new_mount(&body)?).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (false, Method::DELETE) => {
            mounts.unmount(&path).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (true, Method::GET | Method::HEAD) => {
            let e = find(&caller, &path).await?;
            let ttl = |t: u64| if t == 0 { SYSTEM_MAX_TTL } else { t };
            Ok(sys_response(as_map(json!({
                "default_lease_ttl": ttl(e.config.default_lease_ttl),
                "max_lease_ttl": ttl(e.config.max_lease_ttl),
                "force_no_cache": e.config.force_no_cache,
                "description": e.description,
                "options": e.options,
            }))))
        }
        (true, Method::POST | Method::PUT) => {
            let body = body_object(&state, body).await?;
            mounts.tune(&path, tune(&body)?).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `GET /v1/sys/internal/ui/mounts/<path>`: the mount serving `path`, which the `vault kv`
/// CLI reads first to learn that the engine is KV version 2. The token must have some
/// capability on the path, its `data/` or `metadata/` form, or the mount itself (Vault looks
/// at every path under the mount; these are the ones a KV client uses).
pub(super) async fn ui_mount(who: Authenticated, method: Method) -> Result<Response, ApiError> {
    if !matches!(method, Method::GET | Method::HEAD) {
        return Err(ApiError::method_not_allowed());
    }
    let path = who
        .path
        .strip_prefix("sys/internal/ui/mounts/")
        .unwrap_or_default();
    let unsealed = &who.unsealed;
    let table = unsealed.mounts().table().await?;
    let Some((mount, rest)) = table.route(path) else {
        return Err(ApiError::permission_denied());
    };
    let rest = rest.trim_end_matches('/');
    let candidates = [
        mount.path.clone(),
        format!("{}{rest}", mount.path),
        format!("{}data/{rest}", mount.path),
        format!("{}metadata/{rest}", mount.path),
    ];
    let mut allowed = false;
    for p in &candidates {
        let caps = unsealed
            .policies
            .capabilities(&unsealed.barrier, &who.entry, p)
            .await?;
        if caps.iter().any(|c| *c != "deny") {
            allowed = true;
            break;
        }
    }
    if !allowed {
        return Err(ApiError::permission_denied());
    }
    let mut data = as_map(entry_json(mount));
    data.insert("path".into(), json!(mount.path));
    Ok(sys_response(data))
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

async fn find(caller: &Caller, path: &str) -> Result<MountEntry, ApiError> {
    let normalized = mounts::normalize_path(path)?;
    caller
        .unsealed
        .mounts()
        .table()
        .await?
        .get(&normalized)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("no mount at {normalized:?}")))
}

async fn body_object(state: &AppState, body: Body) -> Result<Map<String, Value>, ApiError> {
    match read_json::<Value>(state, body).await? {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("request body must be a JSON object")),
    }
}

fn string_field(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be a string, got {other}"
        ))),
    }
}

fn bool_field(body: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be true or false, got {other}"
        ))),
    }
}

/// Mount options are strings in Vault; numbers and booleans are converted.
fn options(body: &Map<String, Value>) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    match body.get("options") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                other => Err(ApiError::bad_request(format!(
                    "options.{k} must be a string, got {other}"
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(ApiError::bad_request(format!(
            "options must be a JSON object of strings, got {other}"
        ))),
    }
}

fn ttl(v: Option<&Value>, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let secs = parse_duration(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))?;
    u64::try_from(secs)
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("{name} cannot be negative")))
}

fn new_mount(body: &Map<String, Value>) -> Result<NewMount, ApiError> {
    let kind = string_field(body, "type")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("backend type must be specified"))?;
    let config = match body.get("config") {
        Some(Value::Object(c)) => MountConfig {
            default_lease_ttl: ttl(c.get("default_lease_ttl"), "default_lease_ttl")?.unwrap_or(0),
            max_lease_ttl: ttl(c.get("max_lease_ttl"), "max_lease_ttl")?.unwrap_or(0),
            force_no_cache: bool_field(c, "force_no_cache")?,
        },
        None | Some(Value::Null) => MountConfig::default(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "config must be a JSON object, got {other}"
            )));
        }
    };
    Ok(NewMount {
        kind,
        description: string_field(body, "description")?.unwrap_or_default(),
        options: options(body)?.unwrap_or_default(),
        config,
        local: bool_field(body, "local")?,
        seal_wrap: bool_field(body, "seal_wrap")?,
    })
}

fn tune(body: &Map<String, Value>) -> Result<Tune, ApiError> {
    Ok(Tune {
        description: string_field(body, "description")?,
        default_lease_ttl: ttl(body.get("default_lease_ttl"), "default_lease_ttl")?,
        max_lease_ttl: ttl(body.get("max_lease_ttl"), "max_lease_ttl")?,
        options: options(body)?,
    })
}
