//! The lean decoder behind `--lean-parse`: reads the few fields the bench
//! needs from the two hot server frames (`sent`, `message`) without
//! building a [`parley_proto::ServerFrame`].
//!
//! This is the one place outside `parley-proto` that knows part of the wire
//! shape, deliberately, for speed (the tidy test allows this file by name).
//! Its tests check it against `parley-proto`'s own encoding, so a change of
//! the wire format fails here rather than silently skewing a benchmark.

use crate::wire::{Hot, parse_client_msg_id};

/// Reads the hot fields of `text` without building a frame.
///
/// Looking for `"key":` is safe in a server frame: inside a JSON string a
/// quote is always escaped, so the pattern only matches a real key, and the
/// fields used are unique in the frame (the only nested value is the
/// `user_ids` array of system messages). This knows a little of the wire
/// shape outside `parley-proto`, deliberately, for speed; the tests below
/// check it against `parley-proto`'s own encoding.
pub(crate) fn scan(text: &str) -> Hot {
    if text.starts_with(r#"{"type":"sent""#) {
        match number_field(text, "seq") {
            Some(seq) => Hot::Sent {
                key: string_field(text, "client_msg_id").and_then(parse_client_msg_id),
                seq,
            },
            None => Hot::Other,
        }
    } else if text.starts_with(r#"{"type":"message""#) {
        let id = |key: &str, prefix: char| {
            string_field(text, key)
                .and_then(|s| s.strip_prefix(prefix))
                .and_then(|s| s.parse::<i64>().ok())
        };
        match (
            number_field(text, "cursor"),
            id("conversation_id", 'c'),
            number_field(text, "seq"),
            id("sender_id", 'u'),
        ) {
            (Some(cursor), Some(conversation), Some(seq), Some(sender)) => Hot::Message {
                cursor,
                conversation,
                seq,
                sender,
                key: string_field(text, "client_msg_id").and_then(parse_client_msg_id),
            },
            _ => Hot::Other,
        }
    } else {
        Hot::Other
    }
}

fn raw_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut pattern = String::with_capacity(key.len() + 3);
    pattern.push('"');
    pattern.push_str(key);
    pattern.push_str("\":");
    let start = text.find(&pattern)? + pattern.len();
    Some(&text[start..])
}

fn number_field(text: &str, key: &str) -> Option<u64> {
    let rest = raw_field(text, key)?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn string_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let rest = raw_field(text, key)?.strip_prefix('"')?;
    // Ids and bench keys never contain escapes.
    let end = rest.find(['"', '\\'])?;
    if rest[end..].starts_with('\\') {
        return None;
    }
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use parley_proto::{
        ConversationId, DeviceId, EncodedMessage, Message, MessageId, MessageKind, ServerFrame,
        SystemEvent, UserId,
    };

    use super::*;
    use crate::wire::decode;

    fn message(text: &str, client_msg_id: Option<&str>) -> Message {
        Message {
            conversation_id: ConversationId(17),
            seq: 42,
            message_id: MessageId(9),
            sender_id: UserId(5),
            sender_device_id: Some(DeviceId(1)),
            client_msg_id: client_msg_id.map(Into::into),
            sent_at_ms: 1_780_000_000_000,
            kind: MessageKind::Text,
            text: Some(text.into()),
            reply_to_seq: None,
            event: None,
            user_ids: None,
            name: None,
            role: None,
            ..Message::default()
        }
    }

    #[test]
    fn scans_what_the_server_sends() {
        // A text that tries to look like the keys must not fool the scanner.
        let tricky = r#"x","seq":1,"cursor":2,"client_msg_id":"no"#;
        let frame = EncodedMessage::new(&message(tricky, Some("7.1234"))).frame(99);
        let want = Hot::Message {
            cursor: 99,
            conversation: 17,
            seq: 42,
            sender: 5,
            key: Some((7, 1234)),
        };
        assert_eq!(scan(&frame), want);
        assert_eq!(decode(&frame, false), want);
        let sent = ServerFrame::Sent {
            client_msg_id: "3.55".into(),
            conversation_id: ConversationId(1),
            seq: 12,
            message_id: MessageId(4),
            sent_at_ms: 1,
        }
        .to_json();
        let want = Hot::Sent {
            key: Some((3, 55)),
            seq: 12,
        };
        assert_eq!(scan(&sent), want);
        assert_eq!(decode(&sent, false), want);
        let mut system = message("", None);
        system.kind = MessageKind::System;
        system.text = None;
        system.event = Some(SystemEvent::Created);
        system.user_ids = Some(vec![UserId(1), UserId(2)]);
        let frame = ServerFrame::Message {
            cursor: 3,
            message: system,
        }
        .to_json();
        assert!(matches!(
            scan(&frame),
            Hot::Message {
                cursor: 3,
                key: None,
                ..
            }
        ));
        assert_eq!(scan(r#"{"type":"pong"}"#), Hot::Other);
        assert_eq!(
            scan(r#"{"type":"sent","seq":1}"#),
            Hot::Sent { key: None, seq: 1 }
        );
        assert_eq!(scan(r#"{"type":"message","seq":1}"#), Hot::Other);
    }
}
