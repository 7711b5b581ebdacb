//! HTTP layer: requests to mounted secrets engines (`/v1/<mount>/...`), routed through the
//! mount table to the KV v2 engine. Network I/O only through axum; storage through the engine.
//!
//! The path arrives decoded by the front door ([`super::path`]), so the ACL and the engine see
//! exactly the path the client meant; the token is resolved by the one resolver. ACL checks
//! follow Vault: a write to a key that does not exist needs `create`, to one that does
//! needs `update`; `PATCH` needs `patch`; `LIST` (or `GET ?list=true`) needs `list`.

mod data;
mod meta;
mod params;
#[cfg(test)]
pub(super) mod tests;
#[cfg(test)]
mod tests_data;
#[cfg(test)]
mod tests_meta;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{ApiError, AppState, Authenticated, Envelope, RequestPath, is_list, read_json};
use crate::server::kv::{Kv, KvError};
use crate::server::mounts::MountEntry;
use crate::server::policy::Capability;

impl From<KvError> for ApiError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::InvalidPath { .. }
            | KvError::CasMismatch
            | KvError::CasRequired
            | KvError::InvalidRequest(_) => Self::bad_request(e.to_string()),
            KvError::Corrupt { .. } | KvError::Barrier(_) => Self::internal(&e),
        }
    }
}

/// Vault's response envelope around `data`.
pub(super) fn envelope(data: Value, warnings: Vec<String>) -> Value {
    Envelope::new(data)
        .warnings(warnings)
        .mount_type("kv")
        .into_value()
}

fn ok(data: Value) -> Response {
    Json(envelope(data, Vec::new())).into_response()
}

/// A response with only warnings: 200 with the envelope, or 204 when there are none.
fn done(warnings: Vec<String>) -> Response {
    if warnings.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Json(envelope(Value::Null, warnings)).into_response()
    }
}

/// Vault's 404 that still carries data (a deleted or destroyed version's metadata).
fn not_found_with(data: Value) -> Response {
    (StatusCode::NOT_FOUND, Json(envelope(data, Vec::new()))).into_response()
}

/// Vault's 404 for a path the engine has no handler for, with its warning.
fn invalid_path(warning: &str) -> Response {
    not_found_with_warning(warning.to_owned())
}

fn not_found_with_warning(warning: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(envelope(Value::Null, vec![warning])),
    )
        .into_response()
}

fn no_handler(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no handler for route {path:?}. route entry not found."),
    )
}

/// One request to a KV v2 mount.
pub(super) struct Ctx<'a> {
    state: &'a AppState,
    caller: &'a Authenticated,
    mount: &'a MountEntry,
    kv: Kv<'a>,
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
}

impl Ctx<'_> {
    /// The ACL path of `rest` inside this mount (`secret/` + `data/app/db`).
    fn acl_path(&self, rest: &str) -> String {
        format!("{}{rest}", self.mount.path)
    }

    async fn require(&self, rest: &str, cap: Capability) -> Result<(), ApiError> {
        self.caller.require(&self.acl_path(rest), cap).await
    }

    /// For a write: `create` when `key` does not exist yet, else `update` (Vault's existence
    /// check).
    async fn require_write(&self, rest: &str, key: &str) -> Result<(), ApiError> {
        // The root policy grants both: skip the existence read.
        if self.caller.entry.policies.iter().any(|p| p == "root") {
            return Ok(());
        }
        let cap = if self.kv.exists(key).await? {
            Capability::Update
        } else {
            Capability::Create
        };
        self.require(rest, cap).await
    }

    /// The request body as a JSON object (an empty body is an empty object).
    async fn body(&self, body: Body) -> Result<Map<String, Value>, ApiError> {
        match read_json::<Value>(self.state, body).await? {
            Value::Null => Ok(Map::new()),
            Value::Object(m) => Ok(m),
            other => Err(ApiError::bad_request(format!(
                "request body must be a JSON object, got {}",
                params::type_name(&other)
            ))),
        }
    }

    fn is_list(&self) -> bool {
        is_list(&self.method, self.query.as_deref())
    }

    fn query_param(&self, name: &str) -> Result<Option<i64>, ApiError> {
        params::query_int(self.query.as_deref(), name)
    }
}

/// `/v1/{*path}`: everything not routed elsewhere. `sys/` paths keep the router's fallback.
pub(super) async fn logical(State(state): State<AppState>, req: Request) -> Response {
    let Some(path) = req.extensions().get::<RequestPath>().cloned() else {
        return super::fallback(State(state), req).await;
    };
    if path.as_str().split('/').next() == Some("sys") {
        return super::fallback(State(state), req).await;
    }
    serve(&state, &path, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn serve(state: &AppState, path: &RequestPath, req: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    // ACL checks come later, once the operation (and, for writes, existence) is known.
    let caller = Authenticated::resolve(&mut parts, state).await?;
    let mounts = caller.unsealed.mounts();
    let _gate = mounts.gate().await;
    let table = mounts.table().await?;
    // The engine sees the trailing `/` of a LIST prefix.
    let full = path.after("").unwrap_or_default();
    let Some((mount, rest)) = table.route(&full) else {
        // As Vault: the ACL is checked before the route, so a refusal is 403, not 404.
        let cap = super::caller::capability(&parts.method, parts.uri.query());
        caller.require(path.as_str(), cap).await?;
        return Err(no_handler(path.as_str()));
    };
    let ctx = Ctx {
        state,
        caller: &caller,
        mount,
        kv: mounts.kv(&mount.uuid),
        method: parts.method,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
    };
    dispatch(ctx, rest, body).await
}

const ROOT_WARNING: &str =
    "Non-listing operations on the root of a K/V v2 mount are not supported.";

async fn dispatch(ctx: Ctx<'_>, rest: &str, body: Body) -> Result<Response, ApiError> {
    let (op, key) = rest.split_once('/').unwrap_or((rest, ""));
    if ctx.is_list() {
        return match op {
            "metadata" => meta::list(ctx, key).await,
            _ => Ok(not_found_with_warning(params::invalid_path_warning("list"))),
        };
    }
    let known = matches!(
        op,
        "data" | "metadata" | "delete" | "undelete" | "destroy" | "subkeys"
    );
    if known && key.is_empty() {
        return Ok(invalid_path(ROOT_WARNING));
    }
    match (op, &ctx.method) {
        ("config", _) if !key.is_empty() => Ok(not_found_with_warning(
            params::invalid_path_warning(params::subcommand(&ctx.method)),
        )),
        ("config", _) => meta::config(ctx, body).await,
        ("data", _) => data::data(ctx, key, body).await,
        ("metadata", _) => meta::metadata(ctx, key, body).await,
        ("delete" | "undelete" | "destroy", &Method::POST | &Method::PUT) => {
            data::versions_op(ctx, op, key, body).await
        }
        ("subkeys", &Method::GET | &Method::HEAD) => data::subkeys(ctx, key).await,
        ("delete" | "undelete" | "destroy" | "subkeys", _) => Err(ApiError::method_not_allowed()),
        _ => Ok(not_found_with_warning(params::invalid_path_warning(
            params::subcommand(&ctx.method),
        ))),
    }
}
