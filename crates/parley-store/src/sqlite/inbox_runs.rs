//! The SQLite inbox stored as runs ("segments"): a user's cursors from a
//! run's `first_cursor` up to the next run's are consecutive messages of one
//! conversation from `first_seq` on. A member of a busy group costs no row
//! per message, only one per switch of conversation. PostgreSQL keeps the
//! same runs (`postgres::inbox`); the run arithmetic is `domain::inbox`.

use parley_proto::{ConversationId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::message_from_row;
use crate::domain::inbox::InboxRun;
use crate::domain::{MESSAGE_COLUMNS, to_u64};
use crate::error::{StoreError, StoreResult};
use crate::model::InboxEntry;

/// A run of a user's inbox: cursors from `first_cursor` on are the messages
/// of `conversation` from `first_seq` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    pub(super) conversation: ConversationId,
    pub(super) first_cursor: u64,
    pub(super) first_seq: u64,
}

impl Segment {
    /// Whether giving (`conversation`, `seq`) the cursor `cursor` continues
    /// this run.
    fn extends_to(&self, conversation: ConversationId, seq: u64, cursor: u64) -> bool {
        // The rule is shared with PostgreSQL's runs.
        InboxRun {
            conversation: self.conversation,
            first_cursor: self.first_cursor,
            first_seq: self.first_seq,
        }
        .continues_with(conversation, seq, cursor)
    }

    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Segment> {
        Ok(Segment {
            conversation: ConversationId(r.get(0)?),
            first_cursor: to_u64(r.get(1)?),
            first_seq: to_u64(r.get(2)?),
        })
    }
}

/// A user's inbox head and its last run: all it takes to hand out the next
/// cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct InboxTail {
    /// The newest cursor given out (0 if none).
    pub(super) head: u64,
    /// The run the head belongs to.
    pub(super) last: Option<Segment>,
}

/// The user's inbox head and last segment, as stored.
pub(super) fn load_tail(conn: &Connection, user: UserId) -> StoreResult<InboxTail> {
    let head: i64 = conn
        .prepare_cached("SELECT inbox_head FROM users WHERE id=?1")?
        .query_row([user.0], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::Internal(format!(
            "member {user} has no user row"
        )))?;
    let last = conn
        .prepare_cached(
            "SELECT conversation_id, first_cursor, first_seq FROM inbox_segments
             WHERE user_id=?1 ORDER BY first_cursor DESC LIMIT 1",
        )?
        .query_row([user.0], Segment::from_row)
        .optional()?;
    Ok(InboxTail {
        head: to_u64(head),
        last,
    })
}

