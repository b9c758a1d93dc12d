//! Messages in PostgreSQL: appends (checked by the domain rules against the
//! conversation row the batch holds), the insert every message goes
//! through, and history.

use std::sync::Arc;

use deadpool_postgres::ClientWrapper;
use parley_proto::{Message, MessageId, UserId, now_ms};
use tokio_postgres::types::ToSql;

use super::batch::Batch;
use super::errors::{OpResult, execute, query, query_one, query_opt};
use super::events;
use super::rows::message_from_row;
use crate::domain::{self, HistoryWindow, MESSAGE_COLUMNS, to_i64, to_u64};
use crate::error::StoreError;
use crate::model::{Appended, HistoryQuery, NewMessage};

/// Stores `message` (its `seq` must be `last_seq + 1`), advances the
/// sender's own cursors, queues an inbox pointer for every recipient, and
/// queues its announcement. Returns the message with its id.
pub(super) async fn insert_message(
    conn: &ClientWrapper,
    batch: &mut Batch,
    mut message: Message,
    recipients: &[UserId],
) -> OpResult<Message> {
    let seq = to_i64(message.seq);
    let user_ids: Option<Vec<i64>> = message
        .user_ids
        .as_ref()
        .map(|ids| ids.iter().map(|u| u.0).collect());
    let (device, reply_to) = (
        message.sender_device_id.map(|d| d.0),
        message.reply_to_seq.map(to_i64),
    );
    let (event_name, role) = (
        message.event.map(|e| e.as_str()),
        message.role.map(|r| r.as_str()),
    );
    let kind = message.kind.as_str();
    let guard_params: [&(dyn ToSql + Sync); 3] =
        [&message.conversation_id.0, &seq, &message.sent_at_ms];
    let insert_params: [&(dyn ToSql + Sync); 13] = [
        &message.conversation_id.0,
        &seq,
        &message.sender_id.0,
        &device,
        &message.client_msg_id,
        &message.sent_at_ms,
        &kind,
        &message.text,
        &reply_to,
        &event_name,
        &user_ids,
        &message.name,
        &role,
    ];
    let cursor_params: [&(dyn ToSql + Sync); 3] =
        [&message.conversation_id.0, &message.sender_id.0, &seq];
    // Three statements, one round trip: they are sent back to back and the
    // server runs them in order.
    let (updated, row, _) = futures_util::future::try_join3(
        execute(
            conn,
            "UPDATE conversations SET last_seq=$2::BIGINT, last_activity_ms=$3
             WHERE id=$1 AND last_seq=$2::BIGINT - 1",
            &guard_params,
        ),
        query_one(
            conn,
            "INSERT INTO messages(conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms,
                                  kind, text, reply_to_seq, event, user_ids, name, role)
             VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            &insert_params,
        ),
        execute(
            conn,
            "UPDATE members SET delivered_up_to=GREATEST(delivered_up_to, $3),
                                read_up_to=GREATEST(read_up_to, $3)
             WHERE conversation_id=$1 AND user_id=$2",
            &cursor_params,
        ),
    )
    .await?;
    if updated != 1 {
        // The caller computed seq without holding the row: a bug, never a
        // gap. The op's savepoint undoes the insert.
        return Err(StoreError::Internal(format!(
            "seq {} is not the next seq of {}",
            seq, message.conversation_id
        ))
        .into());
    }
    message.message_id = MessageId(row.try_get(0)?);
    batch.announce(Arc::new(message.clone()), recipients);
    Ok(message)
}

/// Appends a text message; a repeat of (sender, client_msg_id) answers
/// with the original.
pub(super) async fn append(
    conn: &ClientWrapper,
    batch: &mut Batch,
    new: &NewMessage,
) -> OpResult<Appended> {
    let dedup_sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id=$1 AND client_msg_id=$2");
    let dedup_params: [&(dyn ToSql + Sync); 2] = [&new.sender_id.0, &new.client_msg_id];
    let header_params: [&(dyn ToSql + Sync); 1] = [&new.conversation_id.0];
    // Both reads in one round trip. The batch holds this conversation's row,
    // so last_seq and the members cannot change under us until commit.
    let (duplicate, header) = futures_util::future::try_join(
        query_opt(conn, &dedup_sql, &dedup_params),
        query_opt(
            conn,
            "SELECT c.last_seq, ARRAY(SELECT m.user_id FROM members m WHERE m.conversation_id=c.id AND m.active
                                      ORDER BY m.joined_at_ms, m.user_id),
                    ARRAY(SELECT b.blocked_id FROM blocks b JOIN members m ON m.conversation_id=c.id
                            AND m.user_id=b.user_id AND m.active
                          WHERE c.kind='direct' AND b.blocked_id = ANY(SELECT user_id FROM members
                            WHERE conversation_id=c.id AND active))
             FROM conversations c WHERE c.id=$1",
            &header_params,
        ),
    )
    .await?;
    if let Some(row) = duplicate {
        return Ok(Appended {
            message: message_from_row(&row, 0)?,
            duplicate: true,
        });
    }
    let header = header.ok_or(StoreError::NotFound("conversation"))?;
    let seq = to_u64(header.try_get(0)?) + 1;
    let members: Vec<i64> = header.try_get(1)?;
    let recipients: Vec<UserId> = members.into_iter().map(UserId).collect();
    let blocked: Vec<UserId> = header
        .try_get::<_, Vec<i64>>(2)?
        .into_iter()
        .map(UserId)
        .collect();
    domain::check_append(new, &recipients, &blocked, seq)?;
    let now = now_ms();
    // Events and replies read their target (a plain text send: nothing).
    let (effect, quote) = events::prepare(conn, new, &recipients, now).await?;
    // The op stays as data (the batch may be re-run), so the message gets
    // copies of its strings.
    let mut message = domain::text_message(new.clone(), seq, 0, now);
    message.reply_to = quote;
    let message = insert_message(conn, batch, message, &recipients).await?;
    events::finish(conn, &message, effect).await?;
    Ok(Appended {
        message,
        duplicate: false,
    })
}

/// Keyset history as the viewer may see it (its membership periods only).
pub(super) async fn history(
    conn: &ClientWrapper,
    history: &HistoryQuery,
) -> OpResult<(Vec<Message>, bool)> {
    let has_period = query_opt(
        conn,
        "SELECT 1 FROM member_periods WHERE conversation_id=$1 AND user_id=$2 LIMIT 1",
        &[&history.conversation.0, &history.viewer.0],
    )
    .await?
    .is_some();
    if !has_period {
        let exists = query_opt(
            conn,
            "SELECT 1 FROM conversations WHERE id=$1",
            &[&history.conversation.0],
        )
        .await?
        .is_some();
        return Err(domain::history_refusal(exists).into());
    }
    let window = HistoryWindow::of(history);
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id=$1 AND m.seq > $3 AND m.seq < $4
         AND EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=$2
                    AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))
         ORDER BY m.seq {} LIMIT $5",
        if window.ascending { "ASC" } else { "DESC" }
    );
    let rows = query(
        conn,
        &sql,
        &[
            &history.conversation.0,
            &history.viewer.0,
            &window.after,
            &window.before,
            &window.fetch(),
        ],
    )
    .await?;
    let messages = rows
        .iter()
        .map(|r| message_from_row(r, 0))
        .collect::<OpResult<Vec<_>>>()?;
    let (mut messages, more) = window.finish(messages);
    events::attach_quotes(conn, history.viewer, &mut messages).await?;
    Ok((messages, more))
}
