//! Conversations in PostgreSQL: loading one with its members, membership
//! rows, direct conversations and a user's list.

use std::collections::HashMap;

use deadpool_postgres::ClientWrapper;
use parley_proto::api::ConversationSettings;
use parley_proto::{ConversationId, Role, UserId};

use super::errors::{OpResult, execute, query, query_one, query_opt};
use super::rows::{conversation_row, member_from_row, member_from_row_at, message_from_row};
use super::users::user_exists;
use crate::domain::{self, CONVERSATION_COLUMNS, ConversationRow, MESSAGE_COLUMNS, to_u64};
use crate::error::StoreError;
use crate::model::{ConversationRecord, ConversationSummaryRecord, MemberRecord};

/// A conversation with its active members, in join order.
pub(super) async fn load_conversation(
    conn: &ClientWrapper,
    id: ConversationId,
) -> OpResult<Option<ConversationRecord>> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id=$1");
    let Some(header) = query_opt(conn, &sql, &[&id.0]).await? else {
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

/// The user's conversations (active and left), pinned first, then most
/// recent visible activity first, each with its newest message (events
/// aside) and unread count. A left conversation shows nothing after the
/// user's departure, and no members.
/// One statement for the list (each newest visible message and unread
/// count found from the `(conversation_id, seq)` index) and one for the
/// members of the active ones, sent together.
pub(super) async fn conversations_for(
    conn: &ClientWrapper,
    user: UserId,
) -> OpResult<Vec<ConversationSummaryRecord>> {
    let columns = MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("l.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    // `bound` is the last seq the user sees: all of it while a member, up
    // to its departure after leaving. Events (edit, delete, reaction) are
    // neither the newest message nor unread.
    let list_sql = format!(
        "SELECT c.id, c.kind, c.name, c.last_seq, c.summary_delivered, c.summary_read, c.avatar_media_id,
                me.active, me.muted_until_ms, me.pinned, me.archived, c.created_at_ms, b.bound,
                (SELECT COUNT(*) FROM messages u WHERE u.conversation_id = c.id AND u.seq > me.read_up_to
                 AND u.seq <= b.bound AND u.sender_id <> $1 AND u.kind NOT IN ('edit', 'delete', 'reaction')),
                {columns}
         FROM members me JOIN conversations c ON c.id = me.conversation_id
         CROSS JOIN LATERAL (
             SELECT CASE WHEN me.active THEN c.last_seq
                         ELSE LEAST(c.last_seq, COALESCE((SELECT MAX(p.to_seq) FROM member_periods p
                                                          WHERE p.conversation_id = c.id AND p.user_id = me.user_id), 0))
                    END AS bound) b
         LEFT JOIN LATERAL (
             SELECT * FROM messages v WHERE v.conversation_id = c.id AND v.seq <= b.bound
                AND v.kind NOT IN ('edit', 'delete', 'reaction')
             ORDER BY v.seq DESC LIMIT 1) l ON TRUE
         WHERE me.user_id = $1"
    );
    let (list, member_rows) = futures_util::future::try_join(
        query(conn, &list_sql, &[&user.0]),
        query(
            conn,
            "SELECT m.conversation_id, m.user_id, m.role, m.delivered_up_to, m.read_up_to, m.joined_seq
             FROM members me JOIN members m ON m.conversation_id = me.conversation_id AND m.active
             WHERE me.user_id = $1 AND me.active
             ORDER BY m.conversation_id, m.joined_at_ms, m.user_id",
            &[&user.0],
        ),
    )
    .await?;
    let mut members: HashMap<i64, Vec<MemberRecord>> = HashMap::new();
    for row in &member_rows {
        let conversation: i64 = row.try_get(0)?;
        members
            .entry(conversation)
            .or_default()
            .push(member_from_row_at(row, 1)?);
    }
    let mut out = Vec::with_capacity(list.len());
    for row in &list {
        let id: i64 = row.try_get(0)?;
        let header = ConversationRow {
            kind: row.try_get(1)?,
            name: row.try_get(2)?,
            last_seq: row.try_get(3)?,
            summary_delivered: row.try_get(4)?,
            summary_read: row.try_get(5)?,
            avatar_media_id: row.try_get(6)?,
        };
        let active: bool = row.try_get(7)?;
        let settings = ConversationSettings {
            muted_until_ms: row.try_get(8)?,
            pinned: row.try_get(9)?,
            archived: row.try_get(10)?,
        };
        let created_at_ms: i64 = row.try_get(11)?;
        let bound: i64 = row.try_get(12)?;
        let unread: i64 = row.try_get(13)?;
        // The LEFT JOIN leaves the message's columns NULL when there is none.
        let mut last_message = match row.try_get::<_, Option<i64>>(14)? {
            Some(_) => Some(message_from_row(row, 14)?),
            None => None,
        };
        if let Some(message) = last_message.as_mut() {
            super::events::attach_quotes(conn, user, std::slice::from_mut(message)).await?;
        }
        let mut conversation =
            header.into_record(ConversationId(id), members.remove(&id).unwrap_or_default());
        if !active {
            domain::settings::as_departed(&mut conversation, to_u64(bound));
        }
        out.push(domain::settings::summary(
            conversation,
            last_message,
            to_u64(unread),
            settings,
            !active,
            created_at_ms,
        ));
    }
    domain::settings::order_conversations(&mut out);
    Ok(out)
}
