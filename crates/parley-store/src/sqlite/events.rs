//! Message events in SQLite (protocol §8): reading an event's target,
//! carrying out what `domain::events` decided on it (in the event's own
//! transaction), the search index entries of text, and reply quotes.

use parley_proto::{ConversationId, Message, MessageKind, ReplyQuote, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::search_index;
use crate::domain::events::{self, Actor, EventEffect, TargetState};
use crate::domain::to_u64;
use crate::error::StoreResult;
use crate::model::NewMessage;

const TARGET_COLUMNS: &str = "id, seq, sender_id, kind, sent_at_ms, deleted, text, reactions";

fn target_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TargetState> {
    Ok(TargetState {
        id: r.get(0)?,
        seq: to_u64(r.get(1)?),
        sender_id: UserId(r.get(2)?),
        kind: MessageKind::parse(&r.get::<_, String>(3)?).unwrap_or(MessageKind::Text),
        sent_at_ms: r.get(4)?,
        deleted: r.get::<_, i64>(5)? != 0,
        text: r.get(6)?,
        reactions: r.get(7)?,
    })
}

/// The message at `seq` of `conversation`, if any.
pub(super) fn load_target(
    conn: &Connection,
    conversation: ConversationId,
    seq: u64,
) -> StoreResult<Option<TargetState>> {
    let sql = format!("SELECT {TARGET_COLUMNS} FROM messages WHERE conversation_id=?1 AND seq=?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![conversation.0, seq as i64], target_from_row)
        .optional()?)
}

/// Whether `user`'s membership periods of `conversation` include `seq`.
pub(super) fn sees(
    conn: &Connection,
    conversation: ConversationId,
    user: UserId,
    seq: u64,
) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM member_periods WHERE conversation_id=?1 AND user_id=?2
             AND from_seq <= ?3 AND (to_seq IS NULL OR to_seq >= ?3) LIMIT 1",
        )?
        .query_row(params![conversation.0, user.0, seq as i64], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Decides the event `new` (its shape and membership already checked).
pub(super) fn plan(conn: &Connection, new: &NewMessage, now: i64) -> StoreResult<EventEffect> {
    let conversation = new.conversation_id;
    let target_seq = new.target_seq.unwrap_or(0);
    let target = load_target(conn, conversation, target_seq)?;
    let group_admin: bool = conn
        .prepare_cached(
            "SELECT 1 FROM conversations c JOIN members m ON m.conversation_id=c.id
             WHERE c.id=?1 AND c.kind='group' AND m.user_id=?2 AND m.active=1 AND m.role='admin'",
        )?
        .query_row(params![conversation.0, new.sender_id.0], |_| Ok(()))
        .optional()?
        .is_some();
    let actor = Actor {
        sees_target: target.is_some() && sees(conn, conversation, new.sender_id, target_seq)?,
        group_admin,
    };
    events::plan_event(new, target.as_ref(), actor, now)
}

/// Carries out `effect` on its target; an edit or a delete also tells the
/// search indexer that the target's text changed.
pub(super) fn apply(
    conn: &Connection,
    conversation: ConversationId,
    effect: EventEffect,
) -> StoreResult<()> {
    match effect {
        EventEffect::Edit {
            target_id,
            text,
            edited_at_ms,
            ..
        } => {
            conn.prepare_cached("UPDATE messages SET text=?2, edited_at_ms=?3 WHERE id=?1")?
                .execute(params![target_id, text, edited_at_ms])?;
            search_index::changed(conn, target_id)?;
        }
        EventEffect::Delete {
            target_id,
            target_seq,
        } => {
            conn.prepare_cached(
                "UPDATE messages SET text=NULL, reply_to_seq=NULL, forwarded=0, edited_at_ms=NULL,
                 reactions=NULL, media=NULL, deleted=1 WHERE id=?1",
            )?
            .execute([target_id])?;
            super::media::unlink(conn, conversation, target_seq, parley_proto::now_ms())?;
            // Earlier edits hold earlier versions of the text.
            conn.prepare_cached(
                "UPDATE messages SET text=NULL WHERE conversation_id=?1 AND target_seq=?2 AND kind='edit'",
            )?
            .execute(params![conversation.0, target_seq as i64])?;
            search_index::changed(conn, target_id)?;
        }
        EventEffect::React {
            target_id,
            reactions,
        } => {
            conn.prepare_cached("UPDATE messages SET reactions=?2 WHERE id=?1")?
                .execute(params![target_id, reactions])?;
        }
    }
    Ok(())
}

/// The quote a reply to `reply_seq` carries on its live frame: refused
/// when the target is an event; present only when every member may see
/// the target (one frame serves them all; history quotes per viewer).
pub(super) fn live_quote(
    conn: &Connection,
    conversation: ConversationId,
    reply_seq: u64,
    members: &[UserId],
) -> StoreResult<Option<ReplyQuote>> {
    let target = load_target(conn, conversation, reply_seq)?;
    events::check_reply_target(target.as_ref())?;
    let Some(target) = target else {
        return Ok(None);
    };
    let seeing: i64 = conn
        .prepare_cached(
            "SELECT COUNT(DISTINCT p.user_id) FROM member_periods p JOIN members m
               ON m.conversation_id=p.conversation_id AND m.user_id=p.user_id AND m.active=1
             WHERE p.conversation_id=?1 AND p.from_seq <= ?2 AND (p.to_seq IS NULL OR p.to_seq >= ?2)",
        )?
        .query_row(params![conversation.0, reply_seq as i64], |r| r.get(0))?;
    Ok(events::quote(
        &target,
        to_u64(seeing) == members.len() as u64,
    ))
}

/// Fills the quote of every reply in `messages` as `viewer` may see it.
pub(super) fn attach_quotes(
    conn: &Connection,
    viewer: UserId,
    messages: &mut [Message],
) -> StoreResult<()> {
    for message in messages.iter_mut() {
        let Some(reply_seq) = message.reply_to_seq else {
            continue;
        };
        let Some(target) = load_target(conn, message.conversation_id, reply_seq)? else {
            continue;
        };
        let visible = sees(conn, message.conversation_id, viewer, reply_seq)?;
        message.reply_to = events::quote(&target, visible);
    }
    Ok(())
}
