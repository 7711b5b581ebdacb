//! HTTP layer: KV v2 `data/`, `delete/`, `undelete/`, `destroy/` and `subkeys/` endpoints.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::ApiError;
use super::{Ctx, not_found_with, ok, params};
use crate::server::kv::{self, PatchOutcome, ReadOutcome};
use crate::server::policy::Capability;

/// `?version=N`; 0 or negative means the current version, as in Vault.
fn version(ctx: &Ctx<'_>) -> Result<Option<u64>, ApiError> {
    Ok(ctx
        .query_param("version")?
        .and_then(|v| u64::try_from(v).ok()))
}

/// `GET|POST|PUT|PATCH|DELETE <mount>/data/<key>`.
pub(super) async fn data(ctx: Ctx<'_>, key: &str, body: Body) -> Result<Response, ApiError> {
    let rest = format!("data/{key}");
    match ctx.method {
        Method::GET | Method::HEAD => {
            ctx.require(&rest, Capability::Read).await?;
            match ctx.kv.read(key, version(&ctx)?).await? {
                ReadOutcome::NotFound => Err(ApiError::not_found()),
                ReadOutcome::Gone(info) => {
                    Ok(not_found_with(json!({ "data": null, "metadata": info })))
                }
                ReadOutcome::Found { data, info } => {
                    Ok(ok(json!({ "data": data, "metadata": info })))
                }
            }
        }
        Method::POST | Method::PUT => {
            ctx.require_write(&rest, key).await?;
            let mut body = ctx.body(body).await?;
            let data = params::data(&mut body)?;
            let cas = params::cas(&body)?;
            let info = ctx.kv.write(key, data, cas).await?;
            Ok(ok(json!(info)))
        }
        Method::PATCH => {
            params::check_merge_patch(&ctx.headers)?;
            ctx.require(&rest, Capability::Patch).await?;
            let mut body = ctx.body(body).await?;
            let data = params::data(&mut body)?;
            let cas = params::cas(&body)?;
            match ctx.kv.patch(key, &data, cas).await? {
                PatchOutcome::NotFound => Err(ApiError::not_found()),
                PatchOutcome::Gone(info) => Ok(not_found_with(json!(info))),
                PatchOutcome::Written(info) => Ok(ok(json!(info))),
            }
        }
        Method::DELETE => {
            ctx.require(&rest, Capability::Delete).await?;
            ctx.kv.delete_latest(key).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `POST|PUT <mount>/{delete,undelete,destroy}/<key>` with `{"versions": [...]}`.
pub(super) async fn versions_op(
    ctx: Ctx<'_>,
    op: &str,
    key: &str,
    body: Body,
) -> Result<Response, ApiError> {
    ctx.require(&format!("{op}/{key}"), Capability::Update)
        .await?;
    let body = ctx.body(body).await?;
    // Vault's two spellings of the same message.
    let empty = if op == "destroy" {
        "no version number provided"
    } else {
        "No version number provided"
    };
    let versions = params::versions(&body, empty)?;
    match op {
        "delete" => ctx.kv.delete_versions(key, &versions).await?,
        "undelete" => ctx.kv.undelete(key, &versions).await?,
        _ => ctx.kv.destroy(key, &versions).await?,
    };
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET <mount>/subkeys/<key>?version=&depth=`: the structure of a version, values as `null`.
pub(super) async fn subkeys(ctx: Ctx<'_>, key: &str) -> Result<Response, ApiError> {
    ctx.require(&format!("subkeys/{key}"), Capability::Read)
        .await?;
    let depth = ctx
        .query_param("depth")?
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(0);
    match ctx.kv.read(key, version(&ctx)?).await? {
        ReadOutcome::NotFound => Err(ApiError::not_found()),
        ReadOutcome::Gone(info) => Ok(not_found_with(json!({ "subkeys": null, "metadata": info }))),
        ReadOutcome::Found { data, info } => Ok(ok(json!({
            "subkeys": Value::Object(kv::subkeys(&data, depth)),
            "metadata": info,
        }))),
    }
}
