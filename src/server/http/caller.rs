//! HTTP layer: who is calling. The one place a client token is resolved ([`Authenticated`],
//! once per request, cached in the request's extensions so the audit log and the handler see
//! the same answer and a limited-use token loses exactly one use) and the one ACL check
//! ([`Authenticated::allows`]) on the path the front door decoded, with `sudo` required on
//! Vault's root-protected paths ([`SUDO_PATHS`]). Handlers of protected paths take a
//! [`Caller`], whose extraction checks the ACL for the request's path and method, so no handler
//! can forget the check.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use zeroize::Zeroizing;

use super::path::RequestPath;
use super::{ApiError, AppState, is_list, token};
use crate::server::core::Unsealed;
use crate::server::policy::Capability;
use crate::server::token::TokenEntry;

/// Paths that need `sudo` besides the operation's capability, as Vault's root-protected paths
/// (`PathsSpecial.Root` of the system and token backends, and `sys/seal`/`sys/step-down`). A
/// trailing `*` matches any rest. The list covers what Sealkeep serves or will serve.
pub const SUDO_PATHS: &[&str] = &[
    "sys/auth/*",
    "sys/audit",
    "sys/audit/*",
    "sys/rotate",
    "sys/rotate/*",
    "sys/seal",
    "sys/step-down",
    "sys/key-status",
    "sys/raw",
    "sys/raw/*",
    "sys/remount",
    "sys/revoke-prefix/*",
    "sys/revoke-force/*",
    "sys/leases/revoke-prefix/*",
    "sys/leases/revoke-force/*",
    "sys/leases/lookup/*",
    "sys/storage/raft/remove-peer",
    "sys/storage/raft/snapshot",
    "sys/storage/raft/snapshot-force",
    "sys/storage/raft/snapshot-auto/config/*",
    "sys/config/cors",
    "sys/config/auditing/*",
    "sys/config/ui/headers/*",
    "sys/plugins/catalog/*",
    "auth/token/revoke-orphan",
    "auth/token/revoke-orphan/*",
    "auth/token/accessors",
    "auth/token/accessors/*",
];

/// Whether `path` (decoded, no `/v1/`) is root-protected.
pub fn needs_sudo(path: &str) -> bool {
    SUDO_PATHS.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == *p,
    })
}

/// The capability a request needs, from its method. Writes need `update`; handlers that can
/// tell a create from an update (KV) check `create` themselves through
/// [`Authenticated::require`].
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

/// A request whose token was resolved (not yet authorized for anything).
#[derive(Clone)]
pub struct Authenticated {
    pub unsealed: Arc<Unsealed>,
    pub entry: TokenEntry,
    /// The client token as sent (for `*-self` endpoints); zeroized on drop, never logged.
    pub token: Arc<Zeroizing<String>>,
    /// The decoded request path without `/v1/` or a trailing `/`: what the ACL checks.
    pub path: String,
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("accessor", &self.entry.accessor)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The outcome of resolving the request's token, kept in the request's extensions.
#[derive(Clone)]
struct Resolved(Result<Authenticated, ApiError>);

impl Authenticated {
    /// Whether the caller's policies grant `cap` on `path`, and `sudo` too where `path` is
    /// root-protected. The one ACL check of the server.
    pub async fn allows(&self, path: &str, cap: Capability) -> Result<bool, ApiError> {
        let u = &self.unsealed;
        let acl = u.policies.acl_for(&u.barrier, &self.entry.policies).await?;
        Ok(acl.allows(path, cap) && (!needs_sudo(path) || acl.allows(path, Capability::Sudo)))
    }

    /// [`Self::allows`], or 403 `permission denied`.
    pub async fn require(&self, path: &str, cap: Capability) -> Result<(), ApiError> {
        if self.allows(path, cap).await? {
            Ok(())
        } else {
            Err(ApiError::permission_denied())
        }
    }

    /// Whether the caller has root, or `sudo` on its request path.
    pub async fn is_sudo(&self) -> Result<bool, ApiError> {
        Ok(self.entry.is_root() || self.allows(&self.path, Capability::Sudo).await?)
    }

    /// Resolves the request's token once; later calls return the same outcome.
    pub async fn resolve(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(Resolved(done)) = parts.extensions.get::<Resolved>() {
            return done.clone();
        }
        let outcome = Self::resolve_uncached(parts, state).await;
        parts.extensions.insert(Resolved(outcome.clone()));
        outcome
    }

    async fn resolve_uncached(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(path) = parts.extensions.get::<RequestPath>() else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request did not pass the front door (no decoded path)",
            ));
        };
        let raw = token(&parts.headers);
        let (unsealed, entry) = state.core.authenticate(raw.as_deref()).await?;
        Ok(Self {
            unsealed,
            entry,
            token: Arc::new(Zeroizing::new(raw.unwrap_or_default())),
            path: path.as_str().to_owned(),
        })
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::resolve(parts, state).await
    }
}

/// An authenticated request authorized for its path and method.
#[derive(Clone, Debug)]
pub struct Caller(pub Authenticated);

impl std::ops::Deref for Caller {
    type Target = Authenticated;

    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = Authenticated::resolve(parts, state).await?;
        let cap = capability(&parts.method, parts.uri.query());
        who.require(&who.path, cap).await?;
        Ok(Self(who))
    }
}

#[cfg(test)]
mod tests {
    use super::needs_sudo;

    #[test]
    fn root_protected_paths_match_vaults_list() {
        for p in [
            "sys/auth/kubernetes",
            "sys/audit",
            "sys/audit/file",
            "sys/rotate",
            "sys/seal",
            "sys/storage/raft/remove-peer",
            "sys/storage/raft/snapshot",
            "sys/storage/raft/snapshot-force",
            "sys/step-down",
            "auth/token/revoke-orphan",
            "auth/token/accessors",
        ] {
            assert!(needs_sudo(p), "{p}");
        }
        for p in [
            "sys/auth",
            "sys/mounts/secret",
            "sys/policies/acl/app",
            "secret/data/sys/seal",
            "auth/token/revoke",
            "sys/audit-hash",
            "sys/storage/raft/configuration",
            "sys/storage/raft/autopilot/state",
            "sys/ha-status",
        ] {
            assert!(!needs_sudo(p), "{p}");
        }
    }
}
