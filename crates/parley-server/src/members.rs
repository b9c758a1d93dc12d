//! The membership cache: the active members of each conversation, read on
//! every `typing` frame to route it without a store round trip.
//!
//! It has one invalidation rule, applied in one place: when a change that
//! alters a conversation's member set is committed, the dispatcher hands
//! the committed message to [`MembershipCache::observe_commit`], which
//! drops that conversation's entry; the next read loads it again.

use std::sync::Arc;

use dashmap::DashMap;
use parley_proto::{ConversationId, Message, MessageKind, SystemEvent, UserId};
use parley_store::Store;

use crate::error::{ApiError, ApiResult};

/// Active members per conversation.
#[derive(Default)]
pub struct MembershipCache {
    members: DashMap<ConversationId, Arc<[UserId]>>,
}

impl MembershipCache {
    /// Active members of `conversation`, from the cache or the store;
    /// `not_found` for a conversation that does not exist.
    pub async fn members_of(
        &self,
        store: &dyn Store,
        conversation: ConversationId,
    ) -> ApiResult<Arc<[UserId]>> {
        if let Some(members) = self.members.get(&conversation) {
            return Ok(members.clone());
        }
        let record = store
            .conversation(conversation)
            .await?
            .ok_or_else(|| ApiError::not_found("conversation not found"))?;
        let members: Arc<[UserId]> = record.members.iter().map(|m| m.user_id).collect();
        self.members.insert(conversation, members.clone());
        Ok(members)
    }

    /// The invalidation rule: a committed message that changes who is a
    /// member drops its conversation's entry.
    pub fn observe_commit(&self, message: &Message) {
        if changes_membership(message) {
            self.members.remove(&message.conversation_id);
        }
    }
}

/// Whether a committed message records a change of the member set.
fn changes_membership(message: &Message) -> bool {
    if message.kind != MessageKind::System {
        return false;
    }
    match message.event {
        Some(
            SystemEvent::Created
            | SystemEvent::MemberAdded
            | SystemEvent::MemberRemoved
            | SystemEvent::MemberLeft,
        ) => true,
        Some(SystemEvent::Renamed | SystemEvent::RoleChanged) => false,
        // A system message without an event is not expected; re-reading
        // is always safe.
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use parley_proto::MessageId;

    use super::*;

    fn system(event: Option<SystemEvent>) -> Message {
        Message {
            conversation_id: ConversationId(1),
            seq: 1,
            message_id: MessageId(1),
            sender_id: UserId(1),
            sender_device_id: None,
            client_msg_id: None,
            sent_at_ms: 0,
            kind: MessageKind::System,
            text: None,
            reply_to_seq: None,
            event,
            user_ids: None,
            name: None,
            role: None,
            ..Message::default()
        }
    }

    #[test]
    fn only_member_set_changes_invalidate() {
        for event in [
            SystemEvent::Created,
            SystemEvent::MemberAdded,
            SystemEvent::MemberRemoved,
            SystemEvent::MemberLeft,
        ] {
            assert!(changes_membership(&system(Some(event))), "{event:?}");
        }
        assert!(!changes_membership(&system(Some(SystemEvent::Renamed))));
        assert!(!changes_membership(&system(Some(SystemEvent::RoleChanged))));
        let mut text = system(None);
        text.kind = MessageKind::Text;
        assert!(!changes_membership(&text));
    }
}
