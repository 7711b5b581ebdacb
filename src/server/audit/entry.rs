//! Core layer: audit entries (Vault's JSON shape), with every string value, token and
//! accessor replaced by its HMAC. Pure.

use serde_json::{Map, Value, json};

use super::Hasher;

/// What the audit log says about the caller.
#[derive(Debug, Clone, Default)]
pub struct AuthInfo {
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    pub metadata: Value,
}

/// The request as the audit log records it.
#[derive(Debug, Clone)]
pub struct RequestInfo<'a> {
    pub id: &'a str,
    pub operation: &'a str,
    pub path: &'a str,
    pub client_token: Option<&'a str>,
    pub remote_address: Option<String>,
    pub data: Option<&'a Value>,
}

/// Replaces every string leaf with its HMAC; keys, numbers, booleans and nulls stay.
pub fn hash_values(h: &Hasher, v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(h.hash(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| hash_values(h, x)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), hash_values(h, x)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

fn auth_json(h: &Hasher, auth: Option<&AuthInfo>, token: Option<&str>) -> Value {
    match auth {
        None => json!({}),
        Some(a) => json!({
            "client_token": token.map(|t| h.hash(t)),
            "accessor": h.hash(&a.accessor),
            "display_name": a.display_name,
            "policies": a.policies,
            "token_policies": a.policies,
            "metadata": a.metadata,
        }),
    }
}

fn request_json(h: &Hasher, r: &RequestInfo<'_>) -> Value {
    json!({
        "id": r.id,
        "operation": r.operation,
        "client_token": r.client_token.map(|t| h.hash(t)),
        "path": r.path,
        "data": r.data.map(|d| hash_values(h, d)),
        "remote_address": r.remote_address,
    })
}

/// The `request` line.
pub fn request_entry(
    h: &Hasher,
    time: &str,
    auth: Option<&AuthInfo>,
    r: &RequestInfo<'_>,
) -> Value {
    json!({
        "time": time,
        "type": "request",
        "auth": auth_json(h, auth, r.client_token),
        "request": request_json(h, r),
    })
}

/// The `response` line. `body` is the response JSON (its `auth.client_token` and
/// `auth.accessor` are hashed like every other string).
pub fn response_entry(
    h: &Hasher,
    time: &str,
    auth: Option<&AuthInfo>,
    r: &RequestInfo<'_>,
    status: u16,
    body: Option<&Value>,
) -> Value {
    let mut response = json!({ "status_code": status });
    if let Some(b) = body {
        for key in ["data", "auth", "errors", "warnings"] {
            if let Some(v) = b.get(key).filter(|v| !v.is_null()) {
                response[key] = if key == "errors" {
                    v.clone()
                } else {
                    hash_values(h, v)
                };
            }
        }
    }
    json!({
        "time": time,
        "type": "response",
        "auth": auth_json(h, auth, r.client_token),
        "request": request_json(h, r),
        "response": response,
    })
}
