//! HTTP layer: the one API error type, rendered as Vault's `{"errors":[...]}`. No I/O.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::barrier::BarrierError;
use crate::server::core::CoreError;
use crate::server::kv::KvError;
use crate::server::mounts::MountError;
use crate::server::physical::PhysicalError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![message.into()],
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Vault's "not found": 404 with an empty error list.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            errors: Vec::new(),
        }
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation")
    }

    pub fn sealed() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed")
    }

    /// Vault's refusal: 403 `permission denied`.
    pub fn permission_denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission denied")
    }
}

impl ApiError {
    /// A storage or internal failure: 503 when raft says this node is not (or no longer) the
    /// leader, so clients retry as they do during a failover; else 500, logged.
    pub fn internal(e: &(dyn std::error::Error + 'static)) -> Self {
        if let Some(p) = not_leader(e) {
            return Self::new(StatusCode::SERVICE_UNAVAILABLE, p.to_string());
        }
        tracing::error!(error = %e, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// The raft "not the leader" error inside `e`, through the wrappers that forward it
/// transparently (whose `source()` skips it).
fn not_leader<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a PhysicalError> {
    fn barrier(b: &BarrierError) -> Option<&PhysicalError> {
        match b {
            BarrierError::Physical(p) => Some(p),
            _ => None,
        }
    }
    fn kv(k: &KvError) -> Option<&PhysicalError> {
        match k {
            KvError::Barrier(b) => barrier(b),
            _ => None,
        }
    }
    let mut cur = Some(e);
    while let Some(err) = cur {
        let p = err
            .downcast_ref::<PhysicalError>()
            .or_else(|| err.downcast_ref::<BarrierError>().and_then(barrier))
            .or_else(|| err.downcast_ref::<KvError>().and_then(kv))
            .or_else(|| match err.downcast_ref::<CoreError>()? {
                CoreError::Physical(p) => Some(p),
                CoreError::Barrier(b) => barrier(b),
                _ => None,
            })
            .or_else(|| match err.downcast_ref::<MountError>()? {
                MountError::Barrier(b) => barrier(b),
                MountError::Kv(k) => kv(k),
                _ => None,
            });
        if let Some(p @ PhysicalError::NotLeader { .. }) = p {
            return Some(p);
        }
        cur = err.source();
    }
    None
}

impl From<BarrierError> for ApiError {
    fn from(e: BarrierError) -> Self {
        Self::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "errors": self.errors }))).into_response()
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let status = match &e {
            CoreError::AlreadyInitialized
            | CoreError::NotInitialized
            | CoreError::InvalidRequest(_)
            | CoreError::InvalidKey
            | CoreError::Seal(_) => StatusCode::BAD_REQUEST,
            CoreError::Sealed | CoreError::Standby => StatusCode::SERVICE_UNAVAILABLE,
            CoreError::PermissionDenied => StatusCode::FORBIDDEN,
            CoreError::Barrier(_) | CoreError::Physical(_) | CoreError::Corrupt { .. } => {
                return Self::internal(&e);
            }
        };
        Self::new(status, e.to_string())
    }
}
