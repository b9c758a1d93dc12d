//! Search in SQLite (protocol §10): the FTS5 trigram index for queries of
//! 3+ characters, a `LIKE` scan (ASCII case folding only) for shorter
//! ones; both filtered by the viewer's membership periods, the same rule
//! as history, before the limit.

use parley_proto::Message;
use rusqlite::{Connection, params};

use super::events::attach_quotes;
use super::rows::message_from_row;
use crate::domain::MESSAGE_COLUMNS;
use crate::domain::search::SearchPlan;
use crate::error::StoreResult;
use crate::model::SearchQuery;

pub(super) fn search(conn: &Connection, query: SearchQuery) -> StoreResult<(Vec<Message>, bool)> {
    let plan = SearchPlan::of(&query)?;
    let columns = MESSAGE_COLUMNS
        .split(',')
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let matching = if plan.indexed {
        "m.id IN (SELECT rowid FROM message_fts WHERE message_fts MATCH ?3)"
    } else {
        "m.text LIKE ?4 ESCAPE '\\'"
    };
    let sql = format!(
        "SELECT {columns} FROM messages m
         WHERE {matching} AND m.kind='text' AND m.deleted=0
           AND (?2 IS NULL OR m.conversation_id=?2)
           AND m.conversation_id IN (SELECT conversation_id FROM member_periods WHERE user_id=?1)
           AND EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=?1
                      AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))
           AND m.id < ?5 AND m.seq < ?6
         ORDER BY m.id DESC LIMIT ?7"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(
            params![
                query.viewer.0,
                query.conversation.map(|c| c.0),
                plan.phrase,
                plan.like,
                plan.before_id,
                plan.before_seq,
                plan.fetch()
            ],
            message_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (mut results, more) = plan.finish(rows);
    attach_quotes(conn, query.viewer, &mut results)?;
    Ok((results, more))
}
