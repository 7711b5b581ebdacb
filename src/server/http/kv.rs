//! HTTP layer: the KV v2 engine at `secret/` (`data/`, `metadata/` list).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, AppState, is_list, read_json, token};
use crate::server::kv;

#[derive(Debug, Default, Deserialize)]
struct WriteRequest {
    data: Option<Map<String, Value>>,
    #[serde(default)]
    options: WriteOptions,
}

#[derive(Debug, Default, Deserialize)]
struct WriteOptions {
    cas: Option<u64>,
}

fn envelope(data: Value) -> Value {
    json!({
        "request_id": uuid::Uuid::new_v4().to_string(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
    })
}

fn query_version(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "version" {
            return v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("version {v:?} is not a non-negative integer"))
            });
        }
    }
    Ok(None)
}

pub(super) async fn secret(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let (unsealed, _entry) = state.core.authenticate(token(&headers).as_deref()).await?;
    let barrier = &unsealed.barrier;
    let (op, rest) = path.split_once('/').unwrap_or((path.as_str(), ""));
    match op {
        "data" => match method {
            Method::GET => {
                let version = query_version(query.as_deref())?;
                match kv::read(barrier, rest, version).await? {
                    // Vault answers a deleted version with 404 and the metadata.
                    Some((None, meta)) => Ok((
                        StatusCode::NOT_FOUND,
                        Json(envelope(json!({ "data": null, "metadata": meta }))),
                    )
                        .into_response()),
                    Some((Some(data), meta)) => {
                        Ok(Json(envelope(json!({ "data": data, "metadata": meta })))
                            .into_response())
                    }
                    None => Err(ApiError::not_found()),
                }
            }
            Method::POST | Method::PUT => {
                let req: WriteRequest = read_json(&state, body).await?;
                let data = req.data.ok_or_else(|| {
                    ApiError::bad_request("no data provided: send {\"data\": {\"key\": \"value\"}}")
                })?;
                let meta = kv::write(barrier, rest, data, req.options.cas).await?;
                Ok(Json(envelope(json!(meta))).into_response())
            }
            Method::DELETE => {
                kv::delete_latest(barrier, rest).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        "metadata" if is_list(&method, query.as_deref()) => {
            let keys = kv::list(barrier, rest).await?;
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(Json(envelope(json!({ "keys": keys }))).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no handler for route \"secret/{path}\". route entry not found."),
        )),
    }
}
