//! Message events (protocol §8): the shape of every kind of send, who may
//! edit, delete or react and within which window, the aggregated state an
//! event leaves on its target, and the quote a reply carries.
//!
//! Engines read the target row (and the actor's role and visibility of it)
//! inside their transaction, ask [`plan_event`] what to do, and carry the
//! resulting [`EventEffect`] out in their own SQL, in the same transaction
//! as the event's own row.

use parley_proto::{MessageKind, Reaction, ReplyQuote, UserId};
use unicode_segmentation::UnicodeSegmentation;

use crate::error::{StoreError, StoreResult};
use crate::model::NewMessage;

/// Longest emoji, in bytes (one grapheme cluster, e.g. a family with skin
/// tones, stays well below).
pub(crate) const MAX_EMOJI_BYTES: usize = 32;

/// Checks that a send has the fields its kind needs and no others.
pub(crate) fn check_shape(new: &NewMessage) -> StoreResult<()> {
    let invalid = |why: &str| Err(StoreError::Invalid(why.into()));
    super::media::check_shape(new)?;
    match new.kind {
        // The caption may be empty; the media rules are `media`'s.
        MessageKind::Image | MessageKind::Video | MessageKind::Audio | MessageKind::File => {}
        MessageKind::Text => {
            if new.target_seq.is_some() || new.emoji.is_some() {
                return invalid("a text message takes no target_seq or emoji");
            }
            if new.text.is_empty() {
                return invalid("text must not be empty");
            }
        }
        MessageKind::System => return invalid("system messages are written by the server"),
        MessageKind::Edit | MessageKind::Delete | MessageKind::Reaction => {
            if new.target_seq.is_none() {
                return invalid("an event needs target_seq");
            }
            if new.reply_to_seq.is_some() || new.forwarded {
                return invalid("an event takes no reply_to_seq or forwarded");
            }
            match new.kind {
                MessageKind::Edit => {
                    if new.text.is_empty() {
                        return invalid("an edit needs the new text");
                    }
                    if new.emoji.is_some() {
                        return invalid("an edit takes no emoji");
                    }
                }
                MessageKind::Delete => {
                    if !new.text.is_empty() || new.emoji.is_some() {
                        return invalid("a delete takes no text or emoji");
                    }
                }
                _ => {
                    if !new.text.is_empty() {
                        return invalid("a reaction takes no text");
                    }
                    check_emoji(new.emoji.as_deref().unwrap_or(""))?;
                }
            }
        }
    }
    Ok(())
}

/// A reaction's emoji: one grapheme cluster of at most
/// [`MAX_EMOJI_BYTES`] bytes, or `""` to remove the reaction.
pub(crate) fn check_emoji(emoji: &str) -> StoreResult<()> {
    if emoji.is_empty() {
        return Ok(());
    }
    if emoji.len() > MAX_EMOJI_BYTES || emoji.graphemes(true).count() != 1 {
        return Err(StoreError::Invalid(format!(
            "emoji must be one grapheme cluster of at most {MAX_EMOJI_BYTES} bytes"
        )));
    }
    if emoji.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StoreError::Invalid("emoji must be visible".into()));
    }
    Ok(())
}

/// The target of an event (or of a reply), as its row holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetState {
    /// The row's id.
    pub(crate) id: i64,
    pub(crate) seq: u64,
    pub(crate) sender_id: UserId,
    pub(crate) kind: MessageKind,
    pub(crate) sent_at_ms: i64,
    pub(crate) deleted: bool,
    pub(crate) text: Option<String>,
    /// The stored JSON of its reactions.
    pub(crate) reactions: Option<String>,
}

/// What the actor of an event is to its conversation and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Actor {
    /// The actor's membership periods include the target's seq.
    pub(crate) sees_target: bool,
    /// The conversation is a group and the actor is one of its admins.
    pub(crate) group_admin: bool,
}

