//! Filling the domain's engine-neutral rows from SQLite rows; the decoding
//! into records is `domain::rows`.

use parley_proto::{Message, UserId};

use crate::domain::{ConversationRow, MemberRow, MessageRow, UserRow};
use crate::model::{MemberRecord, UserRecord};

/// Reads a message selected as `MESSAGE_COLUMNS`.
pub(super) fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    // SQLite keeps a system message's user list as JSON text.
    let user_ids: Option<String> = row.get(11)?;
    Ok(MessageRow {
        id: row.get(0)?,
        conversation_id: row.get(1)?,
        seq: row.get(2)?,
        sender_id: row.get(3)?,
        sender_device_id: row.get(4)?,
        client_msg_id: row.get(5)?,
        sent_at_ms: row.get(6)?,
        kind: row.get(7)?,
        text: row.get(8)?,
        reply_to_seq: row.get(9)?,
        event: row.get(10)?,
        user_ids: user_ids.and_then(|s| serde_json::from_str::<Vec<UserId>>(&s).ok()),
        name: row.get(12)?,
        role: row.get(13)?,
        target_seq: row.get(14)?,
        emoji: row.get(15)?,
        forwarded: row.get::<_, i64>(16)? != 0,
        edited_at_ms: row.get(17)?,
        deleted: row.get::<_, i64>(18)? != 0,
        reactions: row.get(19)?,
        media: row.get(20)?,
    }
    .into_message())
}

/// Reads a user selected as `USER_COLUMNS`.
pub(super) fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRow {
        id: row.get(0)?,
        username: row.get(1)?,
        display_name: row.get(2)?,
        password_hash: row.get(3)?,
        presence_visibility: row.get(4)?,
        last_seen_ms: row.get(5)?,
        created_at_ms: row.get(6)?,
        avatar_media_id: row.get(7)?,
        read_receipts: row.get::<_, i64>(8)? != 0,
        push_previews: row.get::<_, i64>(9)? != 0,
        is_admin: row.get::<_, i64>(10)? != 0,
        disabled_at_ms: row.get(11)?,
        erased_at_ms: row.get(12)?,
    }
    .into_record())
}

/// Reads `user_id, role, delivered_up_to, read_up_to, joined_seq`.
pub(super) fn member_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRecord> {
    Ok(MemberRow {
        user_id: row.get(0)?,
        role: row.get(1)?,
        delivered_up_to: row.get(2)?,
        read_up_to: row.get(3)?,
        joined_seq: row.get(4)?,
    }
    .into_record())
}

/// Reads a conversation selected as `CONVERSATION_COLUMNS`.
pub(super) fn conversation_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRow> {
    Ok(ConversationRow {
        kind: row.get(0)?,
        name: row.get(1)?,
        last_seq: row.get(2)?,
        summary_delivered: row.get(3)?,
        summary_read: row.get(4)?,
        avatar_media_id: row.get(5)?,
    })
}
