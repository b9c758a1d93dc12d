//! WebSocket frames (§5 of the protocol): every frame is a JSON text frame
//! with a `type`.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ids::{ConversationId, DeviceId, MessageId, UserId};
use crate::message::{MediaRef, Message, MessageKind};

/// Which receipt cursor a `receipt` frame advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// The member's devices have the messages (✓✓).
    Delivered,
    /// The member has seen the messages (blue ✓✓); implies delivered.
    Read,
}

/// A frame sent by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame of a session.
    Auth {
        /// A token from `POST /v1/sessions`.
        token: String,
        /// Replay every inbox entry after this cursor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// Send a message.
    Send {
        /// The sender's idempotency key.
        client_msg_id: String,
        /// Where to send it.
        conversation_id: ConversationId,
        /// `text`, a media kind (§9), or an event: `edit`, `delete`,
        /// `reaction` (§8).
        kind: MessageKind,
        /// The text (`text` and `edit`); empty for other kinds.
        #[serde(default)]
        text: String,
        /// The seq this message answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to_seq: Option<u64>,
        /// For events: the message they change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_seq: Option<u64>,
        /// For `reaction`: the emoji; `""` (or none) removes the reaction.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
        /// Marks a `text` message as forwarded.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        forwarded: bool,
        /// For `image`, `video`, `audio`, `file`: the one media item (§9).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        media: Vec<MediaRef>,
    },
    /// Advance the caller's delivered or read cursor.
    Receipt {
        /// The conversation.
        conversation_id: ConversationId,
        /// Which cursor.
        status: ReceiptStatus,
        /// The new position (never moves backwards).
        up_to_seq: u64,
    },
    /// The user started or stopped typing.
    Typing {
        /// The conversation.
        conversation_id: ConversationId,
        /// Typing or not.
        active: bool,
    },
    /// Start receiving presence updates for these users.
    PresenceSubscribe {
        /// Users to watch.
        user_ids: Vec<UserId>,
    },
    /// Stop receiving presence updates for these users.
    PresenceUnsubscribe {
        /// Users to stop watching.
        user_ids: Vec<UserId>,
    },
    /// Keep-alive; answered by `pong`.
    Ping {
        /// Echoed back verbatim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<serde_json::Value>,
    },
}

/// The fields of [`ClientFrame::Send`], read directly from the object (see
/// [`ClientFrame::parse`]); the same names, defaults and types as the
/// variant, plus its tag, which must be the string `"send"`.
#[derive(Deserialize)]
struct SendFields {
    #[serde(rename = "type")]
    _tag: SendTag,
    client_msg_id: String,
    conversation_id: ConversationId,
    kind: MessageKind,
    #[serde(default)]
    text: String,
    #[serde(default)]
    reply_to_seq: Option<u64>,
    #[serde(default)]
    target_seq: Option<u64>,
    #[serde(default)]
    emoji: Option<String>,
    #[serde(default)]
    forwarded: bool,
    #[serde(default)]
    media: Vec<MediaRef>,
}

impl SendFields {
    fn into_frame(self) -> ClientFrame {
        ClientFrame::Send {
            client_msg_id: self.client_msg_id,
            conversation_id: self.conversation_id,
            kind: self.kind,
            text: self.text,
            reply_to_seq: self.reply_to_seq,
            target_seq: self.target_seq,
            emoji: self.emoji,
            forwarded: self.forwarded,
            media: self.media,
        }
    }
}

/// A `type` that is exactly the string `"send"` (a derived unit enum would
/// also take serde_json's `{"send": null}` form, which the tagged enum
/// refuses).
struct SendTag;

impl<'de> Deserialize<'de> for SendTag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tag = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        if tag == "send" {
            Ok(SendTag)
        } else {
            Err(serde::de::Error::custom("not a send frame"))
        }
    }
}

/// A client frame that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The `client_msg_id` or frame type, when they could be read, for `ref`.
    pub reference: Option<String>,
    /// What was wrong, for the human.
    pub message: String,
}

