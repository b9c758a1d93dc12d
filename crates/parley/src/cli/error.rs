//! [`CliError`]: why a client command failed, the protocol code it prints
//! and the exit code a script can rely on ([`exit`]).

use parley_client::ClientError;
use parley_proto::{ErrorCode, close_code};

/// Exit codes of the client commands (documented in `docs/cli.md`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other error (bad input the server refused, a local file problem).
    pub const ERROR: u8 = 1;
    /// The command line is wrong.
    pub const USAGE: u8 = 2;
    /// Not logged in, or the server refused the credentials or token.
    pub const UNAUTHORIZED: u8 = 3;
    /// A user, group or conversation does not exist (or is not visible).
    pub const NOT_FOUND: u8 = 4;
    /// Not allowed (not a member, not an admin, blocked).
    pub const FORBIDDEN: u8 = 5;
    /// Over a rate limit; try again later.
    pub const RATE_LIMITED: u8 = 6;
    /// The server cannot be reached or said it is unavailable.
    pub const UNAVAILABLE: u8 = 7;
}

/// A failed client command: one line on stderr, `parley: CODE: MESSAGE`,
/// and an exit code from [`exit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The protocol's error code (`not_found`, ...), or `usage`/`error` for
    /// failures that never reached a server.
    pub code: String,
    /// For the human.
    pub message: String,
    /// The process exit code.
    pub exit: u8,
}

impl CliError {
    /// An error with a protocol code; the exit code follows from the code.
    pub fn with_code(code: ErrorCode, message: impl Into<String>) -> CliError {
        CliError {
            code: code.as_str().to_owned(),
            message: message.into(),
            exit: exit_for(code),
        }
    }

    /// A wrong command line.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: "usage".into(),
            message: message.into(),
            exit: exit::USAGE,
        }
    }

    /// A local failure (files, terminal).
    pub fn local(message: impl Into<String>) -> CliError {
        CliError {
            code: "error".into(),
            message: message.into(),
            exit: exit::ERROR,
        }
    }

    /// No stored session for this profile.
    pub fn not_logged_in() -> CliError {
        CliError::with_code(
            ErrorCode::Unauthorized,
            "not logged in; run `parley login --server URL USERNAME`",
        )
    }

    /// Something named on the command line does not exist.
    pub fn not_found(message: impl Into<String>) -> CliError {
        CliError::with_code(ErrorCode::NotFound, message)
    }

    /// Whether the server or the network is at fault, so that retrying
    /// later may work.
    pub fn is_unavailable(&self) -> bool {
        self.exit == exit::UNAVAILABLE
    }

    /// The line printed on stderr.
    pub fn line(&self) -> String {
        // One line whatever the message holds, so scripts can parse it.
        let message = self.message.replace(['\n', '\r'], " ");
        format!("parley: {}: {}", self.code, message)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line())
    }
}

impl std::error::Error for CliError {}

/// The exit code for a protocol error code.
pub fn exit_for(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::Unauthorized => exit::UNAUTHORIZED,
        ErrorCode::NotFound => exit::NOT_FOUND,
        ErrorCode::Forbidden => exit::FORBIDDEN,
        ErrorCode::RateLimited => exit::RATE_LIMITED,
        ErrorCode::Unavailable => exit::UNAVAILABLE,
        _ => exit::ERROR,
    }
}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> CliError {
        match err {
            ClientError::Api { code, message, .. } => CliError::with_code(code, message),
            // A token refused on the socket closes it with 4001.
            ClientError::Closed { code, reason } if code == close_code::UNAUTHORIZED => {
                CliError::with_code(ErrorCode::Unauthorized, format!("socket closed: {reason}"))
            }
            ClientError::Http(err) if err.is_decode() => CliError {
                code: ErrorCode::Internal.as_str().into(),
                message: format!("unreadable answer from the server: {err}"),
                exit: exit::ERROR,
            },
            ClientError::Protocol(message) => CliError {
                code: ErrorCode::Internal.as_str().into(),
                message: format!("unexpected answer from the server: {message}"),
                exit: exit::ERROR,
            },
            // Connection refused, reset, timed out, closed: the network or
            // the server is away.
            other => CliError::with_code(ErrorCode::Unavailable, other.to_string()),
        }
    }
}

/// Result of a client command.
pub type CliResult<T> = Result<T, CliError>;
