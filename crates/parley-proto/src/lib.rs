//! The Parley wire protocol, version 1.
//!
//! # Layout
//! - [`ids`]: typed, string-encoded identifiers (`u12`, `c7`, ...).
//! - [`message`]: the message object stored and delivered by the server.
//! - [`frames`]: WebSocket frames, [`ClientFrame`] and [`ServerFrame`].
//! - [`api`]: HTTP request and response bodies.
//! - [`decode`]: the one strict decoder for everything clients send
//!   (objects only, valid UTF-8 throughout).
//! - [`error`]: the stable error codes of §1 of the protocol.
//! - [`push`]: push registrations, the wake-up payload, and the JSON sent
//!   to push providers (§12).
//! - [`close_code`]: WebSocket close codes, and [`limits`]: the limits
//!   fixed by the protocol (configurable ones live in the server's config).
//!
//! **Architecture invariant:** this is the only crate that knows the JSON
//! shape of anything on the wire. The server, the client library and the
//! benchmark all speak through these types.

pub mod api;
pub mod close_code;
pub mod decode;
pub mod error;
pub mod frames;
pub mod ids;
pub mod limits;
pub mod message;
pub mod push;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use frames::{ClientFrame, EncodedMessage, ReceiptStatus, ServerFrame};
pub use ids::{ConversationId, DeviceId, IdParseError, MediaId, MessageId, UserId};
pub use message::{
    MediaInfo, MediaRef, Message, MessageKind, Reaction, ReplyQuote, Role, SystemEvent,
};

/// Milliseconds since the Unix epoch, as used in every `_ms` field.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
