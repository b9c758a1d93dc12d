//! Messages in SQLite: the send hot path against the writer cache, the
//! general insert used by system messages, repeats, and history.

use std::sync::Arc;

use parley_proto::{ConversationId, MediaInfo, Message, MessageId, UserId, now_ms};
use rusqlite::{Connection, OptionalExtension, params};

use super::conversations::advance_last_seq;
use super::events as message_events;
use super::inbox::push_inbox;
use super::media;
use super::rows::message_from_row;
use super::writer_cache::WriterCache;
use crate::domain::{self, HistoryWindow, MESSAGE_COLUMNS};
use crate::error::{StoreError, StoreResult};
use crate::model::{Appended, Committed, HistoryQuery, NewMessage, Recipient};

/// Why a hot-path append did not store a message.
pub(super) enum AppendFailure {
    /// Refused before anything was written (not a member, unknown
    /// conversation, bad reply): the batch carries on.
    Refused(StoreError),
    /// A write failed half-way: the batch must be rolled back.
    Broken(StoreError),
}

/// The message `sender` sent with `client_msg_id`, if any.
fn find_duplicate(
    conn: &Connection,
    sender: UserId,
    client_msg_id: &str,
) -> StoreResult<Option<Message>> {
    let sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id=?1 AND client_msg_id=?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![sender.0, client_msg_id], message_from_row)
        .optional()?)
}

/// The original of a repeated send, or `refusal`.
fn duplicate_or(
    conn: &Connection,
    new: &NewMessage,
    refusal: StoreError,
) -> Result<Appended, AppendFailure> {
    match find_duplicate(conn, new.sender_id, &new.client_msg_id) {
        Ok(Some(original)) => Ok(Appended {
            message: original,
            duplicate: true,
        }),
        Ok(None) => Err(AppendFailure::Refused(refusal)),
        Err(err) => Err(AppendFailure::Broken(err)),
    }
}

/// Appends a text message on the writer thread: checks against the cache,
/// inserts the message (a repeat of (sender, client_msg_id) is caught by the
/// unique index and answered with the original), then one inbox pointer per
/// member. The seq and cursors are taken from the cache and written back at
/// commit, through the same guarded `last_seq` update as the general path.
pub(super) fn append_hot(
    conn: &Connection,
    cache: &mut WriterCache,
    events: &mut Vec<Committed>,
    new: NewMessage,
) -> Result<Appended, AppendFailure> {
    use AppendFailure::Broken;
    let id = new.conversation_id;
    let (last_seq, members, blocked) = match cache.conversation(conn, id).map_err(Broken)? {
        Some(conversation) => (
            conversation.last_seq,
            conversation.members.clone(),
            conversation.blocked.clone(),
        ),
        None => return duplicate_or(conn, &new, StoreError::NotFound("conversation")),
    };
    let seq = last_seq + 1;
    if let Err(refusal) = domain::check_append(&new, &members, &blocked, seq) {
        return duplicate_or(conn, &new, refusal);
    }
    let now = now_ms();
    // Events and replies read their target first; a plain text send reads
    // nothing.
    let mut effect = None;
    let mut quote = None;
    if new.kind.is_event() {
        // A repeat answers with the original, even if the window has
        // passed since.
        match find_duplicate(conn, new.sender_id, &new.client_msg_id) {
            Ok(Some(original)) => {
                return Ok(Appended {
                    message: original,
                    duplicate: true,
                });
            }
            Ok(None) => {}
            Err(err) => return Err(Broken(err)),
        }
        effect = Some(message_events::plan(conn, &new, now).map_err(AppendFailure::Refused)?);
    } else if let Some(reply_seq) = new.reply_to_seq {
        match message_events::live_quote(conn, id, reply_seq, &members) {
            Ok(found) => quote = found,
            Err(refusal) => return duplicate_or(conn, &new, refusal),
        }
    }
    // Media messages check what they reference (reads only, so a refusal
    // leaves nothing behind).
    let media = if new.kind.is_media() {
        match media::attach(conn, &new) {
            Ok(media) => media,
            Err(err @ (StoreError::Internal(_) | StoreError::Unavailable(_))) => {
                return Err(Broken(err));
            }
            Err(refusal) => return duplicate_or(conn, &new, refusal),
        }
    } else {
        Vec::new()
    };
    // No RETURNING: it costs an ephemeral table per insert (callgrind);
    // the row count says whether the dedup index ignored it.
    let inserted: Option<i64> = conn
        .prepare_cached(
            "INSERT INTO messages(conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms, kind,
                                  text, reply_to_seq, target_seq, emoji, forwarded, media)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                id.0,
                seq as i64,
                new.sender_id.0,
                new.sender_device_id.0,
                new.client_msg_id,
                now,
                new.kind.as_str(),
                (!new.text.is_empty()).then_some(new.text.as_str()),
                new.reply_to_seq.map(|s| s as i64),
                new.target_seq.map(|s| s as i64),
                new.emoji,
                new.forwarded as i64,
                (!media.is_empty()).then(|| MediaInfo::encode_list(&media)),
            ])
        })
        .map(|changed| (changed == 1).then(|| conn.last_insert_rowid()))
        .map_err(|e| Broken(e.into()))?;
    let Some(message_id) = inserted else {
        return match find_duplicate(conn, new.sender_id, &new.client_msg_id) {
            Ok(Some(original)) => Ok(Appended {
                message: original,
                duplicate: true,
            }),
            Ok(None) => Err(Broken(StoreError::Internal(
                "an insert was ignored but no original exists".into(),
            ))),
            Err(err) => Err(Broken(err)),
        };
    };
    // A plain send is indexed for search later, by the indexer thread in
    // its own file (`search_index`).
    if let Some(effect) = effect {
        message_events::apply(conn, id, effect).map_err(Broken)?;
    }
    media::link(conn, id, seq, &media).map_err(Broken)?;
    let mut recipients = Vec::with_capacity(members.len());
    for &user in members.iter() {
        let cursor = cache.deliver(conn, user, id, seq, now).map_err(Broken)?;
        recipients.push(Recipient {
            user_id: user,
            cursor,
        });
    }
    cache.appended(id, new.sender_id, seq, now);
    let mut message = domain::text_message(new, seq, message_id, now);
    message.reply_to = quote;
    message.media = media;
    events.push(Committed::Message {
        message: Arc::new(message.clone()),
        recipients,
    });
    Ok(Appended {
        message,
        duplicate: false,
    })
}

