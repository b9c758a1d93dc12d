//! Conversations in SQLite: loading one with its members, membership rows,
//! the guarded `last_seq` advance, direct conversations and a user's list.

use parley_proto::api::ConversationSettings;
use parley_proto::{ConversationId, Role, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{conversation_row, member_from_row, message_from_row};
use super::users::user_exists;
use crate::domain::{self, CONVERSATION_COLUMNS, MESSAGE_COLUMNS, to_u64};
use crate::error::{StoreError, StoreResult};
use crate::model::{ConversationRecord, ConversationSummaryRecord};

/// A conversation with its active members, in join order.
pub(super) fn load_conversation(
    conn: &Connection,
    id: ConversationId,
) -> StoreResult<Option<ConversationRecord>> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id=?1");
    let header = conn
        .prepare_cached(&sql)?
        .query_row([id.0], conversation_row)
        .optional()?;
    let Some(header) = header else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, role, delivered_up_to, read_up_to, joined_seq FROM members
         WHERE conversation_id=?1 AND active=1 ORDER BY joined_at_ms, user_id",
    )?;
    let members = stmt
        .query_map([id.0], member_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(header.into_record(id, members)))
}

/// A conversation that a write just changed: it must exist.
pub(super) fn reload_conversation(
    conn: &Connection,
    id: ConversationId,
) -> StoreResult<ConversationRecord> {
    load_conversation(conn, id)?.ok_or(StoreError::Internal("conversation vanished".into()))
}

/// The active members, in join order.
pub(super) fn active_member_ids(
    conn: &Connection,
    conversation: ConversationId,
) -> StoreResult<Vec<UserId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id FROM members WHERE conversation_id=?1 AND active=1 ORDER BY joined_at_ms, user_id",
    )?;
    let ids = stmt
        .query_map([conversation.0], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Moves `last_seq` from `from_seq` to `to_seq`, refusing unless the row
/// still holds `from_seq`: a writer that computed seqs from a stale read is
/// a bug, and must fail rather than leave a gap or reuse a seq. Both send
/// paths (the general one and the writer cache's flush) go through here.
pub(super) fn advance_last_seq(
    conn: &Connection,
    conversation: ConversationId,
    from_seq: u64,
    to_seq: u64,
    activity_ms: i64,
) -> StoreResult<()> {
    let updated = conn
        .prepare_cached(
            "UPDATE conversations SET last_seq=?3, last_activity_ms=?4 WHERE id=?1 AND last_seq=?2",
        )?
        .execute(params![
            conversation.0,
            from_seq as i64,
            to_seq as i64,
            activity_ms
        ])?;
    if updated != 1 {
        return Err(StoreError::Internal(format!(
            "seq {to_seq} does not follow the stored seq {from_seq} of {conversation}"
        )));
    }
    Ok(())
}

/// Makes `user` an active member from `joined_seq` on (again, if it was
/// one before), with its cursors just before that seq.
pub(super) fn add_member_row(
    conn: &Connection,
    conversation: ConversationId,
    user: UserId,
    role: Role,
    joined_seq: u64,
    now: i64,
) -> StoreResult<()> {
    let cursor = joined_seq as i64 - 1;
    conn.prepare_cached(
        "INSERT INTO members(conversation_id, user_id, role, active, delivered_up_to, read_up_to, joined_seq, joined_at_ms)
         VALUES(?1, ?2, ?3, 1, ?4, ?4, ?5, ?6)
         ON CONFLICT(conversation_id, user_id) DO UPDATE SET
            role=excluded.role, active=1, delivered_up_to=MAX(members.delivered_up_to, excluded.delivered_up_to),
            read_up_to=MAX(members.read_up_to, excluded.read_up_to), joined_seq=excluded.joined_seq,
            joined_at_ms=excluded.joined_at_ms",
    )?
    .execute(params![conversation.0, user.0, role.as_str(), cursor, joined_seq as i64, now])?;
    conn.prepare_cached("INSERT OR REPLACE INTO member_periods(conversation_id, user_id, from_seq, to_seq) VALUES(?1, ?2, ?3, NULL)")?
        .execute(params![conversation.0, user.0, joined_seq as i64])?;
    Ok(())
}

/// The direct conversation of `a` and `b`, created if missing.
pub(super) fn get_or_create_direct(
    conn: &Connection,
    a: UserId,
    b: UserId,
    now_ms: i64,
) -> StoreResult<(ConversationRecord, bool)> {
    let key = domain::direct_key(a, b)?;
    let existing: Option<i64> = conn
        .prepare_cached("SELECT id FROM conversations WHERE direct_key=?1")?
        .query_row([&key], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        let record = load_conversation(conn, ConversationId(id))?
            .ok_or(StoreError::NotFound("conversation"))?;
        return Ok((record, false));
    }
    for user in [a, b] {
        if !user_exists(conn, user)? {
            return Err(StoreError::NotFound("user"));
        }
    }
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO conversations(kind, direct_key, last_seq, last_activity_ms, created_at_ms)
             VALUES('direct', ?1, 0, ?2, ?2) RETURNING id",
        )?
        .query_row(params![key, now_ms], |r| r.get(0))?;
    let conversation = ConversationId(id);
    add_member_row(conn, conversation, a, Role::Member, 1, now_ms)?;
    add_member_row(conn, conversation, b, Role::Member, 1, now_ms)?;
    let record =
        load_conversation(conn, conversation)?.ok_or(StoreError::NotFound("conversation"))?;
    Ok((record, true))
}

