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
        let path = parts
            .uri
            .path()
            .trim_start_matches("/v1/")
            .trim_end_matches('/')
            .to_owned();
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