/// What an event does to its target, carried out by the engine in the
/// event's transaction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventEffect {
    /// Replace the target's text; it no longer matches its old text in
    /// search.
    Edit {
        target_id: i64,
        target_seq: u64,
        text: String,
        edited_at_ms: i64,
    },
    /// Mark the target deleted and purge its text, caption, reply and
    /// reactions, the text of every earlier edit event of it, its media
    /// references and its search entry.
    Delete { target_id: i64, target_seq: u64 },
    /// Store the target's new reactions (`None`: there are none left).
    React {
        target_id: i64,
        reactions: Option<String>,
    },
}

fn decode_reactions(stored: Option<&str>) -> Vec<Reaction> {
    stored.map(Reaction::decode_list).unwrap_or_default()
}

/// The stored reactions decoded (an unreadable value reads as none).
pub(crate) fn reactions_of(stored: Option<&str>) -> Vec<Reaction> {
    decode_reactions(stored)
}

/// `reactions` after `user` reacted with `emoji` (`""`: removed its
/// reaction). Each user has at most one reaction per message; an emoji
/// nobody uses any more disappears; emoji keep the order they first
/// appeared in.
pub(crate) fn react(mut reactions: Vec<Reaction>, user: UserId, emoji: &str) -> Vec<Reaction> {
    for reaction in reactions.iter_mut() {
        reaction.user_ids.retain(|&u| u != user);
    }
    if !emoji.is_empty() {
        match reactions.iter_mut().find(|r| r.emoji == emoji) {
            Some(reaction) => reaction.user_ids.push(user),
            None => reactions.push(Reaction {
                emoji: emoji.to_owned(),
                user_ids: vec![user],
            }),
        }
    }
    reactions.retain(|r| !r.user_ids.is_empty());
    reactions
}

/// Decides an `edit`, `delete` or `reaction` by `new.sender_id` on
/// `target` at `now`: unknown or invisible target → `NotFound`; an event
/// aimed at an event → `Invalid`; not allowed or past the window →
/// `Forbidden`.
pub(crate) fn plan_event(
    new: &NewMessage,
    target: Option<&TargetState>,
    actor: Actor,
    now: i64,
) -> StoreResult<EventEffect> {
    let target = match target {
        Some(target) if actor.sees_target => target,
        _ => return Err(StoreError::NotFound("message")),
    };
    if target.kind.is_event() {
        return Err(StoreError::Invalid(
            "an event cannot be aimed at another event".into(),
        ));
    }
    if target.kind == MessageKind::System {
        return Err(StoreError::Forbidden("system messages cannot be changed"));
    }
    if target.deleted {
        return Err(StoreError::Forbidden("the message was deleted"));
    }
    let own = target.sender_id == new.sender_id;
    let age = now.saturating_sub(target.sent_at_ms);
    match new.kind {
        MessageKind::Edit => {
            if !own {
                return Err(StoreError::Forbidden("only the sender may edit a message"));
            }
            if age > new.windows.edit_ms {
                return Err(StoreError::Forbidden("the edit window has passed"));
            }
            Ok(EventEffect::Edit {
                target_id: target.id,
                target_seq: target.seq,
                text: new.text.clone(),
                edited_at_ms: now,
            })
        }
        MessageKind::Delete => {
            let sender_in_window = own && age <= new.windows.delete_ms;
            if !sender_in_window && !actor.group_admin {
                return Err(StoreError::Forbidden(if own {
                    "the delete window has passed"
                } else {
                    "only the sender or a group admin may delete a message"
                }));
            }
            Ok(EventEffect::Delete {
                target_id: target.id,
                target_seq: target.seq,
            })
        }
        MessageKind::Reaction => {
            let emoji = new.emoji.as_deref().unwrap_or("");
            let reactions = react(
                decode_reactions(target.reactions.as_deref()),
                new.sender_id,
                emoji,
            );
            Ok(EventEffect::React {
                target_id: target.id,
                reactions: (!reactions.is_empty()).then(|| Reaction::encode_list(&reactions)),
            })
        }
        MessageKind::Text
        | MessageKind::System
        | MessageKind::Image
        | MessageKind::Video
        | MessageKind::Audio
        | MessageKind::File => Err(StoreError::Invalid(
            "only edit, delete and reaction are events".into(),
        )),
    }
}

