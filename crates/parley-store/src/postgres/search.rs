//! Search in PostgreSQL (protocol §10): `ILIKE` over the text of text
//! messages that are not deleted, answered by the `pg_trgm` GIN index for
//! queries of 3+ characters (shorter ones scan), filtered by the viewer's
//! membership periods, the same rule as history, before the limit.

use deadpool_postgres::ClientWrapper;
use parley_proto::Message;

use super::errors::{OpResult, query};
use super::events::attach_quotes;
use super::rows::message_from_row;
use crate::domain::MESSAGE_COLUMNS;
use crate::domain::search::SearchPlan;
use crate::model::SearchQuery;

pub(super) async fn search(
    conn: &ClientWrapper,
    search: &SearchQuery,
) -> OpResult<(Vec<Message>, bool)> {
    let plan = SearchPlan::of(search)?;
    let columns = MESSAGE_COLUMNS
        .split(',')
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns} FROM messages m
         WHERE m.text ILIKE $3 AND m.kind='text' AND NOT m.deleted
           AND ($2::BIGINT IS NULL OR m.conversation_id=$2)
           AND m.conversation_id IN (SELECT conversation_id FROM member_periods WHERE user_id=$1)
           AND EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=$1
                      AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))
           AND m.id < $4 AND m.seq < $5
         ORDER BY m.id DESC LIMIT $6"
    );
    let rows = query(
        conn,
        &sql,
        &[
            &search.viewer.0,
            &search.conversation.map(|c| c.0),
            &plan.like,
            &plan.before_id,
            &plan.before_seq,
            &plan.fetch(),
        ],
    )
    .await?;
    let rows = rows
        .iter()
        .map(|r| message_from_row(r, 0))
        .collect::<OpResult<Vec<_>>>()?;
    let (mut results, more) = plan.finish(rows);
    attach_quotes(conn, search.viewer, &mut results).await?;
    Ok((results, more))
}
