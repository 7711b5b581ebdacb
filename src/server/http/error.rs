//! HTTP layer: the one API error type, rendered as Vault's `{"errors":[...]}`. No I/O.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::core::CoreError;

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

impl From<crate::server::barrier::BarrierError> for ApiError {
    fn from(e: crate::server::barrier::BarrierError) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
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
            CoreError::Sealed => StatusCode::SERVICE_UNAVAILABLE,
            CoreError::PermissionDenied => StatusCode::FORBIDDEN,
            CoreError::Barrier(_) | CoreError::Physical(_) | CoreError::Corrupt { .. } => {
                tracing::error!(error = %e, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, e.to_string())
    }
}
