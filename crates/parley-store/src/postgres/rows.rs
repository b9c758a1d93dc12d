//! Filling the domain's engine-neutral rows from PostgreSQL rows; the
//! decoding into records is `domain::rows`.

use parley_proto::{Message, UserId};
use tokio_postgres::Row;

use super::errors::OpResult;
use crate::domain::{ConversationRow, MemberRow, MessageRow, UserRow};
use crate::model::{MemberRecord, UserRecord};

/// Reads a message whose `MESSAGE_COLUMNS` start at column `at`.
pub(super) fn message_from_row(row: &Row, at: usize) -> OpResult<Message> {
    // PostgreSQL keeps a system message's user list as a BIGINT[].
    let user_ids: Option<Vec<i64>> = row.try_get(at + 11)?;
    Ok(MessageRow {
        id: row.try_get(at)?,
        conversation_id: row.try_get(at + 1)?,
        seq: row.try_get(at + 2)?,
        sender_id: row.try_get(at + 3)?,
        sender_device_id: row.try_get(at + 4)?,
        client_msg_id: row.try_get(at + 5)?,
        sent_at_ms: row.try_get(at + 6)?,
        kind: row.try_get(at + 7)?,
        text: row.try_get(at + 8)?,
        reply_to_seq: row.try_get(at + 9)?,
        event: row.try_get(at + 10)?,
        user_ids: user_ids.map(|ids| ids.into_iter().map(UserId).collect()),
        name: row.try_get(at + 12)?,
        role: row.try_get(at + 13)?,
        target_seq: row.try_get(at + 14)?,
        emoji: row.try_get(at + 15)?,
        forwarded: row.try_get(at + 16)?,
        edited_at_ms: row.try_get(at + 17)?,
        deleted: row.try_get(at + 18)?,
        reactions: row.try_get(at + 19)?,
        media: row.try_get(at + 20)?,
    }
    .into_message())
}

/// Reads a user selected as `USER_COLUMNS`.
pub(super) fn user_from_row(row: &Row) -> OpResult<UserRecord> {
    Ok(UserRow {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        display_name: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        presence_visibility: row.try_get(4)?,
        last_seen_ms: row.try_get(5)?,
        created_at_ms: row.try_get(6)?,
        avatar_media_id: row.try_get(7)?,
        read_receipts: row.try_get(8)?,
        push_previews: row.try_get(9)?,
        is_admin: row.try_get(10)?,
        disabled_at_ms: row.try_get(11)?,
        erased_at_ms: row.try_get(12)?,
    }
    .into_record())
}

/// Reads `user_id, role, delivered_up_to, read_up_to, joined_seq`.
pub(super) fn member_from_row(row: &Row) -> OpResult<MemberRecord> {
    member_from_row_at(row, 0)
}

/// Reads `user_id, role, delivered_up_to, read_up_to, joined_seq` from
/// column `at` on.
pub(super) fn member_from_row_at(row: &Row, at: usize) -> OpResult<MemberRecord> {
    Ok(MemberRow {
        user_id: row.try_get(at)?,
        role: row.try_get(at + 1)?,
        delivered_up_to: row.try_get(at + 2)?,
        read_up_to: row.try_get(at + 3)?,
        joined_seq: row.try_get(at + 4)?,
    }
    .into_record())
}

/// Reads a conversation selected as `CONVERSATION_COLUMNS`.
pub(super) fn conversation_row(row: &Row) -> OpResult<ConversationRow> {
    Ok(ConversationRow {
        kind: row.try_get(0)?,
        name: row.try_get(1)?,
        last_seq: row.try_get(2)?,
        summary_delivered: row.try_get(3)?,
        summary_read: row.try_get(4)?,
        avatar_media_id: row.try_get(5)?,
    })
}
