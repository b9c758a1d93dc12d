//! What went wrong talking to the server, and the close codes the client
//! itself reports when the server gave none.

use parley_proto::ErrorCode;

/// Close code reported when the server closed without a code (RFC 6455's
/// "no status received"); the server's own codes are in
/// [`parley_proto::close_code`].
pub const NO_STATUS: u16 = 1005;
/// Close code reported when the connection ended without a close frame
/// (RFC 6455's "abnormal closure").
pub const ABNORMAL: u16 = 1006;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a protocol error.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status (0 for WebSocket errors).
        status: u16,
        /// Protocol code.
        code: ErrorCode,
        /// Human message.
        message: String,
    },
    /// The HTTP request failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server closed the socket.
    #[error("socket closed ({code}): {reason}")]
    Closed {
        /// Close code ([`NO_STATUS`] when none was given, [`ABNORMAL`] when
        /// the connection just ended).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The server sent something that is not protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    /// The protocol code, when the server sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Result of a client call.
pub type ClientResult<T> = Result<T, ClientError>;
