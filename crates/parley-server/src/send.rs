//! The send service: the one path by which a client's message enters the
//! store, shared by the WebSocket `send` frame and
//! `POST /v1/conversations/{id}/messages`.
//!
//! In order: refuse while draining, check the protocol's limits, take a
//! token from the sender's budget, count it, and enqueue the append. It
//! returns the store's pending append without waiting for it, so a socket
//! can keep many sends in flight (they share group commits) while their
//! `seq`s follow the order it sent them. Nothing here allocates beyond the
//! message itself or takes a lock other than the rate limiter's.

use std::sync::atomic::Ordering;

use parley_proto::{ClientFrame, ConversationId, MediaId, MessageKind, now_ms};
use parley_store::{NewMessage, PendingAppend};

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Longest `client_msg_id`, in bytes.
const MAX_CLIENT_MSG_ID_BYTES: usize = 128;

/// What a client asked to send.
pub struct Outgoing {
    /// The sender's idempotency key.
    pub client_msg_id: String,
    /// Where.
    pub conversation_id: ConversationId,
    /// `text`, `edit`, `delete` or `reaction`.
    pub kind: MessageKind,
    /// The text (`text`, `edit`).
    pub text: String,
    /// The seq it answers.
    pub reply_to_seq: Option<u64>,
    /// For events: the message they change.
    pub target_seq: Option<u64>,
    /// For `reaction`: the emoji (`""` removes).
    pub emoji: Option<String>,
    /// Marked as forwarded.
    pub forwarded: bool,
    /// For media kinds: the media (§9).
    pub media: Vec<MediaId>,
}

impl Outgoing {
    /// The send a `send` frame asks for; `None` for any other frame.
    pub fn from_frame(frame: ClientFrame) -> Option<Outgoing> {
        let ClientFrame::Send {
            client_msg_id,
            conversation_id,
            kind,
            text,
            reply_to_seq,
            target_seq,
            emoji,
            forwarded,
            media,
        } = frame
        else {
            return None;
        };
        Some(Outgoing {
            client_msg_id,
            conversation_id,
            kind,
            text,
            reply_to_seq,
            target_seq,
            emoji,
            forwarded,
            media: media.into_iter().map(|m| m.media_id).collect(),
        })
    }
}

/// Checks and enqueues a send by `sender`; the returned future resolves
/// when the message is durable (or refused by the store: unknown
/// conversation, not a member, blocked, bad `reply_to_seq`, and for
/// events: unknown target, not allowed, window passed; the rules are the
/// store's, decided once in its domain).
pub fn start(state: &AppState, sender: Identity, outgoing: Outgoing) -> ApiResult<PendingAppend> {
    if state.draining.load(Ordering::Acquire) {
        return Err(ApiError::unavailable(
            "server is shutting down; send again after reconnecting",
        ));
    }
    let new = validate(state, sender, outgoing)?;
    state
        .send_limiter
        .check(&sender.user)
        .map_err(ApiError::rate_limited)?;
    state.hot.sends.increment(1);
    Ok(state.store.append_message(new))
}

/// Checks a send against the protocol's limits.
fn validate(state: &AppState, sender: Identity, outgoing: Outgoing) -> ApiResult<NewMessage> {
    let Outgoing {
        client_msg_id,
        conversation_id,
        kind,
        text,
        reply_to_seq,
        target_seq,
        emoji,
        forwarded,
        media,
    } = outgoing;
    if client_msg_id.is_empty() || client_msg_id.len() > MAX_CLIENT_MSG_ID_BYTES {
        return Err(ApiError::bad_request(
            "client_msg_id must be 1 to 128 bytes",
        ));
    }
    if kind == MessageKind::System {
        return Err(ApiError::bad_request(
            "kind must be text, image, video, audio, file, edit, delete or reaction",
        ));
    }
    if text.len() > state.config.max_text_bytes {
        return Err(ApiError::too_large(format!(
            "text is {} bytes; the limit is {}",
            text.len(),
            state.config.max_text_bytes
        )));
    }
    if text.is_empty() && matches!(kind, MessageKind::Text | MessageKind::Edit) {
        return Err(ApiError::bad_request("text must not be empty"));
    }
    Ok(NewMessage {
        conversation_id,
        sender_id: sender.user,
        sender_device_id: sender.device,
        client_msg_id,
        kind,
        text,
        reply_to_seq,
        target_seq,
        emoji,
        forwarded,
        media,
        windows: state.config.event_windows(),
        now_ms: now_ms(),
    })
}