/// The user's conversations (active and left), pinned first, then most
/// recent visible activity first, each with its newest message (events
/// aside) and unread count. A left conversation shows nothing after the
/// user's departure, and no members.
pub(super) fn conversations_for(
    conn: &Connection,
    user: UserId,
) -> StoreResult<Vec<ConversationSummaryRecord>> {
    let rows = conn
        .prepare_cached(
            "SELECT c.id, m.active, m.muted_until_ms, m.pinned, m.archived, c.created_at_ms,
                    (SELECT MAX(p.to_seq) FROM member_periods p WHERE p.conversation_id=c.id AND p.user_id=m.user_id)
             FROM members m JOIN conversations c ON c.id=m.conversation_id WHERE m.user_id=?1",
        )?
        .query_map([user.0], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)? != 0,
                ConversationSettings {
                    muted_until_ms: r.get(2)?,
                    pinned: r.get::<_, i64>(3)? != 0,
                    archived: r.get::<_, i64>(4)? != 0,
                },
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let last_sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id=?1 AND seq <= ?2
         AND kind NOT IN ('edit', 'delete', 'reaction') ORDER BY seq DESC LIMIT 1"
    );
    let mut out = Vec::with_capacity(rows.len());
    for (id, active, settings, created_at_ms, departed) in rows {
        let Some(mut conversation) = load_conversation(conn, ConversationId(id))? else {
            continue;
        };
        let read_up_to = if active {
            conversation.member(user).map(|m| m.read_up_to).unwrap_or(0)
        } else {
            conn.prepare_cached(
                "SELECT read_up_to FROM members WHERE conversation_id=?1 AND user_id=?2",
            )?
            .query_row(params![id, user.0], |r| r.get::<_, i64>(0))
            .map(to_u64)?
        };
        if !active {
            let departed = to_u64(departed.unwrap_or(0));
            domain::settings::as_departed(&mut conversation, departed);
        }
        let bound = conversation.last_seq as i64;
        let mut last_message = conn
            .prepare_cached(&last_sql)?
            .query_row(params![id, bound], message_from_row)
            .optional()?;
        if let Some(message) = last_message.as_mut() {
            super::events::attach_quotes(conn, user, std::slice::from_mut(message))?;
        }
        let unread: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM messages WHERE conversation_id=?1 AND seq > ?2 AND seq <= ?3
                 AND sender_id != ?4 AND kind NOT IN ('edit', 'delete', 'reaction')",
            )?
            .query_row(params![id, read_up_to as i64, bound, user.0], |r| r.get(0))?;
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
