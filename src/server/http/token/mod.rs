//! HTTP layer: Vault's token auth method at `/v1/auth/token/*` (create, lookup, renew and
//! revoke, by token, by accessor and for the caller's own token). Network I/O only through
//! axum; every handler runs behind the [`Caller`] check, token state lives in the core.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{ApiError, AppState, Caller, Envelope, read_json};
use crate::server::token::fields::{parse_duration, parse_string};
use crate::server::token::{
    AuthBlock, CreateOptions, CreateRequest, LookupData, TokenEntry, TokenError,
};

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::BadToken => Self::new(StatusCode::FORBIDDEN, e.to_string()),
            TokenError::Barrier(inner) => inner.into(),
            TokenError::InvalidRequest(_)
            | TokenError::NotFound
            | TokenError::PoliciesNotSubset
            | TokenError::NotRenewable(_) => Self::bad_request(e.to_string()),
        }
    }
}

/// Vault's response envelope, with `mount_type` as the token store reports it.
fn envelope(data: Option<Value>, auth: Option<&AuthBlock>, warnings: &[String]) -> Response {
    Envelope::new(data.unwrap_or(Value::Null))
        .auth(json!(auth))
        .warnings(warnings.to_vec())
        .mount_type("token")
        .into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A required string field (`token`, `accessor`); Vault's message when it is missing.
fn required(body: &Map<String, Value>, field: &str, missing: &str) -> Result<String, ApiError> {
    match parse_string(field, body.get(field))? {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(ApiError::bad_request(format!(
            "{missing}: send {{\"{field}\": \"...\"}} in the request body"
        ))),
    }
}

fn increment(body: &Map<String, Value>) -> Result<u64, ApiError> {
    Ok(parse_duration("increment", body.get("increment"))?.unwrap_or(0))
}

/// The JSON body, plus query parameters for `GET` (as Vault reads them).
async fn request_data(
    state: &AppState,
    method: &Method,
    query: Option<&str>,
    body: Body,
) -> Result<Map<String, Value>, ApiError> {
    let mut data: Map<String, Value> = read_json(state, body).await?;
    if method == Method::GET {
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            data.entry(k.into_owned())
                .or_insert_with(|| Value::String(v.into_owned()));
        }
    }
    Ok(data)
}

/// `/v1/auth/token/{op}`: dispatches on the operation and method.
pub(super) async fn route(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let op = caller
        .path
        .strip_prefix("auth/token/")
        .unwrap_or_default()
        .to_owned();
    let read = method == Method::GET;
    let write = method == Method::POST || method == Method::PUT;
    let allowed = match op.as_str() {
        "lookup" | "lookup-self" => read || write,
        "create" | "create-orphan" | "lookup-accessor" | "renew" | "renew-self"
        | "renew-accessor" | "revoke" | "revoke-self" | "revoke-accessor" | "revoke-orphan"
        | "tidy" => write,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no handler for route \"auth/token/{op}\". route entry not found."),
            ));
        }
    };
    if !allowed {
        return Err(ApiError::method_not_allowed());
    }
    let data = request_data(&state, &method, query.as_deref(), body).await?;
    match op.as_str() {
        "create" => create(&caller, &data, false).await,
        "create-orphan" => create(&caller, &data, true).await,
        "lookup-self" => Ok(lookup_self(&caller)),
        "lookup" => lookup(&caller, &data).await,
        "lookup-accessor" => lookup_accessor(&caller, &data).await,
        "renew-self" => renew(&caller, caller.entry.hash.clone(), &caller.token, &data).await,
        "renew" => {
            let token = required(&data, "token", "missing token ID")?;
            let hash = caller
                .unsealed
                .tokens
                .valid_hash(&caller.unsealed.barrier, &token)
                .await?
                .ok_or(TokenError::NotFound)?;
            renew(&caller, hash, &token, &data).await
        }
        "renew-accessor" => {
            let accessor = required(&data, "accessor", "missing accessor")?;
            let hash = caller
                .unsealed
                .tokens
                .accessor_hash(&caller.unsealed.barrier, &accessor)
                .await?
                .ok_or_else(|| ApiError::bad_request("invalid accessor"))?;
            renew(&caller, hash, "", &data).await
        }
        "revoke-self" => revoke(&caller, &caller.entry.hash.clone()).await,
        "revoke" => {
            let token = required(&data, "token", "missing token ID")?;
            // Expired entries are deleted too; Vault answers 204 for unknown tokens.
            match caller.unsealed.tokens.input_hash(&token) {
                Some(hash) => revoke(&caller, &hash).await,
                None => Ok(no_content()),
            }
        }
        "revoke-accessor" => revoke_accessor(&caller, &data).await,
        "revoke-orphan" => revoke_orphan(&caller, &data).await,
        "tidy" => Ok(tidy(&caller)),
        _ => Err(ApiError::method_not_allowed()),
    }
}