/// Checks what a reply answers: it must not be an event.
pub(crate) fn check_reply_target(target: Option<&TargetState>) -> StoreResult<()> {
    match target {
        Some(target) if target.kind.is_event() => Err(StoreError::Invalid(
            "reply_to_seq names an event, not a message".into(),
        )),
        _ => Ok(()),
    }
}

/// The quote of `target` for a viewer, or `None` when the viewer may not
/// see it.
pub(crate) fn quote(target: &TargetState, visible: bool) -> Option<ReplyQuote> {
    if !visible {
        return None;
    }
    Some(ReplyQuote {
        seq: target.seq,
        sender_id: target.sender_id,
        kind: target.kind,
        text: if target.deleted {
            None
        } else {
            target
                .text
                .as_ref()
                .map(|t| t.chars().take(ReplyQuote::MAX_TEXT_CHARS).collect())
        },
        deleted: target.deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_proto::ConversationId;

    fn send(kind: MessageKind, sender: i64) -> NewMessage {
        NewMessage {
            conversation_id: ConversationId(1),
            sender_id: UserId(sender),
            client_msg_id: "k".into(),
            kind,
            target_seq: Some(3),
            ..NewMessage::default()
        }
    }

    fn target(sender: i64, sent_at_ms: i64) -> TargetState {
        TargetState {
            id: 30,
            seq: 3,
            sender_id: UserId(sender),
            kind: MessageKind::Text,
            sent_at_ms,
            deleted: false,
            text: Some("hello".into()),
            reactions: None,
        }
    }

    const MEMBER: Actor = Actor {
        sees_target: true,
        group_admin: false,
    };
    const ADMIN: Actor = Actor {
        sees_target: true,
        group_admin: true,
    };

    #[test]
    fn shapes_follow_the_kind() {
        let mut text = send(MessageKind::Text, 1);
        text.target_seq = None;
        text.text = "hi".into();
        assert!(check_shape(&text).is_ok());
        text.emoji = Some("👍".into());
        assert!(check_shape(&text).is_err());
        let mut edit = send(MessageKind::Edit, 1);
        assert!(check_shape(&edit).is_err(), "edit without text");
        edit.text = "new".into();
        assert!(check_shape(&edit).is_ok());
        edit.target_seq = None;
        assert!(check_shape(&edit).is_err());
        let mut delete = send(MessageKind::Delete, 1);
        assert!(check_shape(&delete).is_ok());
        delete.text = "x".into();
        assert!(check_shape(&delete).is_err());
        let mut reaction = send(MessageKind::Reaction, 1);
        assert!(check_shape(&reaction).is_ok(), "no emoji removes");
        reaction.emoji = Some("👍🏽".into());
        assert!(check_shape(&reaction).is_ok());
        reaction.reply_to_seq = Some(1);
        assert!(check_shape(&reaction).is_err());
        assert!(check_shape(&send(MessageKind::System, 1)).is_err());
    }

    #[test]
    fn an_emoji_is_one_grapheme_cluster() {
        for ok in ["", "👍", "❤️", "👨‍👩‍👧‍👦", "🇫🇷", "a"] {
            assert!(check_emoji(ok).is_ok(), "{ok}");
        }
        for bad in ["👍👍", "ab", " ", "\n", &"👍".repeat(9)] {
            assert!(check_emoji(bad).is_err(), "{bad}");
        }
        // One grapheme cluster, but over 32 bytes.
        let long = format!("a{}", "\u{301}".repeat(20));
        assert!(check_emoji(&long).is_err());
    }

    #[test]
    fn edits_are_the_senders_within_the_window() {
        let mut edit = send(MessageKind::Edit, 1);
        edit.text = "new".into();
        let window = edit.windows.edit_ms;
        let effect = plan_event(&edit, Some(&target(1, 1000)), MEMBER, 1000 + window).unwrap();
        assert!(
            matches!(effect, EventEffect::Edit { ref text, edited_at_ms, .. } if text == "new" && edited_at_ms == 1000 + window)
        );
        assert!(matches!(
            plan_event(&edit, Some(&target(1, 1000)), MEMBER, 1001 + window),
            Err(StoreError::Forbidden(_))
        ));
        assert!(matches!(
            plan_event(&edit, Some(&target(2, 1000)), ADMIN, 1000),
            Err(StoreError::Forbidden(_))
        ));
    }

    #[test]
    fn deletes_are_the_senders_in_the_window_or_an_admins_at_any_time() {
        let delete = send(MessageKind::Delete, 1);
        let window = delete.windows.delete_ms;
        assert!(plan_event(&delete, Some(&target(1, 0)), MEMBER, window).is_ok());
        assert!(matches!(
            plan_event(&delete, Some(&target(1, 0)), MEMBER, window + 1),
            Err(StoreError::Forbidden(_))
        ));
        assert!(matches!(
            plan_event(&delete, Some(&target(2, 0)), MEMBER, 0),
            Err(StoreError::Forbidden(_))
        ));
        assert!(plan_event(&delete, Some(&target(2, 0)), ADMIN, window * 10).is_ok());
        let mut gone = target(1, 0);
        gone.deleted = true;
        assert!(matches!(
            plan_event(&delete, Some(&gone), ADMIN, 0),
            Err(StoreError::Forbidden(_))
        ));
    }

    #[test]
    fn targets_must_exist_be_visible_and_not_be_events() {
        let reaction = send(MessageKind::Reaction, 1);
        assert!(matches!(
            plan_event(&reaction, None, MEMBER, 0),
            Err(StoreError::NotFound(_))
        ));
        let hidden = Actor {
            sees_target: false,
            group_admin: true,
        };
        assert!(matches!(
            plan_event(&reaction, Some(&target(1, 0)), hidden, 0),
            Err(StoreError::NotFound(_))
        ));
        let mut event = target(1, 0);
        event.kind = MessageKind::Reaction;
        assert!(matches!(
            plan_event(&reaction, Some(&event), MEMBER, 0),
            Err(StoreError::Invalid(_))
        ));
        assert!(check_reply_target(Some(&event)).is_err());
        assert!(check_reply_target(Some(&target(1, 0))).is_ok());
        let mut system = target(1, 0);
        system.kind = MessageKind::System;
        assert!(matches!(
            plan_event(&reaction, Some(&system), MEMBER, 0),
            Err(StoreError::Forbidden(_))
        ));
    }

    #[test]
    fn one_reaction_per_user_aggregated_by_emoji() {
        let (a, b) = (UserId(1), UserId(2));
        let r = react(vec![], a, "👍");
        let r = react(r, b, "👍");
        let r = react(r, a, "❤️");
        assert_eq!(
            r,
            vec![
                Reaction {
                    emoji: "👍".into(),
                    user_ids: vec![b]
                },
                Reaction {
                    emoji: "❤️".into(),
                    user_ids: vec![a]
                }
            ]
        );
        let r = react(r, b, "");
        assert_eq!(r.len(), 1);
        let r = react(r, a, "");
        assert!(r.is_empty());
    }

    #[test]
    fn quotes_are_cut_and_hide_deleted_text() {
        let mut long = target(1, 0);
        long.text = Some("é".repeat(500));
        let quote = quote(&long, true).unwrap();
        assert_eq!(quote.text.unwrap().chars().count(), 200);
        assert!(super::quote(&long, false).is_none());
        let mut gone = target(1, 0);
        gone.deleted = true;
        let quote = super::quote(&gone, true).unwrap();
        assert!(quote.deleted && quote.text.is_none());
    }
}