impl ClientFrame {
    /// Parses one text frame, strictly (see [`crate::decode`]: an object,
    /// never the positional array form). On failure, tries to recover a
    /// reference (the `client_msg_id`, else the `type`) so the error frame
    /// can point at it.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        // The hot frame first, read field by field: serde reads an
        // internally tagged enum by buffering the whole object first (every
        // key and string copied), which was most of a `send`'s parse cost.
        // Whatever this path refuses goes through the general path below,
        // so errors (and what is accepted) stay the enum's.
        if let Ok(send) = crate::decode::object_from_str::<SendFields>(text) {
            return Ok(send.into_frame());
        }
        crate::decode::object_from_str(text).map_err(|err| {
            let loose: Option<serde_json::Value> = serde_json::from_str(text).ok();
            let field = |name: &str| {
                loose
                    .as_ref()
                    .and_then(|v| v.get(name))
                    .and_then(|v| v.as_str())
                    .map(|s| s.chars().take(128).collect::<String>())
            };
            FrameError {
                reference: field("client_msg_id").or_else(|| field("type")),
                message: format!("malformed frame: {err}"),
            }
        })
    }

    /// Encodes the frame as JSON text (used by clients).
    pub fn to_json(&self) -> String {
        // Plain structs and enums with string keys: serializing cannot fail.
        serde_json::to_string(self).expect("client frames always serialize")
    }

    /// The frame's `type`, for error references and metrics.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Auth { .. } => "auth",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Receipt { .. } => "receipt",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::PresenceSubscribe { .. } => "presence_subscribe",
            ClientFrame::PresenceUnsubscribe { .. } => "presence_unsubscribe",
            ClientFrame::Ping { .. } => "ping",
        }
    }
}

/// A frame sent by the server.
// `Message` is much larger than the rest since the message object grew its
// event fields; frames are short-lived values (the server's hot path sends
// pre-encoded messages), so boxing it would only cost every client a
// pattern change and an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The session is authenticated.
    Ready {
        /// Who the token belongs to.
        user_id: UserId,
        /// Which device.
        device_id: DeviceId,
        /// The user's inbox head.
        cursor: u64,
        /// Send something at least this often.
        heartbeat_ms: u64,
        /// The server's `max_text_bytes`: the longest text (UTF-8 bytes) a
        /// send or an edit may carry, so a client can say so before sending.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_text_bytes: Option<u64>,
        /// The server's `edit_window_secs` (§8), so a client offers "Edit"
        /// only while the server would accept it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit_window_secs: Option<u64>,
        /// The server's `delete_window_secs` (§8), likewise for "Delete for
        /// everyone".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delete_window_secs: Option<u64>,
    },
    /// Replay after `since` is complete.
    Synced {
        /// The inbox head after the replay.
        cursor: u64,
    },
    /// A send is durable.
    Sent {
        /// Echo of the client's key.
        client_msg_id: String,
        /// The conversation.
        conversation_id: ConversationId,
        /// The assigned seq.
        seq: u64,
        /// The assigned id.
        message_id: MessageId,
        /// When it became durable.
        sent_at_ms: i64,
    },
    /// A message for this user.
    Message {
        /// The user's inbox position of this message.
        cursor: u64,
        /// The message itself.
        #[serde(flatten)]
        message: Message,
    },
    /// A member's cursor advanced.
    Receipt {
        /// The conversation.
        conversation_id: ConversationId,
        /// Whose cursor.
        user_id: UserId,
        /// Which cursor.
        status: ReceiptStatus,
        /// The new position.
        up_to_seq: u64,
    },
    /// In groups: the minimum over all members advanced.
    ReceiptSummary {
        /// The group.
        conversation_id: ConversationId,
        /// Every member has every message up to here.
        delivered_all_up_to: u64,
        /// Every member has read every message up to here.
        read_all_up_to: u64,
    },
    /// Someone is (no longer) typing.
    Typing {
        /// The conversation.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
        /// Typing or not.
        active: bool,
    },
    /// A watched user's presence.
    Presence {
        /// Whose.
        user_id: UserId,
        /// At least one live socket.
        online: bool,
        /// When the user was last online, unless hidden.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen_ms: Option<i64>,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's nonce.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<serde_json::Value>,
    },
    /// Something went wrong; the socket stays open unless a close follows.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human explanation.
        message: String,
        /// The `client_msg_id` or frame type the error is about.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// For `rate_limited`: when to try again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The node is draining: reconnect after this long.
    Reconnect {
        /// Delay, jittered per client.
        after_ms: u64,
    },
    /// The user's own settings of a conversation changed (from any of its
    /// devices): sent to every device of that user (§11).
    ConversationSettings {
        /// The conversation.
        conversation_id: ConversationId,
        /// Muted until then; `-1` forever, `0` not muted.
        muted_until_ms: i64,
        /// Listed first.
        pinned: bool,
        /// Listed under "Archived".
        archived: bool,
    },
}

