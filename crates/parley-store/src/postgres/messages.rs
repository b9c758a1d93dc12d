//! Messages in PostgreSQL: appends (checked by the domain rules against the
//! conversation rows the batch holds, and written set-based for a whole run
//! of appends), the insert system messages go through, and history.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::ClientWrapper;
use parley_proto::{Message, MessageId, UserId, now_ms};
use tokio_postgres::types::ToSql;

use super::batch::Batch;
use super::errors::{OpResult, execute, query, query_one, query_opt};
use super::events;
use super::media;
use super::rows::message_from_row;
use crate::domain::{self, HistoryWindow, MESSAGE_COLUMNS, to_i64, to_u64};
use crate::error::{StoreError, StoreResult};
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

/// Whether `new` may take the set-based path: a plain text send (a forward
/// included). Events read and update their target, replies read the
/// message they quote, and media messages read and reference their media, so those run one at a time in their own savepoint
/// (`append`).
pub(super) fn is_set_based(new: &NewMessage) -> bool {
    !new.kind.is_event() && !new.kind.is_media() && new.reply_to_seq.is_none()
}

/// Appends one message that reads another (an event or a reply; see
/// [`is_set_based`]); a repeat of (sender, client_msg_id) answers with the
/// original. Runs in the op's own savepoint.
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
    // Events and replies read their target.
    let (effect, quote) = events::prepare(conn, new, &recipients, now).await?;
    let media = if new.kind.is_media() {
        media::attach(conn, new).await?
    } else {
        Vec::new()
    };
    // The op stays as data (the batch may be re-run), so the message gets
    // copies of its strings.
    let mut message = domain::text_message(new.clone(), seq, 0, now);
    message.reply_to = quote;
    message.media = media;
    let message = insert_message(conn, batch, message, &recipients).await?;
    events::finish(conn, &message, effect).await?;
    media::link(
        conn,
        message.message_id.0,
        message.conversation_id,
        message.seq,
        &message.media,
    )
    .await?;
    Ok(Appended {
        message,
        duplicate: false,
    })
}

/// A conversation as a run of appends sees it: the seq it has reached and
/// its active members.
struct Header {
    last_seq: u64,
    stored_seq: u64,
    last_activity_ms: i64,
    members: Arc<[UserId]>,
    /// Direct conversations: the members the other member blocked.
    blocked: Vec<UserId>,
}

/// What one append of the run came to before the write.
enum Planned {
    /// Answered already: a refusal, or a repeat of a stored message.
    /// (Boxed: a message is large, the other variants are an index.)
    Done(Box<StoreResult<Appended>>),
    /// A repeat of the append at this index of the run.
    RepeatOf(usize),
    /// To be written: index into the rows.
    Row(usize),
}

