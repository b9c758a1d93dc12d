//! The store's error type.

use parley_proto::ErrorCode;

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation failed. Domain refusals (not a member, unknown id)
/// are distinguished from engine trouble, which is never the client's fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// An id that does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(&'static str),
    /// A value the domain rejects.
    #[error("{0}")]
    Invalid(String),
    /// A group would exceed its size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The inbox cursor is older than what the store keeps.
    #[error("cursor is older than the retained inbox; re-read history")]
    ResyncRequired,
    /// The engine cannot be reached (for example the database is down).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The engine failed in a way that is a bug or a broken disk.
    #[error("storage failure: {0}")]
    Internal(String),
}

impl StoreError {
    /// The protocol code this error maps to.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::Forbidden(_) => ErrorCode::Forbidden,
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::Invalid(_) => ErrorCode::BadRequest,
            StoreError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            StoreError::ResyncRequired => ErrorCode::ResyncRequired,
            StoreError::Unavailable(_) => ErrorCode::Unavailable,
            StoreError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A message safe to show a client: engine details stay in the log.
    pub fn client_message(&self) -> String {
        match self {
            StoreError::Unavailable(_) => "storage is temporarily unavailable; retry".into(),
            StoreError::Internal(_) => "internal server error".into(),
            other => other.to_string(),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match &err {
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Internal(err.to_string()),
        }
    }
}