impl ServerFrame {
    /// Encodes the frame as JSON text.
    pub fn to_json(&self) -> String {
        if let ServerFrame::Sent {
            client_msg_id,
            conversation_id,
            seq,
            message_id,
            sent_at_ms,
        } = self
        {
            // One per send: written from a template, byte for byte what
            // serde writes (a test compares them), at a fraction of the cost.
            return sent_json(
                client_msg_id,
                *conversation_id,
                *seq,
                *message_id,
                *sent_at_ms,
            );
        }
        // Serializing these plain structs cannot fail: no maps with
        // non-string keys, no failing Serialize impls.
        serde_json::to_string(self).expect("server frames always serialize")
    }

    /// Decodes a server frame (used by clients).
    pub fn parse(text: &str) -> Result<ServerFrame, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// The `sent` frame, in serde's field order and formatting.
fn sent_json(
    client_msg_id: &str,
    conversation_id: ConversationId,
    seq: u64,
    message_id: MessageId,
    sent_at_ms: i64,
) -> String {
    let mut numbers = itoa::Buffer::new();
    let mut out = String::with_capacity(112 + client_msg_id.len());
    out.push_str("{\"type\":\"sent\",\"client_msg_id\":");
    push_json_string(&mut out, client_msg_id);
    out.push_str(",\"conversation_id\":\"");
    out.push_str(ConversationId::PREFIX);
    out.push_str(numbers.format(conversation_id.0));
    out.push_str("\",\"seq\":");
    out.push_str(numbers.format(seq));
    out.push_str(",\"message_id\":\"");
    out.push_str(MessageId::PREFIX);
    out.push_str(numbers.format(message_id.0));
    out.push_str("\",\"sent_at_ms\":");
    out.push_str(numbers.format(sent_at_ms));
    out.push('}');
    out
}

/// Appends `value` as a JSON string: as is between quotes when nothing in
/// it needs escaping (the usual client key), else through serde_json.
fn push_json_string(out: &mut String, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(value).expect("strings always serialize"));
    }
}

/// A `message` frame encoded once and shared by every recipient.
///
/// The frame differs per recipient user only in `cursor`, so the message body
/// is serialized once and each socket writes `{"type":"message","cursor":N,`
/// followed by the shared tail. A 1,024-member group thus costs one JSON
/// encoding, not 1,024.
#[derive(Debug, Clone)]
pub struct EncodedMessage {
    /// The serialized message object (its opening brace is not reused).
    body: String,
}

impl EncodedMessage {
    /// Encodes `message` once.
    pub fn new(message: &Message) -> EncodedMessage {
        EncodedMessage {
            body: serde_json::to_string(message).expect("messages always serialize"),
        }
    }