/// Appends a run of plain text messages ([`is_set_based`]), set-based: one round trip reads every
/// conversation header and every dedup key the run names, the domain
/// rules decide each append in op order (a refused append writes nothing,
/// so no savepoint is needed), and one round trip writes all the messages,
/// the conversations' `last_seq` (guarded by the value read) and the
/// senders' own cursors. Returns one answer per append, in order; `Err`
/// fails the whole batch (a unique violation there means another process
/// committed the same dedup key since the read: the writer re-runs the
/// batch, which then answers with the stored message).
pub(super) async fn append_many(
    conn: &ClientWrapper,
    batch: &mut Batch,
    appends: &[&NewMessage],
) -> OpResult<Vec<StoreResult<Appended>>> {
    let mut conversation_ids: Vec<i64> = appends.iter().map(|a| a.conversation_id.0).collect();
    conversation_ids.sort_unstable();
    conversation_ids.dedup();
    let senders: Vec<i64> = appends.iter().map(|a| a.sender_id.0).collect();
    let keys: Vec<&str> = appends.iter().map(|a| a.client_msg_id.as_str()).collect();
    let dedup_sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE client_msg_id IS NOT NULL
           AND (sender_id, client_msg_id) IN (SELECT * FROM unnest($1::BIGINT[], $2::TEXT[]))"
    );
    // Both reads in one round trip. The batch holds these conversations'
    // rows, so last_seq and the members cannot change under us until commit.
    let (header_rows, stored) = futures_util::future::try_join(
        query(
            conn,
            "SELECT c.id, c.last_seq, c.last_activity_ms,
                    ARRAY(SELECT m.user_id FROM members m WHERE m.conversation_id=c.id AND m.active
                          ORDER BY m.joined_at_ms, m.user_id),
                    ARRAY(SELECT b.blocked_id FROM blocks b JOIN members m ON m.conversation_id=c.id
                            AND m.user_id=b.user_id AND m.active
                          WHERE c.kind='direct' AND b.blocked_id = ANY(SELECT user_id FROM members
                            WHERE conversation_id=c.id AND active))
             FROM conversations c WHERE c.id = ANY($1)",
            &[&conversation_ids],
        ),
        query(conn, &dedup_sql, &[&senders, &keys]),
    )
    .await?;
    let mut headers: HashMap<i64, Header> = HashMap::with_capacity(header_rows.len());
    for row in header_rows {
        let last_seq = to_u64(row.try_get(1)?);
        let members: Vec<i64> = row.try_get(3)?;
        let blocked: Vec<i64> = row.try_get(4)?;
        headers.insert(
            row.try_get(0)?,
            Header {
                last_seq,
                stored_seq: last_seq,
                last_activity_ms: row.try_get(2)?,
                members: members.into_iter().map(UserId).collect(),
                blocked: blocked.into_iter().map(UserId).collect(),
            },
        );
    }
    let mut repeats: HashMap<(i64, String), Message> = HashMap::with_capacity(stored.len());
    for row in &stored {
        let message = message_from_row(row, 0)?;
        if let Some(key) = message.client_msg_id.clone() {
            repeats.insert((message.sender_id.0, key), message);
        }
    }
    let sent_at = now_ms();
    let mut planned = Vec::with_capacity(appends.len());
    let mut rows: Vec<(Message, Arc<[UserId]>)> = Vec::with_capacity(appends.len());
    let mut first_of_key: HashMap<(i64, &str), usize> = HashMap::new();
    for (index, new) in appends.iter().enumerate() {
        let key = (new.sender_id.0, new.client_msg_id.clone());
        if let Some(message) = repeats.get(&key) {
            planned.push(Planned::Done(Box::new(Ok(Appended {
                message: message.clone(),
                duplicate: true,
            }))));
            continue;
        }
        if let Some(&first) = first_of_key.get(&(new.sender_id.0, new.client_msg_id.as_str())) {
            planned.push(Planned::RepeatOf(first));
            continue;
        }
        let Some(header) = headers.get_mut(&new.conversation_id.0) else {
            planned.push(Planned::Done(Box::new(Err(StoreError::NotFound(
                "conversation",
            )))));
            continue;
        };
        let seq = header.last_seq + 1;
        if let Err(refusal) = domain::check_append(new, &header.members, &header.blocked, seq) {
            planned.push(Planned::Done(Box::new(Err(refusal))));
            continue;
        }
        header.last_seq = seq;
        header.last_activity_ms = header.last_activity_ms.max(sent_at);
        first_of_key.insert((new.sender_id.0, new.client_msg_id.as_str()), index);
        // The op stays as data (the batch may be re-run), so the message
        // gets copies of its strings.
        let message = domain::text_message((*new).clone(), seq, 0, sent_at);
        planned.push(Planned::Row(rows.len()));
        rows.push((message, header.members.clone()));
    }
    if !rows.is_empty() {
        write_messages(conn, &mut rows, &headers).await?;
    }
    for (message, members) in &rows {
        batch.announce(Arc::new(message.clone()), members);
    }
    let mut answers: Vec<StoreResult<Appended>> = Vec::with_capacity(appends.len());
    for plan in &planned {
        let answer = match plan {
            Planned::Done(answer) => (**answer).clone(),
            Planned::Row(row) => Ok(Appended {
                message: rows[*row].0.clone(),
                duplicate: false,
            }),
            Planned::RepeatOf(first) => match &answers[*first] {
                Ok(first) => Ok(Appended {
                    message: first.message.clone(),
                    duplicate: true,
                }),
                Err(err) => Err(err.clone()),
            },
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Writes the planned text messages (filling in their ids), the
/// conversations' new `last_seq`, and the senders' own cursors: three
/// statements sent together.
async fn write_messages(
    conn: &ClientWrapper,
    rows: &mut [(Message, Arc<[UserId]>)],
    headers: &HashMap<i64, Header>,
) -> OpResult<()> {
    let n = rows.len();
    let mut forwarded = Vec::with_capacity(n);
    let (mut conv, mut seq, mut sender, mut device, mut key, mut at, mut text, mut reply) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    // The sender's cursors move to its newest message in each conversation.
    let mut own: HashMap<(i64, i64), i64> = HashMap::new();
    for (message, _) in rows.iter() {
        conv.push(message.conversation_id.0);
        seq.push(to_i64(message.seq));
        sender.push(message.sender_id.0);
        device.push(message.sender_device_id.map(|d| d.0));
        key.push(message.client_msg_id.as_deref());
        at.push(message.sent_at_ms);
        text.push(message.text.as_deref());
        reply.push(message.reply_to_seq.map(to_i64));
        forwarded.push(message.forwarded);
        let newest = own
            .entry((message.conversation_id.0, message.sender_id.0))
            .or_default();
        *newest = (*newest).max(to_i64(message.seq));
    }
    let (mut guard_id, mut guard_old, mut guard_new, mut guard_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (&id, header) in headers.iter().filter(|(_, h)| h.last_seq != h.stored_seq) {
        guard_id.push(id);
        guard_old.push(to_i64(header.stored_seq));
        guard_new.push(to_i64(header.last_seq));
        guard_at.push(header.last_activity_ms);
    }
    let (mut own_conv, mut own_user, mut own_seq) = (Vec::new(), Vec::new(), Vec::new());
    for (&(c, u), &s) in &own {
        own_conv.push(c);
        own_user.push(u);
        own_seq.push(s);
    }
    let insert_params: [&(dyn ToSql + Sync); 9] = [
        &conv, &seq, &sender, &device, &key, &at, &text, &reply, &forwarded,
    ];
    let guard_params: [&(dyn ToSql + Sync); 4] = [&guard_id, &guard_old, &guard_new, &guard_at];
    let own_params: [&(dyn ToSql + Sync); 3] = [&own_conv, &own_user, &own_seq];
    // Three statements, one round trip: the server runs them in order.
    let (inserted, guarded, _) = futures_util::future::try_join3(
        query(
            conn,
            "INSERT INTO messages(conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms,
                                  kind, text, reply_to_seq, forwarded)
             SELECT v.conversation_id, v.seq, v.sender_id, v.device, v.client_msg_id, v.sent_at_ms, 'text',
                    v.text, v.reply_to_seq, v.forwarded
             FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::BIGINT[],
                         $7::TEXT[], $8::BIGINT[], $9::BOOLEAN[])
                  AS v(conversation_id, seq, sender_id, device, client_msg_id, sent_at_ms, text, reply_to_seq,
                       forwarded)
             RETURNING conversation_id, seq, id",
            &insert_params,
        ),
        execute(
            conn,
            "UPDATE conversations SET last_seq = v.new_seq, last_activity_ms = GREATEST(last_activity_ms, v.at)
             FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) AS v(id, old_seq, new_seq, at)
             WHERE conversations.id = v.id AND conversations.last_seq = v.old_seq",
            &guard_params,
        ),
        execute(
            conn,
            "UPDATE members SET delivered_up_to = GREATEST(delivered_up_to, v.seq),
                                read_up_to = GREATEST(read_up_to, v.seq)
             FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS v(conversation_id, user_id, seq)
             WHERE members.conversation_id = v.conversation_id AND members.user_id = v.user_id",
            &own_params,
        ),
    )
    .await?;
    if guarded != guard_id.len() as u64 || inserted.len() != n {
        // The seqs were computed from rows the batch holds: a bug, never a
        // gap. Failing the batch rolls everything back.
        return Err(StoreError::Internal(format!(
            "{} of {} conversations had moved, {} of {n} messages stored",
            guard_id.len() as u64 - guarded.min(guard_id.len() as u64),
            guard_id.len(),
            inserted.len()
        ))
        .into());
    }
    let mut ids: HashMap<(i64, i64), i64> = HashMap::with_capacity(n);
    for row in inserted {
        ids.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
    }
    for (message, _) in rows.iter_mut() {
        let id = ids
            .get(&(message.conversation_id.0, to_i64(message.seq)))
            .ok_or_else(|| StoreError::Internal("an inserted message has no id".into()))?;
        message.message_id = MessageId(*id);
    }
    Ok(())
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