/// Stores `message` (its `seq` must be `last_seq + 1`), advances the
/// sender's own cursors, gives every recipient an inbox pointer, and
/// announces it. Returns the message with its id. The general path: the
/// writer cache is flushed before and dropped after jobs that use it.
pub(super) fn insert_message(
    conn: &Connection,
    events: &mut Vec<Committed>,
    mut message: Message,
    recipients: &[UserId],
) -> StoreResult<Message> {
    let user_ids = message
        .user_ids
        .as_ref()
        .map(|ids| serde_json::to_string(ids).unwrap_or_default());
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO messages(conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms, kind,
                                  text, reply_to_seq, event, user_ids, name, role)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
        )?
        .query_row(
            params![
                message.conversation_id.0,
                message.seq as i64,
                message.sender_id.0,
                message.sender_device_id.map(|d| d.0),
                message.client_msg_id,
                message.sent_at_ms,
                message.kind.as_str(),
                message.text,
                message.reply_to_seq.map(|s| s as i64),
                message.event.map(|e| e.as_str()),
                user_ids,
                message.name,
                message.role.map(|r| r.as_str()),
            ],
            |r| r.get(0),
        )?;
    message.message_id = MessageId(id);
    let seq = message.seq;
    advance_last_seq(
        conn,
        message.conversation_id,
        seq - 1,
        seq,
        message.sent_at_ms,
    )?;
    conn.prepare_cached(
        "UPDATE members SET delivered_up_to=MAX(delivered_up_to, ?3), read_up_to=MAX(read_up_to, ?3)
         WHERE conversation_id=?1 AND user_id=?2",
    )?
    .execute(params![message.conversation_id.0, message.sender_id.0, seq as i64])?;
    let recipients = push_inbox(
        conn,
        recipients,
        message.conversation_id,
        message.seq,
        message.sent_at_ms,
    )?;
    events.push(Committed::Message {
        message: Arc::new(message.clone()),
        recipients,
    });
    Ok(message)
}

/// Keyset history as the viewer may see it (its membership periods only).
pub(super) fn history(conn: &Connection, query: HistoryQuery) -> StoreResult<(Vec<Message>, bool)> {
    let has_period = conn
        .prepare_cached(
            "SELECT 1 FROM member_periods WHERE conversation_id=?1 AND user_id=?2 LIMIT 1",
        )?
        .query_row(params![query.conversation.0, query.viewer.0], |_| Ok(()))
        .optional()?
        .is_some();
    if !has_period {
        return Err(domain::history_refusal(conversation_exists(
            conn,
            query.conversation,
        )?));
    }
    let window = HistoryWindow::of(&query);
    let visible = "EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=?2
                   AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))";
    let order = if window.ascending { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id=?1 AND m.seq > ?3 AND m.seq < ?4
         AND {visible} ORDER BY m.seq {order} LIMIT ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let messages = stmt
        .query_map(
            params![
                query.conversation.0,
                query.viewer.0,
                window.after,
                window.before,
                window.fetch()
            ],
            message_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (mut messages, more) = window.finish(messages);
    message_events::attach_quotes(conn, query.viewer, &mut messages)?;
    Ok((messages, more))
}

fn conversation_exists(conn: &Connection, conversation: ConversationId) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM conversations WHERE id=?1")?
        .query_row([conversation.0], |_| Ok(()))
        .optional()?
        .is_some())
}