    /// The full frame for a recipient whose inbox position is `cursor`.
    pub fn frame(&self, cursor: u64) -> String {
        let tail = &self.body[1..];
        let mut out = String::with_capacity(tail.len() + 48);
        out.push_str("{\"type\":\"message\",\"cursor\":");
        out.push_str(itoa::Buffer::new().format(cursor));
        out.push(',');
        out.push_str(tail);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_message() -> Message {
        Message {
            conversation_id: ConversationId(1),
            seq: 42,
            message_id: MessageId(9),
            sender_id: UserId(1),
            sender_device_id: Some(DeviceId(1)),
            client_msg_id: Some("k-123".into()),
            sent_at_ms: 1_780_000_000_000,
            kind: MessageKind::Text,
            text: Some("hi".into()),
            reply_to_seq: None,
            event: None,
            user_ids: None,
            name: None,
            role: None,
            ..Message::default()
        }
    }

    #[test]
    fn ready_carries_the_limits_and_parses_without_them() {
        let ready = ServerFrame::Ready {
            user_id: UserId(1),
            device_id: DeviceId(2),
            cursor: 3,
            heartbeat_ms: 25_000,
            max_text_bytes: Some(65_536),
            edit_window_secs: Some(900),
            delete_window_secs: Some(172_800),
        };
        let json = ready.to_json();
        assert!(json.contains(r#""max_text_bytes":65536"#), "{json}");
        assert!(json.contains(r#""edit_window_secs":900"#), "{json}");
        assert_eq!(ServerFrame::parse(&json).expect("parses"), ready);
        // An older server's `ready` has none of them.
        let old =
            r#"{"type":"ready","user_id":"u1","device_id":"d2","cursor":3,"heartbeat_ms":25000}"#;
        match ServerFrame::parse(old).expect("parses") {
            ServerFrame::Ready {
                max_text_bytes,
                edit_window_secs,
                delete_window_secs,
                ..
            } => {
                assert_eq!(
                    (max_text_bytes, edit_window_secs, delete_window_secs),
                    (None, None, None)
                );
            }
            other => panic!("not ready: {other:?}"),
        }
    }

    #[test]
    fn parses_every_client_frame() {
        let cases = [
            (r#"{"type":"auth","token":"t"}"#, "auth"),
            (r#"{"type":"auth","token":"t","since":5}"#, "auth"),
            (
                r#"{"type":"send","client_msg_id":"k","conversation_id":"c1","kind":"text","text":"hi"}"#,
                "send",
            ),
            (
                r#"{"type":"receipt","conversation_id":"c1","status":"read","up_to_seq":3}"#,
                "receipt",
            ),
            (
                r#"{"type":"typing","conversation_id":"c1","active":true}"#,
                "typing",
            ),
            (
                r#"{"type":"presence_subscribe","user_ids":["u1","u2"]}"#,
                "presence_subscribe",
            ),
            (
                r#"{"type":"presence_unsubscribe","user_ids":[]}"#,
                "presence_unsubscribe",
            ),
            (
                r#"{"type":"send","client_msg_id":"k","conversation_id":"c1","kind":"reaction","target_seq":3,"emoji":"👍"}"#,
                "send",
            ),
            (
                r#"{"type":"send","client_msg_id":"k","conversation_id":"c1","kind":"delete","target_seq":3}"#,
                "send",
            ),
            (r#"{"type":"ping"}"#, "ping"),
            (r#"{"type":"ping","nonce":7}"#, "ping"),
        ];
        for (input, expected) in cases {
            let frame = ClientFrame::parse(input).unwrap_or_else(|e| panic!("{input}: {e:?}"));
            assert_eq!(frame.type_name(), expected);
        }
    }

    #[test]
    fn bad_frames_keep_a_reference() {
        let cases = [
            ("not json", None),
            (r#"{"type":"fly"}"#, Some("fly")),
            (
                r#"{"type":"send","client_msg_id":"k9","conversation_id":"u1"}"#,
                Some("k9"),
            ),
            (
                r#"{"type":"receipt","conversation_id":"c1","status":"seen","up_to_seq":1}"#,
                Some("receipt"),
            ),
            (
                r#"{"type":"receipt","conversation_id":"c1","status":"read","up_to_seq":-1}"#,
                Some("receipt"),
            ),
            (r#"[1,2]"#, None),
        ];
        for (input, reference) in cases {
            let err = ClientFrame::parse(input).unwrap_err();
            assert_eq!(err.reference.as_deref(), reference, "{input}");
        }
    }

    #[test]
    fn encoded_message_matches_serde() {
        let message = sample_message();
        let shared = EncodedMessage::new(&message).frame(17);
        let parsed = ServerFrame::parse(&shared).unwrap();
        assert_eq!(
            parsed,
            ServerFrame::Message {
                cursor: 17,
                message
            }
        );
    }

    #[test]
    fn plain_text_frames_carry_no_event_fields() {
        let json = EncodedMessage::new(&sample_message()).frame(1);
        for field in [
            "target_seq",
            "emoji",
            "forwarded",
            "deleted",
            "reactions",
            "reply_to\"",
        ] {
            assert!(!json.contains(field), "{field} in {json}");
        }
    }

    #[test]
    fn a_ping_nonce_survives_the_round_trip_exactly() {
        // Found by the client_frame fuzz target: without serde_json's
        // float_roundtrip, these floats changed in their last digit.
        let text = r#"{"type":"ping","nonce":{"a":[55555555550e-5,55.5555555555555555555550e-5,55.0000001892255264,552,5,null]}}"#;
        let frame = ClientFrame::parse(text).unwrap();
        assert_eq!(ClientFrame::parse(&frame.to_json()).unwrap(), frame);
    }

    #[test]
    fn the_sent_template_writes_what_serde_writes() {
        for (key, conversation, seq, message, at) in [
            ("k-1", 7, 42, 9, 1_780_000_000_000),
            ("", 0, 0, 0, 0),
            (
                "quote \" and \\ and \n and \u{1} and é and \u{7f}",
                -3,
                u64::MAX,
                i64::MAX,
                -1,
            ),
            ("1.123456", i64::MAX, 1, i64::MIN, i64::MIN),
        ] {
            let frame = ServerFrame::Sent {
                client_msg_id: key.into(),
                conversation_id: ConversationId(conversation),
                seq,
                message_id: MessageId(message),
                sent_at_ms: at,
            };
            let serde = serde_json::to_string(&frame).unwrap();
            assert_eq!(frame.to_json(), serde);
            // Ids read back only when they are valid (positive, ≤ 18 digits).
            if conversation > 0 && message > 0 && message < 1_000_000 {
                assert_eq!(ServerFrame::parse(&frame.to_json()).unwrap(), frame);
            }
        }
    }

    /// The `send` fast path accepts exactly what the tagged enum accepts,
    /// with the same result.
    #[test]
    fn the_send_fast_path_agrees_with_the_tagged_enum() {
        let general = |text: &str| crate::decode::object_from_str::<ClientFrame>(text).ok();
        for text in [
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"text","text":"hi"}"#,
            r#"{"client_msg_id":"k1","conversation_id":"c7","kind":"text","text":"hi","type":"send"}"#,
            r#"{"type":"se\u006ed","client_msg_id":"k\"1","conversation_id":"x","kind":"image","media":[{"media_id":"f3"}]}"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"reaction","target_seq":3,"emoji":"👍","reply_to_seq":null,"forwarded":true,"extra":[1,{"a":2}]}"#,
            r#"{"type":"send","type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"text","text":"hi"}"#,
            r#"{"type":{"send":null},"client_msg_id":"k1","conversation_id":"c7","kind":"text","text":"hi"}"#,
            r#"{"type":"send","client_msg_id":"k1","client_msg_id":"k2","conversation_id":"c7","kind":"text"}"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"text","text":null}"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"text","reply_to_seq":-1}"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"text","reply_to_seq":1.0}"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":7,"kind":"text"}"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"nope"}"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7"}"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"text","forwarded":null}"#,
            r#"{"type":"Send","client_msg_id":"k1","conversation_id":"c7","kind":"text"}"#,
            r#"{"type":"ping","client_msg_id":"k1","conversation_id":"c7","kind":"text"}"#,
            r#"["send","k1","c7","text","hi"]"#,
            r#"{"type":"send","client_msg_id":"k1","conversation_id":"c7","kind":"text"} x"#,
        ] {
            let fast = crate::decode::object_from_str::<SendFields>(text)
                .ok()
                .map(SendFields::into_frame);
            if let Some(fast) = &fast {
                assert_eq!(Some(fast), general(text).as_ref(), "{text}");
            }
            assert_eq!(ClientFrame::parse(text).ok(), general(text), "{text}");
        }
    }

    #[test]
    fn error_frame_uses_ref() {
        let json = ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            reference: Some("k1".into()),
            retry_after_ms: Some(50),
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"error","code":"rate_limited","message":"slow down","ref":"k1","retry_after_ms":50}"#
        );
    }
}
