//! The inbox in PostgreSQL: one row per (user, cursor). Cursors are handed
//! out at the end of a batch, with the users' rows locked in id order;
//! replay joins the rows to their messages. (SQLite keeps runs instead; see
//! `sqlite::inbox_runs`.)

use std::collections::{HashMap, HashSet};

use deadpool_postgres::ClientWrapper;
use parley_proto::UserId;

use super::batch::Batch;
use super::errors::{OpResult, execute, query, query_one, query_opt};
use super::rows::message_from_row;
use crate::domain::{self, MESSAGE_COLUMNS, to_i64, to_u64};
use crate::error::StoreError;
use crate::model::{Committed, InboxEntry};

/// Hands out the batch's inbox cursors in op order from `heads` (the
/// locked users' heads, by id), fills them into the announcements, and
/// writes the heads and entries with one statement each.
pub(super) async fn assign_cursors(
    conn: &ClientWrapper,
    batch: &mut Batch,
    mut heads: HashMap<i64, i64>,
) -> OpResult<()> {
    if batch.pointers.is_empty() {
        return Ok(());
    }
    let n = batch.pointers.len();
    let (mut user_col, mut cursor_col, mut conv_col, mut seq_col, mut at_col) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut touched = HashSet::new();
    for pointer in &batch.pointers {
        let head = heads.get_mut(&pointer.user.0).ok_or_else(|| {
            StoreError::Internal(format!("recipient {} does not exist", pointer.user))
        })?;
        *head += 1;
        touched.insert(pointer.user.0);
        user_col.push(pointer.user.0);
        cursor_col.push(*head);
        conv_col.push(pointer.conversation.0);
        seq_col.push(pointer.seq as i64);
        at_col.push(pointer.created_at_ms);
        if let Some(Committed::Message { recipients, .. }) = batch.events.get_mut(pointer.event)
            && let Some(recipient) = recipients.get_mut(pointer.slot)
        {
            recipient.cursor = to_u64(*head);
        }
    }
    let (ids, new_heads): (Vec<i64>, Vec<i64>) =
        heads.iter().filter(|(id, _)| touched.contains(*id)).unzip();
    execute(
            conn,
            "UPDATE users SET inbox_head = v.head FROM unnest($1::BIGINT[], $2::BIGINT[]) AS v(id, head)
             WHERE users.id = v.id",
            &[&ids, &new_heads],
        )
        .await?;
    execute(
            conn,
            "INSERT INTO inbox(user_id, cursor, conversation_id, seq, created_at_ms)
             SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[])",
            &[&user_col, &cursor_col, &conv_col, &seq_col, &at_col],
        )
        .await?;
    Ok(())
}

/// The user's inbox head (0 for an unknown user).
pub(super) async fn inbox_head(conn: &ClientWrapper, user: UserId) -> OpResult<u64> {
    let head: Option<i64> = query_opt(conn, "SELECT inbox_head FROM users WHERE id=$1", &[&user.0])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(to_u64(head.unwrap_or(0)))
}

/// Up to `limit` entries after `since`; `ResyncRequired` outside what is
/// kept.
pub(super) async fn inbox_since(
    conn: &ClientWrapper,
    user: UserId,
    since: u64,
    limit: usize,
) -> OpResult<Vec<InboxEntry>> {
    let row = query_opt(
        conn,
        "SELECT inbox_head, inbox_floor FROM users WHERE id=$1",
        &[&user.0],
    )
    .await?
    .ok_or(StoreError::NotFound("user"))?;
    let (head, floor): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    domain::check_inbox_cursor(since, to_u64(head), to_u64(floor))?;
    let columns = MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT i.cursor, {columns} FROM inbox i
         JOIN messages m ON m.conversation_id=i.conversation_id AND m.seq=i.seq
         WHERE i.user_id=$1 AND i.cursor > $2 ORDER BY i.cursor LIMIT $3"
    );
    let limit = limit.min(i64::MAX as usize) as i64;
    let rows = query(conn, &sql, &[&user.0, &to_i64(since), &limit]).await?;
    rows.iter()
        .map(|row| {
            Ok(InboxEntry {
                cursor: to_u64(row.try_get(0)?),
                message: message_from_row(row, 1)?,
            })
        })
        .collect()
}

/// Drops inbox entries created before `before_ms` and raises the floors;
/// returns how many. Runs alone in its transaction (see
/// `WriteOp::is_exclusive`).
pub(super) async fn prune(conn: &ClientWrapper, before_ms: i64) -> OpResult<u64> {
    // This op runs alone in its transaction, so taking the user rows here,
    // in id order, keeps the global lock order.
    query(
        conn,
        "SELECT id FROM users WHERE id IN (SELECT DISTINCT user_id FROM inbox WHERE created_at_ms < $1)
         ORDER BY id FOR NO KEY UPDATE",
        &[&before_ms],
    )
    .await?;
    // One statement, so the floors and the deletion see the same rows.
    let row = query_one(
        conn,
        "WITH doomed AS (DELETE FROM inbox WHERE created_at_ms < $1 RETURNING user_id, cursor),
              floors AS (SELECT user_id, MAX(cursor) AS floor FROM doomed GROUP BY user_id),
              raised AS (UPDATE users SET inbox_floor = GREATEST(users.inbox_floor, floors.floor)
                         FROM floors WHERE users.id = floors.user_id RETURNING 1)
         SELECT (SELECT COUNT(*) FROM doomed), (SELECT COUNT(*) FROM raised)",
        &[&before_ms],
    )
    .await?;
    Ok(to_u64(row.try_get(0)?))
}
