//! Search in PostgreSQL (protocol §10): `ILIKE` over the text of text
//! messages and the captions of media messages that are not deleted,
//! answered by the `pg_trgm` GIN index for queries of 3+ characters
//! (shorter ones scan), filtered by the viewer's membership periods, the
//! same rule as history, before the limit, and run newest first in the
//! windows of `domain::search` so that a page full of matches ends the
//! search.
//!
//! The statements per window: across conversations, a small window is an
//! id range read backwards on the primary key (the planner picks it over
//! the GIN index for a few thousand rows: reading the GIN index costs its
//! whole posting lists whatever the range), and the last window is the
//! query without windows, the planner's choice. Within one conversation
//! every window is a seq range of `messages_by_seq`, read newest first.

use deadpool_postgres::ClientWrapper;
use parley_proto::Message;
use tokio_postgres::types::ToSql;

use super::errors::{OpResult, query, query_one};
use super::events::attach_quotes;
use super::rows::message_from_row;
use crate::domain::MESSAGE_COLUMNS;
use crate::domain::search::{SEARCHED_KINDS_SQL, SearchPlan};
use crate::model::SearchQuery;

pub(super) async fn search(
    conn: &ClientWrapper,
    search: &SearchQuery,
) -> OpResult<(Vec<Message>, bool)> {
    let plan = SearchPlan::of(search)?;
    let newest: i64 = match search.conversation {
        Some(c) => query_one(
            conn,
            "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id=$1",
            &[&c.0],
        )
        .await?
        .try_get(0)?,
        None => query_one(conn, "SELECT COALESCE(MAX(id), 0) FROM messages", &[])
            .await?
            .try_get(0)?,
    };
    let columns = MESSAGE_COLUMNS
        .split(',')
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    // $1 viewer, $2 pattern, $3 before_id, $4 before_seq, $5 rows wanted,
    // $6 and $7 the window, $8 the conversation.
    let filters = format!(
        "m.text ILIKE $2 AND m.kind IN ({SEARCHED_KINDS_SQL}) AND NOT m.deleted
           AND EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=$1
                      AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))
           AND m.id < $3 AND m.seq < $4"
    );
    let conversation = search.conversation.map(|c| c.0);
    let mut rows = Vec::new();
    for window in plan.windows(newest) {
        let want = plan.fetch() - rows.len() as i64;
        let (scope, order) = match conversation {
            // Seq order is id order within a conversation, and the index's.
            Some(_) => (
                "m.conversation_id=$8 AND m.seq >= $6 AND m.seq < $7",
                "m.seq",
            ),
            None if window.from > 1 => ("m.id >= $6 AND m.id < $7", "m.id"),
            // The last window: the planner's choice, as without windows.
            None => (
                "m.id >= $6 AND m.id < $7
                 AND m.conversation_id IN (SELECT conversation_id FROM member_periods WHERE user_id=$1)",
                "m.id",
            ),
        };
        let sql = format!(
            "SELECT {columns} FROM messages m WHERE {filters} AND {scope}
             ORDER BY {order} DESC LIMIT $5"
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &search.viewer.0,
            &plan.like,
            &plan.before_id,
            &plan.before_seq,
            &want,
            &window.from,
            &window.to,
        ];
        if let Some(c) = &conversation {
            params.push(c);
        }
        for row in &query(conn, &sql, &params).await? {
            rows.push(message_from_row(row, 0)?);
        }
        if rows.len() as i64 >= plan.fetch() {
            break;
        }
    }
    let (mut results, more) = plan.finish(rows);
    attach_quotes(conn, search.viewer, &mut results).await?;
    Ok((results, more))
}
