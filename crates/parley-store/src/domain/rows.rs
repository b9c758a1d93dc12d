//! Engine-neutral rows: each engine fills these from its driver's row, with
//! primitive values only, and the decoding into records happens here once.

use parley_proto::api::{ConversationKind, PresenceVisibility};
use parley_proto::{
    ConversationId, DeviceId, MediaInfo, Message, MessageId, MessageKind, Role, SystemEvent, UserId,
};

use super::to_u64;
use crate::model::{ConversationRecord, MemberRecord, UserRecord};

/// The columns a [`MessageRow`] is read from, in order. Both schemas name
/// them alike.
pub(crate) const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms, \
                                          kind, text, reply_to_seq, event, user_ids, name, role, \
                                          target_seq, emoji, forwarded, edited_at_ms, deleted, reactions, media";

/// The columns a [`UserRow`] is read from, in order.
pub(crate) const USER_COLUMNS: &str = "id, username, display_name, password_hash, presence_visibility, last_seen_ms, \
                                       created_at_ms, avatar_media_id, read_receipts, push_previews, is_admin, \
                                       disabled_at_ms, erased_at_ms";

/// The columns a [`ConversationRow`] is read from, in order.
pub(crate) const CONVERSATION_COLUMNS: &str =
    "kind, name, last_seq, summary_delivered, summary_read, avatar_media_id";

/// A stored message, as the [`MESSAGE_COLUMNS`] hold it.
#[derive(Debug, Clone, Default)]
pub(crate) struct MessageRow {
    pub(crate) id: i64,
    pub(crate) conversation_id: i64,
    pub(crate) seq: i64,
    pub(crate) sender_id: i64,
    pub(crate) sender_device_id: Option<i64>,
    pub(crate) client_msg_id: Option<String>,
    pub(crate) sent_at_ms: i64,
    pub(crate) kind: String,
    pub(crate) text: Option<String>,
    pub(crate) reply_to_seq: Option<i64>,
    pub(crate) event: Option<String>,
    /// Already decoded: the engines store the list differently (JSON text
    /// in SQLite, `BIGINT[]` in PostgreSQL).
    pub(crate) user_ids: Option<Vec<UserId>>,
    pub(crate) name: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) target_seq: Option<i64>,
    pub(crate) emoji: Option<String>,
    pub(crate) forwarded: bool,
    pub(crate) edited_at_ms: Option<i64>,
    pub(crate) deleted: bool,
    /// The stored JSON of the reactions.
    pub(crate) reactions: Option<String>,
    /// The stored JSON of the media (media kinds).
    pub(crate) media: Option<String>,
}

impl MessageRow {
    /// The message. Unknown kinds read as text and unknown events as none,
    /// so an older binary can still show rows a newer one wrote.
    pub(crate) fn into_message(self) -> Message {
        Message {
            message_id: MessageId(self.id),
            conversation_id: ConversationId(self.conversation_id),
            seq: to_u64(self.seq),
            sender_id: UserId(self.sender_id),
            sender_device_id: self.sender_device_id.map(DeviceId),
            client_msg_id: self.client_msg_id,
            sent_at_ms: self.sent_at_ms,
            kind: MessageKind::parse(&self.kind).unwrap_or(MessageKind::Text),
            text: self.text,
            reply_to_seq: self.reply_to_seq.map(to_u64),
            event: self.event.as_deref().and_then(SystemEvent::parse),
            user_ids: self.user_ids,
            name: self.name,
            role: self.role.as_deref().map(Role::parse),
            target_seq: self.target_seq.map(to_u64),
            reactions: super::events::reactions_of(self.reactions.as_deref()),
            emoji: self.emoji,
            forwarded: self.forwarded,
            edited_at_ms: self.edited_at_ms,
            deleted: self.deleted,
            reply_to: None,
            media: self
                .media
                .as_deref()
                .map(MediaInfo::decode_list)
                .unwrap_or_default(),
        }
    }
}

/// A stored user, as the [`USER_COLUMNS`] hold it.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub(crate) id: i64,
    pub(crate) username: String,
    pub(crate) display_name: String,
    pub(crate) password_hash: String,
    pub(crate) presence_visibility: String,
    pub(crate) last_seen_ms: Option<i64>,
    pub(crate) created_at_ms: i64,
    pub(crate) avatar_media_id: Option<String>,
    pub(crate) read_receipts: bool,
    pub(crate) push_previews: bool,
    pub(crate) is_admin: bool,
    pub(crate) disabled_at_ms: Option<i64>,
    pub(crate) erased_at_ms: Option<i64>,
}

impl UserRow {
    /// The user.
    pub(crate) fn into_record(self) -> UserRecord {
        UserRecord {
            id: UserId(self.id),
            username: self.username,
            display_name: self.display_name,
            password_hash: self.password_hash,
            presence_visibility: PresenceVisibility::parse(&self.presence_visibility),
            last_seen_ms: self.last_seen_ms,
            created_at_ms: self.created_at_ms,
            avatar_media_id: self.avatar_media_id,
            read_receipts: self.read_receipts,
            push_previews: self.push_previews,
            is_admin: self.is_admin,
            disabled_at_ms: self.disabled_at_ms,
            erased_at_ms: self.erased_at_ms,
        }
    }
}

