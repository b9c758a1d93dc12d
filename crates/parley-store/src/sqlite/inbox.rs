//! The inbox in SQLite: handing out cursors on the general write path, and
//! reading the head and the entries after a cursor. The run bookkeeping is
//! in `inbox_runs`.

use parley_proto::{ConversationId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::inbox_runs;
use crate::domain::{self, to_u64};
use crate::error::{StoreError, StoreResult};
use crate::model::{InboxEntry, Recipient};

/// Gives every user in `users` its next inbox cursor for (`conversation`,
/// `seq`), in SQL (the general path; the writer cache is flushed before and
/// dropped after such jobs).
pub(super) fn push_inbox(
    conn: &Connection,
    users: &[UserId],
    conversation: ConversationId,
    seq: u64,
    now: i64,
) -> StoreResult<Vec<Recipient>> {
    let mut recipients = Vec::with_capacity(users.len());
    for &user in users {
        let tail = inbox_runs::load_tail(conn, user)?;
        let cursor = inbox_runs::next_cursor(conn, user, &tail, conversation, seq, now)?.head;
        conn.prepare_cached("UPDATE users SET inbox_head=?2 WHERE id=?1")?
            .execute(params![user.0, cursor as i64])?;
        recipients.push(Recipient {
            user_id: user,
            cursor,
        });
    }
    Ok(recipients)
}

/// The user's inbox head (0 for an unknown user).
pub(super) fn inbox_head(conn: &Connection, user: UserId) -> StoreResult<u64> {
    let head: Option<i64> = conn
        .prepare_cached("SELECT inbox_head FROM users WHERE id=?1")?
        .query_row([user.0], |r| r.get(0))
        .optional()?;
    Ok(to_u64(head.unwrap_or(0)))
}

/// Up to `limit` entries after `since`; `ResyncRequired` outside what is
/// kept.
pub(super) fn inbox_since(
    conn: &Connection,
    user: UserId,
    since: u64,
    limit: usize,
) -> StoreResult<Vec<InboxEntry>> {
    let (head, floor): (i64, i64) = conn
        .prepare_cached("SELECT inbox_head, inbox_floor FROM users WHERE id=?1")?
        .query_row([user.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound("user"))?;
    domain::check_inbox_cursor(since, to_u64(head), to_u64(floor))?;
    inbox_runs::replay_segments(conn, user, since, to_u64(head), limit)
}
