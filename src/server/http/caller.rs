//! HTTP layer: the authenticated caller of a request, as an axum extractor. Every handler that
//! serves a protected path takes a [`Caller`]: extracting it resolves the client token and
//! checks the ACL for the request's path and capability, so no handler can forget the check.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use zeroize::Zeroizing;

use super::{ApiError, AppState, is_list, token};
use crate::server::core::Unsealed;
use crate::server::policy::{self, Capability};
use crate::server::token::TokenEntry;

/// An authenticated, authorized request.
#[derive(Clone)]
pub struct Caller {
    pub unsealed: Arc<Unsealed>,
    pub entry: TokenEntry,
    /// The client token as sent (for `*-self` endpoints); zeroized on drop, never logged.
    pub token: Arc<Zeroizing<String>>,
    /// The request path without `/v1/`, as the ACL saw it.
    pub path: String,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("accessor", &self.entry.accessor)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The capability a request needs, from its method. Writes need `update`; handlers that can
/// tell a create from an update (KV) check `create` themselves through [`Caller::allows`].
pub fn capability(method: &Method, query: Option<&str>) -> Capability {
    match method.as_str() {
        "LIST" => Capability::List,
        "GET" | "HEAD" if is_list(method, query) => Capability::List,
        "GET" | "HEAD" => Capability::Read,
        "PATCH" => Capability::Patch,
        "DELETE" => Capability::Delete,
        _ => Capability::Update,
    }
}

/// The logical path the ACL checks: `/v1/` stripped, percent-decoded (as axum decodes the
/// path handlers see, so an encoded `%61pp` cannot slip past a deny on `app`). Encoded
/// slashes, `.`/`..` segments and control characters are refused.
pub fn logical_path(raw: &str) -> Result<String, ApiError> {
    let raw = raw
        .strip_prefix("/v1/")
        .unwrap_or(raw)
        .trim_end_matches('/');
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(ApiError::bad_request(
            "encoded slashes (%2F, %5C) are not allowed in paths; use plain '/' between segments",
        ));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::bad_request("invalid percent-encoding in the path"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let path =
        String::from_utf8(out).map_err(|_| ApiError::bad_request("the path is not valid UTF-8"))?;
    if path.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "control characters are not allowed in paths",
        ));
    }
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(ApiError::bad_request(
            "path segments '.' and '..' are not allowed; use the full path",
        ));
    }
    Ok(path)
}

impl Caller {
    /// Whether the caller's policies grant `cap` on `path` (for finer checks in handlers).
    pub async fn allows(&self, path: &str, cap: Capability) -> Result<bool, ApiError> {
        Ok(policy::check(&self.unsealed.barrier, &self.entry, path, cap).await?)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = token(&parts.headers);
        let (unsealed, entry) = state.core.authenticate(raw.as_deref()).await?;
        let path = logical_path(parts.uri.path())?;
        let cap = capability(&parts.method, parts.uri.query());
        if !policy::check(&unsealed.barrier, &entry, &path, cap).await? {
            return Err(ApiError::permission_denied());
        }
        Ok(Self {
            unsealed,
            entry,
            token: Arc::new(Zeroizing::new(raw.unwrap_or_default())),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::logical_path;

    #[test]
    fn acl_paths_are_decoded_and_traversal_is_refused() {
        assert_eq!(
            logical_path("/v1/secret/data/app/").expect("ok"),
            "secret/data/app"
        );
        assert_eq!(
            logical_path("/v1/secret/data/%61pp").expect("ok"),
            "secret/data/app"
        );
        for bad in [
            "/v1/secret/data/a%2Fb",
            "/v1/secret/data/a%2fb",
            "/v1/secret/data/../sys/policy",
            "/v1/secret/data/%2e%2e/x",
            "/v1/secret/data/./x",
            "/v1/secret/data/%00",
            "/v1/secret/data/%zz",
            "/v1/secret/data/%ff",
        ] {
            assert!(logical_path(bad).is_err(), "{bad} must be refused");
        }
    }
}
