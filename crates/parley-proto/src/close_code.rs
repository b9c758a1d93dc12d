//! WebSocket close codes the server sends, and what a client should do.
//!
//! Clients (the Rust library, the web client, the tests) compare against
//! these, never against literals.

/// The token was revoked (logout) or never valid: log in again.
pub const UNAUTHORIZED: u16 = 4001;
/// The socket's queue overflowed; reconnect and catch up by cursor.
pub const TOO_SLOW: u16 = 4008;
/// The server is shutting down; reconnect (after the `reconnect` delay).
pub const GOING_AWAY: u16 = 1001;
/// A frame over `max_frame_bytes`.
pub const TOO_BIG: u16 = 1009;
/// Nothing received for two heartbeat intervals, or no auth in time.
pub const TIMEOUT: u16 = 4000;
/// A text frame that was not valid UTF-8 (RFC 6455: invalid frame payload
/// data). Like every violation of the WebSocket protocol itself, the client
/// sent it: reconnecting with the same bug fails again.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Any other WebSocket protocol violation (RFC 6455: protocol error): an
/// unmasked or fragmented control frame, reserved bits, an unknown opcode...
pub const PROTOCOL_ERROR: u16 = 1002;