/// Gives (`conversation`, `seq`) the user's next cursor: a new segment row
/// only when the run breaks. Returns the tail after it (the caller stores
/// the head).
pub(super) fn next_cursor(
    conn: &Connection,
    user: UserId,
    tail: &InboxTail,
    conversation: ConversationId,
    seq: u64,
    now: i64,
) -> StoreResult<InboxTail> {
    let cursor = tail.head + 1;
    let last = match tail.last {
        Some(last) if last.extends_to(conversation, seq, cursor) => last,
        _ => {
            conn.prepare_cached(
                "INSERT INTO inbox_segments(user_id, first_cursor, conversation_id, first_seq, created_at_ms)
                 VALUES(?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![user.0, cursor as i64, conversation.0, seq as i64, now])?;
            Segment {
                conversation,
                first_cursor: cursor,
                first_seq: seq,
            }
        }
    };
    Ok(InboxTail {
        head: cursor,
        last: Some(last),
    })
}

/// A user's segments from the one holding `from_cursor` on, in order.
pub(super) fn segments_from(
    conn: &Connection,
    user: UserId,
    from_cursor: u64,
) -> StoreResult<Vec<Segment>> {
    let mut stmt = conn.prepare_cached(
        "SELECT conversation_id, first_cursor, first_seq FROM inbox_segments
         WHERE user_id=?1 AND first_cursor >= COALESCE(
             (SELECT MAX(first_cursor) FROM inbox_segments WHERE user_id=?1 AND first_cursor <= ?2), 0)
         ORDER BY first_cursor",
    )?;
    let segments = stmt
        .query_map(params![user.0, from_cursor as i64], Segment::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(segments)
}

/// Up to `limit` inbox entries after `since` (≤ `head`), walking segments.
pub(super) fn replay_segments(
    conn: &Connection,
    user: UserId,
    since: u64,
    head: u64,
    limit: usize,
) -> StoreResult<Vec<InboxEntry>> {
    let mut out = Vec::new();
    if since >= head || limit == 0 {
        return Ok(out);
    }
    let segments = segments_from(conn, user, since + 1)?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id=?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    for (i, segment) in segments.iter().enumerate() {
        // This run ends where the next begins, or at the head.
        let end_cursor = segments
            .get(i + 1)
            .map(|next| next.first_cursor - 1)
            .unwrap_or(head)
            .min(head);
        let start_cursor = segment.first_cursor.max(since + 1);
        if start_cursor > end_cursor {
            continue;
        }
        let wanted = (end_cursor - start_cursor + 1).min((limit - out.len()) as u64);
        let first_seq = segment.first_seq + (start_cursor - segment.first_cursor);
        let last_seq = first_seq + wanted - 1;
        let messages = stmt
            .query_map(
                params![segment.conversation.0, first_seq as i64, last_seq as i64],
                message_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if messages.len() as u64 != wanted {
            return Err(StoreError::Internal(format!(
                "inbox of {user} names messages {first_seq}..={last_seq} of {} that are not stored",
                segment.conversation
            )));
        }
        for (offset, message) in messages.into_iter().enumerate() {
            out.push(InboxEntry {
                cursor: start_cursor + offset as u64,
                message,
            });
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Drops inbox positions whose messages are older than `before_ms`: whole
/// old segments are deleted, a partly old one starts later; each user's
/// floor rises to the last dropped cursor. Returns the positions dropped.
pub(super) fn prune_segments(conn: &Connection, before_ms: i64) -> StoreResult<u64> {
    let users = conn
        .prepare_cached("SELECT DISTINCT user_id FROM inbox_segments WHERE created_at_ms < ?1")?
        .query_map([before_ms], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut dropped = 0u64;
    for user in users {
        let head: i64 = conn
            .prepare_cached("SELECT inbox_head FROM users WHERE id=?1")?
            .query_row([user.0], |r| r.get(0))?;
        let head = to_u64(head);
        let segments = segments_from(conn, user, 0)?;
        let mut floor = 0u64;
        for (i, segment) in segments.iter().enumerate() {
            let next_start = segments.get(i + 1).map(|n| n.first_cursor);
            let len = next_start
                .unwrap_or(head + 1)
                .saturating_sub(segment.first_cursor);
            let old: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM messages WHERE conversation_id=?1 AND seq >= ?2 AND seq < ?3 AND sent_at_ms < ?4",
                )?
                .query_row(
                    params![
                        segment.conversation.0,
                        segment.first_seq as i64,
                        (segment.first_seq + len) as i64,
                        before_ms
                    ],
                    |r| r.get(0),
                )?;
            let old = to_u64(old).min(len);
            if old == 0 {
                break;
            }
            dropped += old;
            floor = segment.first_cursor + old - 1;
            if old == len && next_start.is_some() {
                conn.prepare_cached(
                    "DELETE FROM inbox_segments WHERE user_id=?1 AND first_cursor=?2",
                )?
                .execute(params![user.0, segment.first_cursor as i64])?;
                continue;
            }
            // The run now starts at its first kept position (for the last
            // run possibly the next cursor to be given out, which keeps it
            // extendable).
            conn.prepare_cached(
                "UPDATE inbox_segments SET first_cursor=?3, first_seq=?4, created_at_ms=?5
                 WHERE user_id=?1 AND first_cursor=?2",
            )?
            .execute(params![
                user.0,
                segment.first_cursor as i64,
                (segment.first_cursor + old) as i64,
                (segment.first_seq + old) as i64,
                before_ms
            ])?;
            break;
        }
        if floor > 0 {
            conn.prepare_cached("UPDATE users SET inbox_floor=MAX(inbox_floor, ?2) WHERE id=?1")?
                .execute(params![user.0, floor as i64])?;
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_extend_only_the_same_run() {
        let run = Segment {
            conversation: ConversationId(1),
            first_cursor: 10,
            first_seq: 5,
        };
        assert!(run.extends_to(ConversationId(1), 8, 13));
        assert!(
            !run.extends_to(ConversationId(1), 9, 13),
            "a gap in seq breaks the run"
        );
        assert!(
            !run.extends_to(ConversationId(2), 8, 13),
            "another conversation breaks it"
        );
        assert!(
            !run.extends_to(ConversationId(1), 4, 9),
            "cursors before the run"
        );
    }
}