/// A member row: `user_id, role, delivered_up_to, read_up_to, joined_seq`.
#[derive(Debug, Clone)]
pub(crate) struct MemberRow {
    pub(crate) user_id: i64,
    pub(crate) role: String,
    pub(crate) delivered_up_to: i64,
    pub(crate) read_up_to: i64,
    pub(crate) joined_seq: i64,
}

impl MemberRow {
    /// The member.
    pub(crate) fn into_record(self) -> MemberRecord {
        MemberRecord {
            user_id: UserId(self.user_id),
            role: Role::parse(&self.role),
            delivered_up_to: to_u64(self.delivered_up_to),
            read_up_to: to_u64(self.read_up_to),
            joined_seq: to_u64(self.joined_seq),
        }
    }
}

/// A conversation header: `kind, name, last_seq, summary_delivered,
/// summary_read, avatar_media_id` ([`CONVERSATION_COLUMNS`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConversationRow {
    pub(crate) kind: String,
    pub(crate) name: Option<String>,
    pub(crate) avatar_media_id: Option<String>,
    pub(crate) last_seq: i64,
    pub(crate) summary_delivered: i64,
    pub(crate) summary_read: i64,
}

impl ConversationRow {
    /// The conversation with its active `members` (in join order).
    pub(crate) fn into_record(
        self,
        id: ConversationId,
        members: Vec<MemberRecord>,
    ) -> ConversationRecord {
        ConversationRecord {
            id,
            kind: ConversationKind::parse(&self.kind),
            name: self.name,
            avatar_media_id: self.avatar_media_id,
            last_seq: to_u64(self.last_seq),
            members,
            delivered_all_up_to: to_u64(self.summary_delivered),
            read_all_up_to: to_u64(self.summary_read),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_row_decodes() {
        let row = MessageRow {
            id: 5,
            conversation_id: 2,
            seq: 3,
            sender_id: 1,
            sent_at_ms: 77,
            kind: "system".into(),
            event: Some("role_changed".into()),
            user_ids: Some(vec![UserId(4)]),
            role: Some("admin".into()),
            ..MessageRow::default()
        };
        let message = row.into_message();
        assert_eq!(message.kind, MessageKind::System);
        assert_eq!(message.event, Some(SystemEvent::RoleChanged));
        assert_eq!(message.role, Some(Role::Admin));
        assert_eq!(message.user_ids, Some(vec![UserId(4)]));
        assert_eq!(
            (message.message_id, message.conversation_id, message.seq),
            (MessageId(5), ConversationId(2), 3)
        );
        assert_eq!(message.sender_device_id, None);
    }

    #[test]
    fn a_text_row_decodes_and_unknowns_degrade() {
        let row = MessageRow {
            sender_device_id: Some(9),
            kind: "hologram".into(),
            text: Some("hi".into()),
            reply_to_seq: Some(-1),
            event: Some("exploded".into()),
            ..MessageRow::default()
        };
        let message = row.into_message();
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!(message.sender_device_id, Some(DeviceId(9)));
        assert_eq!(message.reply_to_seq, Some(0));
        assert_eq!(message.event, None);
    }

    #[test]
    fn users_members_and_conversations_decode() {
        let user = UserRow {
            id: 1,
            username: "a".into(),
            display_name: "A".into(),
            password_hash: "h".into(),
            presence_visibility: "nobody".into(),
            last_seen_ms: Some(3),
            created_at_ms: 2,
            avatar_media_id: None,
            read_receipts: true,
            push_previews: false,
            is_admin: true,
            disabled_at_ms: Some(5),
            erased_at_ms: None,
        }
        .into_record();
        assert!(user.is_admin && user.disabled_at_ms == Some(5));
        assert_eq!(
            user.presence_visibility,
            PresenceVisibility::parse("nobody")
        );
        let member = MemberRow {
            user_id: 1,
            role: "admin".into(),
            delivered_up_to: 4,
            read_up_to: 3,
            joined_seq: 1,
        }
        .into_record();
        assert_eq!(member.role, Role::Admin);
        let conversation = ConversationRow {
            kind: "group".into(),
            name: Some("g".into()),
            last_seq: 9,
            summary_delivered: 4,
            summary_read: 3,
            avatar_media_id: None,
        }
        .into_record(ConversationId(6), vec![member.clone()]);
        assert_eq!(conversation.kind, ConversationKind::Group);
        assert_eq!(conversation.members, vec![member]);
        assert_eq!(
            (
                conversation.last_seq,
                conversation.delivered_all_up_to,
                conversation.read_all_up_to
            ),
            (9, 4, 3)
        );
    }
}
