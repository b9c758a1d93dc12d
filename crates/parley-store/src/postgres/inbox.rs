//! The inbox in PostgreSQL, stored as runs (`inbox_runs`), as in SQLite: a
//! user's cursors from a run's `first_cursor` up to the next run's are one
//! conversation's messages from `first_seq` on. Cursors are handed out at
//! the end of a batch, with the users' rows locked in id order; a user row
//! carries its head and the (conversation, seq) at it, so extending a run
//! writes only that row. The run arithmetic is `domain::inbox`.

use std::collections::HashMap;

use deadpool_postgres::ClientWrapper;
use parley_proto::{ConversationId, UserId};
use tokio_postgres::types::ToSql;

use super::batch::Batch;
use super::errors::{OpResult, execute, query, query_one, query_opt};
use super::rows::message_from_row;
use crate::domain::inbox::{InboxRun, InboxTail, replay_spans};
use crate::domain::{self, MESSAGE_COLUMNS, to_i64, to_u64};
use crate::error::StoreError;
use crate::model::{Committed, InboxEntry};

/// Reads a locked user row's tail: `inbox_head, inbox_tail_conversation,
/// inbox_tail_seq` from column `at`.
pub(super) fn tail_from_row(row: &tokio_postgres::Row, at: usize) -> OpResult<InboxTail> {
    let head: i64 = row.try_get(at)?;
    let conversation: Option<i64> = row.try_get(at + 1)?;
    let seq: i64 = row.try_get(at + 2)?;
    Ok(InboxTail {
        head: to_u64(head),
        last: conversation.map(|c| (ConversationId(c), to_u64(seq))),
    })
}

/// Hands out the batch's inbox cursors in op order from `tails` (the
/// locked users' tails, by id), fills them into the announcements, and
/// writes the users' new tails and the runs that start, one statement each
/// (sent together).
pub(super) async fn assign_cursors(
    conn: &ClientWrapper,
    batch: &mut Batch,
    mut tails: HashMap<i64, InboxTail>,
) -> OpResult<()> {
    if batch.pointers.is_empty() {
        return Ok(());
    }
    let (mut run_user, mut run_cursor, mut run_conv, mut run_seq, mut run_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut touched: Vec<i64> = Vec::new();
    for pointer in &batch.pointers {
        let tail = tails.get_mut(&pointer.user.0).ok_or_else(|| {
            StoreError::Internal(format!("recipient {} does not exist", pointer.user))
        })?;
        let (cursor, new_run) = tail.push(pointer.conversation, pointer.seq);
        if new_run {
            run_user.push(pointer.user.0);
            run_cursor.push(to_i64(cursor));
            run_conv.push(pointer.conversation.0);
            run_seq.push(to_i64(pointer.seq));
            run_at.push(pointer.created_at_ms);
        }
        touched.push(pointer.user.0);
        if let Some(Committed::Message { recipients, .. }) = batch.events.get_mut(pointer.event)
            && let Some(recipient) = recipients.get_mut(pointer.slot)
        {
            recipient.cursor = cursor;
        }
    }
    touched.sort_unstable();
    touched.dedup();
    let (mut heads, mut tail_convs, mut tail_seqs) = (
        Vec::with_capacity(touched.len()),
        Vec::with_capacity(touched.len()),
        Vec::with_capacity(touched.len()),
    );
    for id in &touched {
        let tail = &tails[id];
        heads.push(to_i64(tail.head));
        tail_convs.push(tail.last.map(|(c, _)| c.0));
        tail_seqs.push(tail.last.map(|(_, s)| to_i64(s)).unwrap_or(0));
    }
    let update_params: [&(dyn ToSql + Sync); 4] = [&touched, &heads, &tail_convs, &tail_seqs];
    let update = execute(
        conn,
        "UPDATE users SET inbox_head = v.head, inbox_tail_conversation = v.conversation, inbox_tail_seq = v.seq
         FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) AS v(id, head, conversation, seq)
         WHERE users.id = v.id",
        &update_params,
    );
    if run_user.is_empty() {
        update.await?;
        return Ok(());
    }
    let insert_params: [&(dyn ToSql + Sync); 5] =
        [&run_user, &run_cursor, &run_conv, &run_seq, &run_at];
    let insert = execute(
        conn,
        "INSERT INTO inbox_runs(user_id, first_cursor, conversation_id, first_seq, created_at_ms)
         SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[])",
        &insert_params,
    );
    futures_util::future::try_join(update, insert).await?;
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

/// The user's runs from the one holding `from_cursor` on, at most `limit`.
async fn runs_from(
    conn: &ClientWrapper,
    user: UserId,
    from_cursor: u64,
    limit: i64,
) -> OpResult<Vec<InboxRun>> {
    let rows = query(
        conn,
        "SELECT conversation_id, first_cursor, first_seq FROM inbox_runs
         WHERE user_id=$1 AND first_cursor >= COALESCE(
             (SELECT first_cursor FROM inbox_runs WHERE user_id=$1 AND first_cursor <= $2
              ORDER BY first_cursor DESC LIMIT 1), 0)
         ORDER BY first_cursor LIMIT $3",
        &[&user.0, &to_i64(from_cursor), &limit],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(InboxRun {
                conversation: ConversationId(r.try_get(0)?),
                first_cursor: to_u64(r.try_get(1)?),
                first_seq: to_u64(r.try_get(2)?),
            })
        })
        .collect()
}

