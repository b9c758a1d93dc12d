//! Message rules: what a text append must satisfy, when an append is not
//! written at all (its asker is gone), the shape of text and `system`
//! messages, and the window a history page reads.

use parley_proto::{ConversationId, Message, MessageId, MessageKind, SystemEvent, UserId};

use super::to_i64;
use crate::error::{StoreError, StoreResult};
use crate::model::{HistoryQuery, NewMessage};

/// Most messages one history page returns.
pub(crate) const MAX_HISTORY_LIMIT: usize = 100;

/// The refusal for someone who is not an active member.
pub(crate) fn not_a_member() -> StoreError {
    StoreError::Forbidden("you are not a member of this conversation")
}

/// Whether an append's asker is gone (its socket closed, its HTTP request
/// was dropped) by the time the writer reaches it. Such an append is
/// skipped, not written: nobody can be told it is durable, so not writing
/// it breaks no promise, and the client resends it under the same
/// `client_msg_id`. Without this, a writer behind on its queue (overload,
/// or shutdown after the grace period closed every socket) would keep
/// working through appends nobody waits for, while the clients that left
/// them reconnect and queue them again. Counted in
/// `parley_abandoned_sends_total`.
pub(crate) fn abandoned<T>(reply: &tokio::sync::oneshot::Sender<T>) -> bool {
    let gone = reply.is_closed();
    if gone {
        metrics::counter!("parley_abandoned_sends_total").increment(1);
    }
    gone
}

/// Checks an append that would get `seq`, given the conversation's
/// active `members` and the members `blocked` from sending into it (in a
/// direct conversation, a user the other member blocks): the send must
/// have its kind's shape, the sender must be a member and not blocked,
/// and `reply_to_seq` and `target_seq` must name earlier messages.
pub(crate) fn check_append(
    new: &NewMessage,
    members: &[UserId],
    blocked: &[UserId],
    seq: u64,
) -> StoreResult<()> {
    super::events::check_shape(new)?;
    if !members.contains(&new.sender_id) {
        return Err(not_a_member());
    }
    if blocked.contains(&new.sender_id) {
        return Err(StoreError::Forbidden(
            "you cannot send to a user who blocked you",
        ));
    }
    if let Some(target) = new.target_seq
        && (target == 0 || target >= seq)
    {
        return Err(StoreError::NotFound("message"));
    }
    if let Some(reply) = new.reply_to_seq
        && (reply == 0 || reply >= seq)
    {
        return Err(StoreError::Invalid(
            "reply_to_seq does not name an earlier message".into(),
        ));
    }
    Ok(())
}

/// The stored message (text or event) for `new` at `seq` (the id is 0
/// until the engine knows it). Takes `new` by value so the hot path moves
/// its strings.
pub(crate) fn text_message(new: NewMessage, seq: u64, message_id: i64, sent_at_ms: i64) -> Message {
    let text = (!new.text.is_empty()).then_some(new.text);
    Message {
        conversation_id: new.conversation_id,
        seq,
        message_id: MessageId(message_id),
        sender_id: new.sender_id,
        sender_device_id: Some(new.sender_device_id),
        client_msg_id: Some(new.client_msg_id),
        sent_at_ms,
        kind: new.kind,
        text,
        reply_to_seq: new.reply_to_seq,
        event: None,
        user_ids: None,
        name: None,
        role: None,
        target_seq: new.target_seq,
        emoji: new.emoji,
        forwarded: new.forwarded,
        ..Message::default()
    }
}

/// A `system` message recording a membership change (its id is assigned on
/// insert).
pub(crate) fn system_message(
    conversation: ConversationId,
    seq: u64,
    actor: UserId,
    event: SystemEvent,
    user_ids: Vec<UserId>,
    now: i64,
) -> Message {
    Message {
        conversation_id: conversation,
        seq,
        message_id: MessageId(0),
        sender_id: actor,
        sender_device_id: None,
        client_msg_id: None,
        sent_at_ms: now,
        kind: MessageKind::System,
        text: None,
        reply_to_seq: None,
        event: Some(event),
        user_ids: Some(user_ids),
        name: None,
        role: None,
        ..Message::default()
    }
}

/// Why a viewer with no membership period gets no history: the
/// conversation exists (not theirs) or it does not.
pub(crate) fn history_refusal(conversation_exists: bool) -> StoreError {
    if conversation_exists {
        not_a_member()
    } else {
        StoreError::NotFound("conversation")
    }
}

/// The seq window and order of one history page. Engines select the seqs
/// strictly between `after` and `before`, in `ascending` order, at most
/// [`HistoryWindow::fetch`] rows, then hand them to
/// [`HistoryWindow::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryWindow {
    /// Only seqs above this.
    pub(crate) after: i64,
    /// Only seqs below this.
    pub(crate) before: i64,
    /// Messages in the page (1 to [`MAX_HISTORY_LIMIT`]).
    pub(crate) limit: usize,
    /// Oldest first (paging forward from `after_seq`), else newest first.
    pub(crate) ascending: bool,
}

