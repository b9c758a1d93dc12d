//! Message events in PostgreSQL (protocol §8): reading an event's target,
//! carrying out what `domain::events` decided on it in the event's own
//! transaction, and reply quotes. The search index (a `pg_trgm` GIN index
//! on `messages.text`) follows every insert and update by itself.

use deadpool_postgres::ClientWrapper;
use parley_proto::{ConversationId, Message, MessageKind, ReplyQuote, UserId};

use super::errors::{OpResult, execute, query_one, query_opt};
use crate::domain::events::{self, Actor, EventEffect, TargetState};
use crate::domain::{to_i64, to_u64};
use crate::model::NewMessage;

/// The message at `seq` of `conversation`, and whether `viewer`'s
/// membership periods include it.
async fn load_target(
    conn: &ClientWrapper,
    conversation: ConversationId,
    seq: u64,
    viewer: UserId,
) -> OpResult<Option<(TargetState, bool)>> {
    let row = query_opt(
        conn,
        "SELECT t.id, t.seq, t.sender_id, t.kind, t.sent_at_ms, t.deleted, t.text, t.reactions,
                EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=t.conversation_id AND p.user_id=$3
                       AND t.seq >= p.from_seq AND (p.to_seq IS NULL OR t.seq <= p.to_seq))
         FROM messages t WHERE t.conversation_id=$1 AND t.seq=$2",
        &[&conversation.0, &to_i64(seq), &viewer.0],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let kind: String = row.try_get(3)?;
    Ok(Some((
        TargetState {
            id: row.try_get(0)?,
            seq: to_u64(row.try_get(1)?),
            sender_id: UserId(row.try_get(2)?),
            kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
            sent_at_ms: row.try_get(4)?,
            deleted: row.try_get(5)?,
            text: row.try_get(6)?,
            reactions: row.try_get(7)?,
        },
        row.try_get(8)?,
    )))
}

/// Before the insert: decides an event on its target, or finds the live
/// quote of a reply (present only when every member may see the target:
/// one frame serves them all; history quotes per viewer).
pub(super) async fn prepare(
    conn: &ClientWrapper,
    new: &NewMessage,
    members: &[UserId],
    now: i64,
) -> OpResult<(Option<EventEffect>, Option<ReplyQuote>)> {
    let conversation = new.conversation_id;
    if new.kind.is_event() {
        let target_seq = new.target_seq.unwrap_or(0);
        let target = load_target(conn, conversation, target_seq, new.sender_id).await?;
        let group_admin = query_opt(
            conn,
            "SELECT 1 FROM conversations c JOIN members m ON m.conversation_id=c.id
             WHERE c.id=$1 AND c.kind='group' AND m.user_id=$2 AND m.active AND m.role='admin'",
            &[&conversation.0, &new.sender_id.0],
        )
        .await?
        .is_some();
        let actor = Actor {
            sees_target: target.as_ref().is_some_and(|(_, sees)| *sees),
            group_admin,
        };
        let target = target.map(|(t, _)| t);
        let effect = events::plan_event(new, target.as_ref(), actor, now)?;
        return Ok((Some(effect), None));
    }
    let Some(reply_seq) = new.reply_to_seq else {
        return Ok((None, None));
    };
    let target = load_target(conn, conversation, reply_seq, new.sender_id).await?;
    let target = target.map(|(t, _)| t);
    events::check_reply_target(target.as_ref())?;
    let Some(target) = target else {
        return Ok((None, None));
    };
    let seeing: i64 = query_one(
        conn,
        "SELECT COUNT(DISTINCT p.user_id) FROM member_periods p JOIN members m
           ON m.conversation_id=p.conversation_id AND m.user_id=p.user_id AND m.active
         WHERE p.conversation_id=$1 AND p.from_seq <= $2 AND (p.to_seq IS NULL OR p.to_seq >= $2)",
        &[&conversation.0, &to_i64(reply_seq)],
    )
    .await?
    .try_get(0)?;
    Ok((
        None,
        events::quote(&target, to_u64(seeing) == members.len() as u64),
    ))
}

/// After the insert: stores an event's fields and a forward flag (plain
/// text sends skip this), and carries out the event's effect on its
/// target.
pub(super) async fn finish(
    conn: &ClientWrapper,
    message: &Message,
    effect: Option<EventEffect>,
) -> OpResult<()> {
    if message.target_seq.is_some() || message.forwarded {
        execute(
            conn,
            "UPDATE messages SET target_seq=$2, emoji=$3, forwarded=$4 WHERE id=$1",
            &[
                &message.message_id.0,
                &message.target_seq.map(to_i64),
                &message.emoji,
                &message.forwarded,
            ],
        )
        .await?;
    }
    let Some(effect) = effect else {
        return Ok(());
    };
    match effect {
        EventEffect::Edit {
            target_id,
            text,
            edited_at_ms,
            ..
        } => {
            execute(
                conn,
                "UPDATE messages SET text=$2, edited_at_ms=$3 WHERE id=$1",
                &[&target_id, &text, &edited_at_ms],
            )
            .await?;
        }
        EventEffect::Delete {
            target_id,
            target_seq,
        } => {
            execute(
                conn,
                "UPDATE messages SET text=NULL, reply_to_seq=NULL, forwarded=FALSE, edited_at_ms=NULL,
                 reactions=NULL, media=NULL, deleted=TRUE WHERE id=$1",
                &[&target_id],
            )
            .await?;
            super::media::unlink(
                conn,
                message.conversation_id,
                target_seq,
                message.sent_at_ms,
            )
            .await?;
            // Earlier edits hold earlier versions of the text.
            execute(
                conn,
                "UPDATE messages SET text=NULL WHERE conversation_id=$1 AND target_seq=$2 AND kind='edit'",
                &[&message.conversation_id.0, &to_i64(target_seq)],
            )
            .await?;
        }
        EventEffect::React {
            target_id,
            reactions,
        } => {
            execute(
                conn,
                "UPDATE messages SET reactions=$2 WHERE id=$1",
                &[&target_id, &reactions],
            )
            .await?;
        }
    }
    Ok(())
}

/// Fills the quote of every reply in `messages` as `viewer` may see it.
pub(super) async fn attach_quotes(
    conn: &ClientWrapper,
    viewer: UserId,
    messages: &mut [Message],
) -> OpResult<()> {
    for message in messages.iter_mut() {
        let Some(reply_seq) = message.reply_to_seq else {
            continue;
        };
        if let Some((target, visible)) =
            load_target(conn, message.conversation_id, reply_seq, viewer).await?
        {
            message.reply_to = events::quote(&target, visible);
        }
    }
    Ok(())
}
