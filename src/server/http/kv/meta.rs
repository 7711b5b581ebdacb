//! HTTP layer: KV v2 `metadata/` (read, write, patch, delete, LIST) and `config` endpoints.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::super::ApiError;
use super::{Ctx, done, ok, params};
use crate::server::kv::model::go_duration;
use crate::server::policy::Capability;

/// `GET|POST|PUT|PATCH|DELETE <mount>/metadata/<key>`.
pub(super) async fn metadata(ctx: Ctx<'_>, key: &str, body: Body) -> Result<Response, ApiError> {
    let rest = format!("metadata/{key}");
    match ctx.method {
        Method::GET | Method::HEAD => {
            ctx.require(&rest, Capability::Read).await?;
            match ctx.kv.metadata(key).await? {
                None => Err(ApiError::not_found()),
                Some(meta) => Ok(ok(json!(meta.info()))),
            }
        }
        Method::POST | Method::PUT => {
            ctx.require_write(&rest, key).await?;
            let body = ctx.body(body).await?;
            let update = params::metadata_update(&body)?;
            Ok(done(ctx.kv.write_metadata(key, &update).await?))
        }
        Method::PATCH => {
            params::check_merge_patch(&ctx.headers)?;
            ctx.require(&rest, Capability::Patch).await?;
            let body = ctx.body(body).await?;
            let update = params::metadata_update(&body)?;
            match ctx.kv.patch_metadata(key, &update).await? {
                None => Err(ApiError::not_found()),
                Some(warnings) => Ok(done(warnings)),
            }
        }
        Method::DELETE => {
            ctx.require(&rest, Capability::Delete).await?;
            ctx.kv.delete_metadata(key).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `LIST <mount>/metadata/<prefix>` (or `GET ?list=true`): `{"keys": [...]}`, folders ending
/// in `/`; 404 when there is nothing, as Vault.
pub(super) async fn list(ctx: Ctx<'_>, prefix: &str) -> Result<Response, ApiError> {
    ctx.require(&format!("metadata/{prefix}"), Capability::List)
        .await?;
    let keys = ctx.kv.list(prefix).await?;
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(ok(json!({ "keys": keys })))
}

/// `GET|POST|PUT <mount>/config`: `max_versions`, `cas_required`, `delete_version_after`.
pub(super) async fn config(ctx: Ctx<'_>, body: Body) -> Result<Response, ApiError> {
    match ctx.method {
        Method::GET | Method::HEAD => {
            ctx.require("config", Capability::Read).await?;
            let c = ctx.kv.config().await?;
            Ok(ok(json!({
                "max_versions": c.max_versions,
                "cas_required": c.cas_required,
                "delete_version_after": go_duration(c.delete_version_after),
            })))
        }
        Method::POST | Method::PUT => {
            ctx.require("config", Capability::Update).await?;
            let body = ctx.body(body).await?;
            let (max_versions, cas_required, dva) = params::config_update(&body)?;
            if max_versions.is_some() || cas_required.is_some() || dva.is_some() {
                ctx.kv
                    .update_config(|c| {
                        if let Some(m) = max_versions {
                            c.max_versions = m;
                        }
                        if let Some(r) = cas_required {
                            c.cas_required = r;
                        }
                        // Vault: negative disables, zero clears, positive sets.
                        if let Some(d) = dva {
                            c.delete_version_after = if d < 0 { -1 } else { d };
                        }
                    })
                    .await?;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