async fn create(
    caller: &Caller,
    data: &Map<String, Value>,
    orphan: bool,
) -> Result<Response, ApiError> {
    let req = CreateRequest::from_json(data)?;
    let opts = CreateOptions {
        sudo: caller.is_sudo().await?,
        orphan,
        path: if orphan {
            "auth/token/create-orphan".into()
        } else {
            "auth/token/create".into()
        },
    };
    let issued = caller
        .unsealed
        .tokens
        .create(&caller.unsealed.barrier, &caller.entry, &req, &opts)
        .await?;
    // Accessors revoke tokens, so they stay out of the log like the tokens themselves.
    tracing::info!(policies = ?issued.entry.policies, orphan = issued.entry.parent.is_none(), "token created");
    let mut warnings = issued.warnings.clone();
    for p in &issued.entry.policies {
        // As Vault: a warning, not an error, since the policy may be written later.
        if matches!(
            caller
                .unsealed
                .policies
                .read(&caller.unsealed.barrier, p)
                .await,
            Ok(None)
        ) {
            warnings.push(format!("Policy {p:?} does not exist"));
        }
    }
    Ok(envelope(None, Some(&issued.auth()), &warnings))
}

fn lookup_response(entry: &TokenEntry, id: &str) -> Response {
    let data = LookupData::new(entry, id, crate::server::unix_now());
    envelope(Some(json!(data)), None, &[])
}

/// The caller's own token, as this request left it (after its use was counted).
fn lookup_self(caller: &Caller) -> Response {
    lookup_response(&caller.entry, &caller.token)
}

async fn lookup(caller: &Caller, data: &Map<String, Value>) -> Result<Response, ApiError> {
    let token = parse_string("token", data.get("token"))?.unwrap_or_default();
    let token = token.trim();
    if token.is_empty() || token == caller.token.as_str() {
        return Ok(lookup_self(caller));
    }
    let entry = caller
        .unsealed
        .tokens
        .lookup(&caller.unsealed.barrier, token)
        .await?
        .ok_or(TokenError::BadToken)?;
    Ok(lookup_response(&entry, token))
}

async fn lookup_accessor(caller: &Caller, data: &Map<String, Value>) -> Result<Response, ApiError> {
    let accessor = required(data, "accessor", "missing accessor")?;
    let entry = caller
        .unsealed
        .tokens
        .lookup_accessor(&caller.unsealed.barrier, &accessor)
        .await?
        .ok_or_else(|| ApiError::bad_request("invalid accessor"))?;
    // Vault blanks the token ID in accessor lookups; this store never knew it anyway.
    Ok(lookup_response(&entry, ""))
}

async fn renew(
    caller: &Caller,
    hash: String,
    client_token: &str,
    data: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let increment = increment(data)?;
    let (entry, warnings) = caller
        .unsealed
        .tokens
        .renew(&caller.unsealed.barrier, &hash, increment)
        .await?;
    let auth = AuthBlock::new(&entry, client_token, entry.lease_ttl);
    Ok(envelope(None, Some(&auth), &warnings))
}

async fn revoke(caller: &Caller, hash: &str) -> Result<Response, ApiError> {
    let n = caller
        .unsealed
        .tokens
        .revoke_tree(&caller.unsealed.barrier, hash)
        .await?;
    tracing::info!(tokens = n, "token revoked with its children");
    Ok(no_content())
}

async fn revoke_accessor(caller: &Caller, data: &Map<String, Value>) -> Result<Response, ApiError> {
    let accessor = required(data, "accessor", "missing accessor")?;
    let tokens = &caller.unsealed.tokens;
    match tokens
        .accessor_hash(&caller.unsealed.barrier, &accessor)
        .await?
    {
        Some(hash) => revoke(caller, &hash).await,
        None => Ok(envelope(
            None,
            None,
            &["No token found with this accessor".to_owned()],
        )),
    }
}

async fn revoke_orphan(caller: &Caller, data: &Map<String, Value>) -> Result<Response, ApiError> {
    let token = required(data, "token", "missing token ID")?;
    if !caller.is_sudo().await? {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to revoke and orphan",
        ));
    }
    let barrier = &caller.unsealed.barrier;
    let hash = caller
        .unsealed
        .tokens
        .valid_hash(barrier, &token)
        .await?
        .ok_or_else(|| ApiError::bad_request("token to revoke not found"))?;
    caller.unsealed.tokens.revoke_orphan(barrier, &hash).await?;
    tracing::info!("token revoked; its children are now orphans");
    Ok(no_content())
}

/// `auth/token/tidy`: 202 and a background run, or 200 with a warning while one runs, as
/// Vault.
fn tidy(caller: &Caller) -> Response {
    // A weak handle: once the server seals (or rotates), the run stops instead of keeping
    // the old keyring alive.
    let unsealed = Arc::downgrade(&caller.unsealed);
    let started =
        (caller.unsealed.tokens).spawn_tidy(move || unsealed.upgrade().map(|u| u.barrier.clone()));
    let warning = if started {
        "Tidy operation successfully started. Any information from the operation will be printed to the server logs."
    } else {
        "Tidy operation already in progress."
    };
    let mut resp = envelope(None, None, &[warning.to_owned()]);
    if started {
        *resp.status_mut() = StatusCode::ACCEPTED;
    }
    resp
}

#[cfg(test)]
mod tests;
