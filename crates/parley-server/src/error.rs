//! The server's error type and the one place errors become protocol errors.
//!
//! Every other module returns its own error type ([`StoreError`],
//! [`AuthError`], [`PresenceError`]) or builds an [`ApiError`] for a
//! refusal it decides itself; the `From` impls below are the only mapping
//! from those types to protocol codes. Nothing here (or anywhere) looks at
//! an error's message text to decide its code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parley_proto::{ErrorBody, ErrorCode, ErrorDetail, ServerFrame};
use parley_store::StoreError;

use crate::auth::AuthError;
use crate::presence::PresenceError;

/// An error a client sees: a protocol code, a human message, and for
/// `rate_limited` when to retry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human message, safe to show (no storage internals).
    pub message: String,
    /// For `rate_limited`.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthorized, message)
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// `unavailable`: the server cannot take this now (draining, or at
    /// its connection limit); retrying later is right.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unavailable, message)
    }

    /// `method_not_allowed`.
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::MethodNotAllowed, message)
    }

    /// `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::PayloadTooLarge, message)
    }

    /// `unsupported_media_type` (415): an upload type that is not allowed,
    /// or bytes that are not the type they were declared as.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::UnsupportedMediaType, message)
    }

    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Conflict, message)
    }

    /// `rate_limited`, retry after `retry_after_ms`.
    pub fn rate_limited(retry_after_ms: u64) -> ApiError {
        ApiError {
            code: ErrorCode::RateLimited,
            message: "too many requests; slow down".into(),
            retry_after_ms: Some(retry_after_ms.max(1)),
        }
    }

    /// `internal`, with details only in the log.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "internal error");
        ApiError::new(ErrorCode::Internal, "internal server error")
    }

    /// The WebSocket form of this error.
    pub fn to_frame(&self, reference: Option<String>) -> ServerFrame {
        ServerFrame::Error {
            code: self.code,
            message: self.message.clone(),
            reference,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match &err {
            StoreError::Internal(detail) => tracing::error!(%detail, "storage failure"),
            StoreError::Unavailable(detail) => tracing::warn!(%detail, "storage unavailable"),
            _ => {}
        }
        ApiError::new(err.code(), err.client_message())
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidToken | AuthError::LoggedOut => {
                ApiError::unauthorized(err.to_string())
            }
            AuthError::Hashing(_) => ApiError::internal(err),
        }
    }
}

impl From<PresenceError> for ApiError {
    fn from(err: PresenceError) -> Self {
        match err {
            PresenceError::Store(err) => err.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(ms) = self.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Result of an HTTP handler or a socket operation.
pub type ApiResult<T> = Result<T, ApiError>;