impl HistoryWindow {
    /// The window `query` asks for.
    pub(crate) fn of(query: &HistoryQuery) -> HistoryWindow {
        HistoryWindow {
            after: query.after_seq.map(to_i64).unwrap_or(0),
            before: query.before_seq.map(to_i64).unwrap_or(i64::MAX),
            limit: query.limit.clamp(1, MAX_HISTORY_LIMIT),
            ascending: query.after_seq.is_some(),
        }
    }

    /// Rows to read: one more than the page, to learn whether there is more.
    pub(crate) fn fetch(&self) -> i64 {
        self.limit as i64 + 1
    }

    /// The page in ascending seq order, and whether more lie beyond it.
    pub(crate) fn finish(&self, mut messages: Vec<Message>) -> (Vec<Message>, bool) {
        let has_more = messages.len() > self.limit;
        messages.truncate(self.limit);
        if !self.ascending {
            messages.reverse();
        }
        (messages, has_more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_proto::DeviceId;

    fn new(reply_to_seq: Option<u64>) -> NewMessage {
        NewMessage {
            conversation_id: ConversationId(1),
            sender_id: UserId(2),
            sender_device_id: DeviceId(3),
            client_msg_id: "k".into(),
            text: "hi".into(),
            reply_to_seq,
            ..NewMessage::default()
        }
    }

    #[test]
    fn appends_need_membership_and_an_earlier_reply() {
        let members = [UserId(1), UserId(2)];
        assert!(check_append(&new(None), &members, &[], 5).is_ok());
        assert!(check_append(&new(Some(4)), &members, &[], 5).is_ok());
        assert!(matches!(
            check_append(&new(None), &[UserId(1)], &[], 5),
            Err(StoreError::Forbidden(_))
        ));
        assert!(matches!(
            check_append(&new(None), &members, &[UserId(2)], 5),
            Err(StoreError::Forbidden(_))
        ));
        let mut event = new(None);
        event.kind = MessageKind::Delete;
        event.text.clear();
        event.target_seq = Some(5);
        assert!(matches!(
            check_append(&event, &members, &[], 5),
            Err(StoreError::NotFound(_))
        ));
        for bad in [0, 5, 6] {
            assert!(
                matches!(
                    check_append(&new(Some(bad)), &members, &[], 5),
                    Err(StoreError::Invalid(_))
                ),
                "reply_to_seq {bad}"
            );
        }
    }

    #[test]
    fn a_text_message_carries_the_send() {
        let message = text_message(new(Some(1)), 4, 99, 1234);
        assert_eq!(message.kind, MessageKind::Text);
        assert_eq!((message.seq, message.message_id), (4, MessageId(99)));
        assert_eq!(message.sender_device_id, Some(DeviceId(3)));
        assert_eq!(message.client_msg_id.as_deref(), Some("k"));
        assert_eq!(message.text.as_deref(), Some("hi"));
        assert_eq!((message.reply_to_seq, message.sent_at_ms), (Some(1), 1234));
        assert_eq!(message.event, None);
    }

    fn query(before: Option<u64>, after: Option<u64>, limit: usize) -> HistoryQuery {
        HistoryQuery {
            conversation: ConversationId(1),
            viewer: UserId(1),
            before_seq: before,
            after_seq: after,
            limit,
        }
    }

    #[test]
    fn history_windows_are_clamped() {
        let latest = HistoryWindow::of(&query(None, None, 0));
        assert_eq!(
            latest,
            HistoryWindow {
                after: 0,
                before: i64::MAX,
                limit: 1,
                ascending: false
            }
        );
        let forward = HistoryWindow::of(&query(Some(u64::MAX), Some(3), 1000));
        assert_eq!((forward.after, forward.before), (3, i64::MAX));
        assert_eq!((forward.limit, forward.fetch()), (MAX_HISTORY_LIMIT, 101));
        assert!(forward.ascending);
    }

    #[test]
    fn history_pages_come_out_ascending() {
        let at = |seq| {
            system_message(
                ConversationId(1),
                seq,
                UserId(1),
                SystemEvent::Renamed,
                vec![],
                0,
            )
        };
        let backward = HistoryWindow::of(&query(None, None, 2));
        let (page, more) = backward.finish(vec![at(9), at(8), at(7)]);
        assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [8, 9]);
        assert!(more);
        let forward = HistoryWindow::of(&query(None, Some(0), 2));
        let (page, more) = forward.finish(vec![at(1), at(2)]);
        assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(!more);
    }

    #[test]
    fn history_refusals_hide_nothing_that_exists() {
        assert!(matches!(history_refusal(true), StoreError::Forbidden(_)));
        assert!(matches!(history_refusal(false), StoreError::NotFound(_)));
    }
}
