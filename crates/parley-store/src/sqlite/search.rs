//! Search in SQLite (protocol §10): the FTS5 trigram index for queries of
//! 3+ characters, a `LIKE` scan (ASCII case folding only) for shorter
//! ones; both filtered by the viewer's membership periods, the same rule
//! as history, before the limit, and run newest first in the windows of
//! `domain::search` so that a page full of matches ends the search.
//!
//! The statements per window: across conversations, a small window is a
//! `rowid` range of `messages` read backwards (FTS5 takes the same range
//! as `rowid` bounds, so it yields only that window's matches), and the
//! last window is the query without windows (the viewer's conversations
//! through their `(conversation_id, seq)` index, or every FTS5 match
//! below the bound). Within one conversation every window is a seq range
//! of that index, read newest first; FTS5 gets the window's id span.

use parley_proto::{ConversationId, Message};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, params};

use super::events::attach_quotes;
use super::rows::message_from_row;
use crate::domain::MESSAGE_COLUMNS;
use crate::domain::search::{SEARCHED_KINDS_SQL, SearchPlan, Window};
use crate::error::StoreResult;
use crate::model::SearchQuery;

/// The shape of one window's statement.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Across conversations, a small window: a `rowid` range.
    Range,
    /// Across conversations, everything below the bound.
    Rest,
    /// Within one conversation: a seq range.
    Conversation,
}

pub(super) fn search(conn: &Connection, query: SearchQuery) -> StoreResult<(Vec<Message>, bool)> {
    let plan = SearchPlan::of(&query)?;
    let newest: i64 = match query.conversation {
        Some(c) => conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id=?1")?
            .query_row([c.0], |r| r.get(0))?,
        None => conn
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM messages")?
            .query_row([], |r| r.get(0))?,
    };
    let mut rows = Vec::new();
    for window in plan.windows(newest) {
        let want = plan.fetch() - rows.len() as i64;
        let (shape, ids, seqs) = match query.conversation {
            Some(c) => match id_span(conn, c, window)? {
                Some(ids) => (Shape::Conversation, ids, window),
                None => continue,
            },
            None if window.from > 1 => (Shape::Range, window, Window::ALL),
            None => (Shape::Rest, window, Window::ALL),
        };
        let sql = statement(shape, plan.indexed);
        let conversation = query.conversation.map(|c| c.0);
        let named: [(&str, &dyn ToSql); 11] = [
            (":viewer", &query.viewer.0),
            (":conversation", &conversation),
            (":phrase", &plan.phrase),
            (":like", &plan.like),
            (":before_id", &plan.before_id),
            (":before_seq", &plan.before_seq),
            (":want", &want),
            (":id_from", &ids.from),
            (":id_to", &ids.to),
            (":seq_from", &seqs.from),
            (":seq_to", &seqs.to),
        ];
        // Each shape names only some of the parameters.
        let named: Vec<(&str, &dyn ToSql)> = named
            .into_iter()
            .filter(|(name, _)| sql.contains(name))
            .collect();
        let mut stmt = conn.prepare_cached(&sql)?;
        let found = stmt
            .query_map(named.as_slice(), message_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.extend(found);
        if rows.len() as i64 >= plan.fetch() {
            break;
        }
    }
    let (mut results, more) = plan.finish(rows);
    attach_quotes(conn, query.viewer, &mut results)?;
    Ok((results, more))
}

/// The message ids of `conversation`'s seqs in `window` (ids grow with
/// seqs within a conversation), or `None` when it has none there.
fn id_span(
    conn: &Connection,
    conversation: ConversationId,
    window: Window,
) -> StoreResult<Option<Window>> {
    let span: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT (SELECT id FROM messages WHERE conversation_id=?1 AND seq>=?2 AND seq<?3 ORDER BY seq LIMIT 1),
                    (SELECT id FROM messages WHERE conversation_id=?1 AND seq>=?2 AND seq<?3 ORDER BY seq DESC LIMIT 1)",
        )?
        .query_row(params![conversation.0, window.from, window.to], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(match span {
        Some((Some(from), Some(last))) => Some(Window { from, to: last + 1 }),
        _ => None,
    })
}

/// The statement of one window.
fn statement(shape: Shape, indexed: bool) -> String {
    let columns = MESSAGE_COLUMNS
        .split(',')
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let matching = if indexed {
        "m.id IN (SELECT rowid FROM search.message_fts WHERE message_fts MATCH :phrase
                  AND rowid >= :id_from AND rowid < :id_to)"
    } else {
        "m.text LIKE :like ESCAPE '\\'"
    };
    let (scope, order) = match shape {
        Shape::Range => ("m.id >= :id_from AND m.id < :id_to", "m.id"),
        // The viewer's conversations (their `(conversation_id, seq)`
        // index) or the FTS5 matches drive this one.
        Shape::Rest => (
            "m.id < :id_to AND m.conversation_id IN
               (SELECT conversation_id FROM member_periods WHERE user_id=:viewer)",
            "m.id",
        ),
        // Seq order is id order within a conversation, and the index's.
        Shape::Conversation => (
            "m.conversation_id=:conversation AND m.seq >= :seq_from AND m.seq < :seq_to",
            "m.seq",
        ),
    };
    format!(
        "SELECT {columns} FROM messages m
         WHERE {matching} AND m.kind IN ({SEARCHED_KINDS_SQL}) AND m.deleted=0 AND {scope}
           AND EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=:viewer
                      AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))
           AND m.id < :before_id AND m.seq < :before_seq
         ORDER BY {order} DESC LIMIT :want"
    )
}
