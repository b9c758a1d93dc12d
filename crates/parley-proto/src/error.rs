//! Stable error codes (§1 of the protocol) and their HTTP statuses.

use serde::{Deserialize, Serialize};

/// Every error a client can see carries one of these codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ErrorCode {
    /// Malformed JSON, a missing or invalid field, an unknown frame type.
    BadRequest,
    /// Missing, invalid, expired or revoked token; bad credentials.
    Unauthorized,
    /// Not a member, not an admin, registration closed, blocked.
    Forbidden,
    /// Unknown id (whatever its shape: ids are opaque) or endpoint.
    NotFound,
    /// The endpoint exists but not with this HTTP method.
    MethodNotAllowed,
    /// Username taken.
    Conflict,
    /// Text, frame, body, group size or upload over its limit.
    PayloadTooLarge,
    /// Over a rate limit.
    RateLimited,
    /// A `since` cursor older than what the server still keeps.
    ResyncRequired,
    /// Server-side trouble; never for bad input.
    Internal,
    /// A dependency (the database) is not reachable right now.
    Unavailable,
    /// An upload whose type is not allowed, or whose bytes are not the
    /// type it declared (§9).
    UnsupportedMediaType,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::ResyncRequired => 410,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::UnsupportedMediaType => 415,
        }
    }

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ResyncRequired => "resync_required",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP error body: `{"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// Code and human message of an HTTP error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}
