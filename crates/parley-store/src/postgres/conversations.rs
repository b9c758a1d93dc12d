//! Conversations in PostgreSQL: loading one with its members, membership
//! rows, direct conversations and a user's list.

use deadpool_postgres::ClientWrapper;
use parley_proto::{ConversationId, Role, UserId};

use super::errors::{OpResult, execute, query, query_one, query_opt};
use super::rows::{conversation_row, member_from_row, message_from_row};
use super::users::user_exists;
use crate::domain::{self, MESSAGE_COLUMNS, to_i64, to_u64};
use crate::error::StoreError;
use crate::model::{ConversationRecord, ConversationSummaryRecord};

/// A conversation with its active members, in join order.
pub(super) async fn load_conversation(
    conn: &ClientWrapper,
    id: ConversationId,
) -> OpResult<Option<ConversationRecord>> {
    let Some(header) = query_opt(
        conn,
        "SELECT kind, name, last_seq, summary_delivered, summary_read FROM conversations WHERE id=$1",
        &[&id.0],
    )
    .await?
    else {
        return Ok(None);
    };
    let header = conversation_row(&header)?;
    let rows = query(
        conn,
        "SELECT user_id, role, delivered_up_to, read_up_to, joined_seq FROM members
         WHERE conversation_id=$1 AND active ORDER BY joined_at_ms, user_id",
        &[&id.0],
    )
    .await?;
    let members = rows.iter().map(member_from_row).collect::<OpResult<_>>()?;
    Ok(Some(header.into_record(id, members)))
}

/// A conversation that a write just changed: it must exist.
pub(super) async fn reload_conversation(
    conn: &ClientWrapper,
    id: ConversationId,
) -> OpResult<ConversationRecord> {
    Ok(load_conversation(conn, id)
        .await?
        .ok_or(StoreError::Internal("conversation vanished".into()))?)
}

/// The active members, in join order.
pub(super) async fn active_member_ids(
    conn: &ClientWrapper,
    conversation: ConversationId,
) -> OpResult<Vec<UserId>> {
    let rows = query(
        conn,
        "SELECT user_id FROM members WHERE conversation_id=$1 AND active ORDER BY joined_at_ms, user_id",
        &[&conversation.0],
    )
    .await?;
    rows.iter().map(|r| Ok(UserId(r.try_get(0)?))).collect()
}

/// Makes `user` an active member from `joined_seq` on (again, if it was
/// one before), with its cursors just before that seq.
pub(super) async fn add_member_row(
    conn: &ClientWrapper,
    conversation: ConversationId,
    user: UserId,
    role: Role,
    joined_seq: u64,
    now: i64,
) -> OpResult<()> {
    let cursor = joined_seq as i64 - 1;
    execute(
        conn,
        "INSERT INTO members(conversation_id, user_id, role, active, delivered_up_to, read_up_to, joined_seq,
                             joined_at_ms)
         VALUES($1, $2, $3, TRUE, $4, $4, $5, $6)
         ON CONFLICT(conversation_id, user_id) DO UPDATE SET
            role=excluded.role, active=TRUE,
            delivered_up_to=GREATEST(members.delivered_up_to, excluded.delivered_up_to),
            read_up_to=GREATEST(members.read_up_to, excluded.read_up_to), joined_seq=excluded.joined_seq,
            joined_at_ms=excluded.joined_at_ms",
        &[&conversation.0, &user.0, &role.as_str(), &cursor, &(joined_seq as i64), &now],
    )
    .await?;
    execute(
        conn,
        "INSERT INTO member_periods(conversation_id, user_id, from_seq, to_seq) VALUES($1, $2, $3, NULL)
         ON CONFLICT(conversation_id, user_id, from_seq) DO UPDATE SET to_seq=NULL",
        &[&conversation.0, &user.0, &(joined_seq as i64)],
    )
    .await?;
    Ok(())
}

/// The direct conversation of `a` and `b`, created if missing.
pub(super) async fn get_or_create_direct(
    conn: &ClientWrapper,
    a: UserId,
    b: UserId,
    now: i64,
) -> OpResult<(ConversationRecord, bool)> {
    let key = domain::direct_key(a, b)?;
    if let Some(row) = query_opt(
        conn,
        "SELECT id FROM conversations WHERE direct_key=$1",
        &[&key],
    )
    .await?
    {
        let id = ConversationId(row.try_get(0)?);
        let record = load_conversation(conn, id)
            .await?
            .ok_or(StoreError::NotFound("conversation"))?;
        return Ok((record, false));
    }
    for user in [a, b] {
        if !user_exists(conn, user).await? {
            return Err(StoreError::NotFound("user").into());
        }
    }
    let row = query_one(
        conn,
        "INSERT INTO conversations(kind, direct_key, last_seq, last_activity_ms, created_at_ms)
         VALUES('direct', $1, 0, $2, $2) RETURNING id",
        &[&key, &now],
    )
    .await?;
    let conversation = ConversationId(row.try_get(0)?);
    add_member_row(conn, conversation, a, Role::Member, 1, now).await?;
    add_member_row(conn, conversation, b, Role::Member, 1, now).await?;
    let record = load_conversation(conn, conversation)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
    Ok((record, true))
}

/// The user's active conversations, most recent activity first, each with
/// its newest message and unread count.
pub(super) async fn conversations_for(
    conn: &ClientWrapper,
    user: UserId,
) -> OpResult<Vec<ConversationSummaryRecord>> {
    let ids = query(
        conn,
        "SELECT c.id FROM members m JOIN conversations c ON c.id=m.conversation_id
         WHERE m.user_id=$1 AND m.active ORDER BY c.last_activity_ms DESC, c.id DESC",
        &[&user.0],
    )
    .await?;
    let last_sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id=$1 AND seq=$2");
    let mut out = Vec::with_capacity(ids.len());
    for row in ids {
        let id: i64 = row.try_get(0)?;
        let Some(conversation) = load_conversation(conn, ConversationId(id)).await? else {
            continue;
        };
        let read_up_to = conversation.member(user).map(|m| m.read_up_to).unwrap_or(0);
        let last_message = query_opt(conn, &last_sql, &[&id, &to_i64(conversation.last_seq)])
            .await?
            .map(|r| message_from_row(&r, 0))
            .transpose()?;
        let unread: i64 = query_one(
            conn,
            "SELECT COUNT(*) FROM messages WHERE conversation_id=$1 AND seq > $2 AND sender_id != $3",
            &[&id, &to_i64(read_up_to), &user.0],
        )
        .await?
        .try_get(0)?;
        out.push(ConversationSummaryRecord {
            conversation,
            last_message,
            unread_count: to_u64(unread),
        });
    }
    Ok(out)
}
