//! HTTP layer: parsing of KV v2 request parameters with Vault's lenient typing (numbers may
//! come as strings, version lists as `"1,2"`), and Vault's error strings. Pure, no I/O.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Map, Value};

use super::super::ApiError;
use crate::server::kv::model::parse_duration;
use crate::server::kv::{KvError, MetadataUpdate};

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `vault kv` subcommand Vault's warning suggests for a method.
pub(super) fn subcommand(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" | "HEAD" => "get",
        "PATCH" => "patch",
        "DELETE" => "delete",
        "LIST" => "list",
        _ => "put",
    }
}

pub(super) fn invalid_path_warning(subcommand: &str) -> String {
    format!(
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv {subcommand}' for this operation."
    )
}

/// An integer from a JSON value: a number (integral) or a digit string, as Vault's weak decode.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "1" | "t" | "T" | "TRUE" | "True" => Some(true),
            "false" | "0" | "f" | "F" | "FALSE" | "False" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// An integer query parameter (`?version=3`, `?depth=1`).
pub(super) fn query_int(query: Option<&str>, name: &str) -> Result<Option<i64>, ApiError> {
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == name {
            return v.trim().parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "error converting input {v:?} for field {name:?}: expected an integer"
                ))
            });
        }
    }
    Ok(None)
}

/// `options.cas` of a write or patch. A negative value can never match a version.
pub(super) fn cas(body: &Map<String, Value>) -> Result<Option<u64>, ApiError> {
    let Some(options) = body.get("options").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Object(options) = options else {
        return Err(ApiError::bad_request(format!(
            "options must be a JSON object, got {}",
            type_name(options)
        )));
    };
    let Some(raw) = options.get("cas").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let cas =
        int(raw).ok_or_else(|| ApiError::bad_request("error parsing check-and-set parameter"))?;
    u64::try_from(cas)
        .map(Some)
        .map_err(|_| KvError::CasMismatch.into())
}

/// `data` of a write or patch: required, and a JSON object.
pub(super) fn data(body: &mut Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    match body.remove("data") {
        None | Some(Value::Null) => Err(ApiError::bad_request("no data provided")),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(ApiError::bad_request(format!(
            "data must be a JSON object of key/value pairs, got {}",
            type_name(&other)
        ))),
    }
}

/// `versions` of delete, undelete and destroy: a list of integers or integer strings, a
/// comma-separated string, or one integer (Vault's `TypeCommaIntSlice`). Negative numbers
/// match no version and are dropped; an empty list is refused with Vault's message.
pub(super) fn versions(body: &Map<String, Value>, empty_msg: &str) -> Result<Vec<u64>, ApiError> {
    let bad = |v: &Value| {
        ApiError::bad_request(format!(
            "versions must be integers (a list, or a comma-separated string), got {v}"
        ))
    };
    let raw: Vec<i64> = match body.get("versions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| int(v).ok_or_else(|| bad(v)))
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(|_| bad(&Value::String(s.clone()))))
            .collect::<Result<_, _>>()?,
        Some(v @ Value::Number(_)) => vec![int(v).ok_or_else(|| bad(v))?],
        Some(other) => return Err(bad(other)),
    };
    if raw.is_empty() {
        return Err(ApiError::bad_request(empty_msg));
    }
    Ok(raw
        .into_iter()
        .filter_map(|v| u64::try_from(v).ok())
        .collect())
}

fn max_versions(v: &Value) -> Result<u32, ApiError> {
    int(v).and_then(|i| u32::try_from(i).ok()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "max_versions must be a whole number from 0 to {}, got {v}",
            u32::MAX
        ))
    })
}

fn cas_required(v: &Value) -> Result<bool, ApiError> {
    boolean(v).ok_or_else(|| {
        ApiError::bad_request(format!("cas_required must be true or false, got {v}"))
    })
}

fn duration(v: &Value, allow_negative: bool) -> Result<i64, ApiError> {
    let secs = parse_duration(v)
        .map_err(|e| ApiError::bad_request(format!("delete_version_after: {e}")))?;
    if secs < 0 && !allow_negative {
        return Err(ApiError::bad_request(
            "delete_version_after cannot be negative",
        ));
    }
    Ok(secs)
}

/// The settings of a metadata write or patch. `custom_metadata` values are strings (numbers
/// and booleans are converted, as Vault's weak decode does); `null` removes a key in a patch.
pub(super) fn metadata_update(body: &Map<String, Value>) -> Result<MetadataUpdate, ApiError> {
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let custom_metadata = match field("custom_metadata") {
        None => None,
        Some(Value::Object(m)) => Some(
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "custom_metadata validation failed: value for key {k:?} must be a string, got {}",
                                type_name(other)
                            )));
                        }
                    };
                    Ok((k.clone(), s))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
        ),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "custom_metadata must be a JSON object of strings, got {}",
                type_name(other)
            )));
        }
    };
    Ok(MetadataUpdate {
        max_versions: field("max_versions").map(max_versions).transpose()?,
        cas_required: field("cas_required").map(cas_required).transpose()?,
        delete_version_after: field("delete_version_after")
            .map(|v| duration(v, false))
            .transpose()?,
        custom_metadata,
    })
}

/// The fields of a config write: `(max_versions, cas_required, delete_version_after)`.
pub(super) type ConfigUpdate = (Option<u32>, Option<bool>, Option<i64>);

pub(super) fn config_update(body: &Map<String, Value>) -> Result<ConfigUpdate, ApiError> {
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    Ok((
        field("max_versions").map(max_versions).transpose()?,
        field("cas_required").map(cas_required).transpose()?,
        field("delete_version_after")
            .map(|v| duration(v, true))
            .transpose()?,
    ))
}

/// Vault refuses a `PATCH` that is not `application/merge-patch+json`: 400 without a content
/// type, 415 with another one.
pub(super) fn check_merge_patch(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::bad_request(
            "PATCH requires Content-Type of application/merge-patch+json, got none",
        ));
    };
    let media = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media == "application/merge-patch+json" {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("PATCH requires Content-Type of application/merge-patch+json, got {media:?}"),
        ))
    }
}