/// Up to `limit` entries after `since`; `ResyncRequired` outside what is
/// kept. Three statements: the user's bounds and its runs (sent together),
/// then every run's messages in one join.
pub(super) async fn inbox_since(
    conn: &ClientWrapper,
    user: UserId,
    since: u64,
    limit: usize,
) -> OpResult<Vec<InboxEntry>> {
    let limit = limit.min(100_000);
    // Every run holds at least one entry, so `limit` runs (and the start of
    // the next, which ends the last) are enough.
    let run_limit = limit as i64 + 1;
    let (bounds, runs) = futures_util::future::try_join(
        query_opt(
            conn,
            "SELECT inbox_head, inbox_floor FROM users WHERE id=$1",
            &[&user.0],
        ),
        runs_from(conn, user, since + 1, run_limit),
    )
    .await?;
    let bounds = bounds.ok_or(StoreError::NotFound("user"))?;
    let (head, floor): (i64, i64) = (bounds.try_get(0)?, bounds.try_get(1)?);
    domain::check_inbox_cursor(since, to_u64(head), to_u64(floor))?;
    let spans = replay_spans(&runs, since, to_u64(head), limit);
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let (mut conv, mut first, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for span in &spans {
        conv.push(span.conversation.0);
        first.push(to_i64(span.first_seq));
        last.push(to_i64(span.last_seq));
    }
    let columns = MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT s.span, {columns}
         FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) WITH ORDINALITY AS s(conversation_id, first_seq, last_seq, span)
         JOIN LATERAL (SELECT * FROM messages m WHERE m.conversation_id = s.conversation_id
                       AND m.seq BETWEEN s.first_seq AND s.last_seq ORDER BY m.seq) m ON TRUE
         ORDER BY s.span, m.seq"
    );
    let rows = query(conn, &sql, &[&conv, &first, &last]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let span: i64 = row.try_get(0)?;
        let span = spans[(span - 1) as usize];
        let message = message_from_row(row, 1)?;
        out.push(InboxEntry {
            cursor: span.start_cursor + (message.seq - span.first_seq),
            message,
        });
    }
    let wanted: u64 = spans.iter().map(|s| s.len()).sum();
    if out.len() as u64 != wanted {
        return Err(StoreError::Internal(format!(
            "the inbox of {user} names {wanted} messages but {} are stored",
            out.len()
        ))
        .into());
    }
    Ok(out)
}

/// Drops inbox positions whose messages are older than `before_ms`: whole
/// old runs are deleted, a partly old one starts later (the last run
/// possibly at the next cursor to be given out, which keeps it
/// extendable); each user's floor rises to the last dropped cursor.
/// Returns the positions dropped. Runs alone in its transaction (see
/// `WriteOp::is_exclusive`), so taking the user rows here, in id order,
/// keeps the global lock order.
pub(super) async fn prune(conn: &ClientWrapper, before_ms: i64) -> OpResult<u64> {
    let users = query(
        conn,
        "SELECT id, inbox_head FROM users
         WHERE id IN (SELECT DISTINCT user_id FROM inbox_runs WHERE created_at_ms < $1)
         ORDER BY id FOR NO KEY UPDATE",
        &[&before_ms],
    )
    .await?;
    let mut dropped = 0u64;
    for row in users {
        let user = UserId(row.try_get(0)?);
        let head = to_u64(row.try_get(1)?);
        let runs = runs_from(conn, user, 0, i64::MAX).await?;
        let mut floor = 0u64;
        for (i, run) in runs.iter().enumerate() {
            let next_start = runs.get(i + 1).map(|n| n.first_cursor);
            let len = next_start
                .unwrap_or(head + 1)
                .saturating_sub(run.first_cursor);
            let old: i64 = query_one(
                conn,
                "SELECT COUNT(*) FROM messages WHERE conversation_id=$1 AND seq >= $2 AND seq < $3
                 AND sent_at_ms < $4",
                &[
                    &run.conversation.0,
                    &to_i64(run.first_seq),
                    &to_i64(run.first_seq + len),
                    &before_ms,
                ],
            )
            .await?
            .try_get(0)?;
            let old = to_u64(old).min(len);
            if old == 0 {
                break;
            }
            dropped += old;
            floor = run.first_cursor + old - 1;
            if old == len && next_start.is_some() {
                execute(
                    conn,
                    "DELETE FROM inbox_runs WHERE user_id=$1 AND first_cursor=$2",
                    &[&user.0, &to_i64(run.first_cursor)],
                )
                .await?;
                continue;
            }
            execute(
                conn,
                "UPDATE inbox_runs SET first_cursor=$3, first_seq=$4, created_at_ms=$5
                 WHERE user_id=$1 AND first_cursor=$2",
                &[
                    &user.0,
                    &to_i64(run.first_cursor),
                    &to_i64(run.first_cursor + old),
                    &to_i64(run.first_seq + old),
                    &before_ms,
                ],
            )
            .await?;
            break;
        }
        if floor > 0 {
            execute(
                conn,
                "UPDATE users SET inbox_floor=GREATEST(inbox_floor, $2) WHERE id=$1",
                &[&user.0, &to_i64(floor)],
            )
            .await?;
        }
    }
    Ok(dropped)
}
