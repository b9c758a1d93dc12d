//! The socket's ephemeral frames: `typing` (rate-limited per socket,
//! forwarded to the other members unless a block separates the two members
//! of a direct conversation) and presence `subscribe`. Nothing here is
//! stored; kept apart from the socket's send/ack/write path in `ws/mod.rs`.

use std::collections::HashSet;
use std::time::Instant;

use parley_proto::{ConversationId, ServerFrame, UserId};

use super::Session;
use crate::error::ApiError;
use crate::hub::Outbound;
use crate::ratelimit::TokenBucket;
use crate::state::AppState;

impl Session {
    pub(super) async fn typing(
        &mut self,
        conversation: ConversationId,
        active: bool,
    ) -> Result<(), ApiError> {
        let rate = self.state.config.typing_rate_per_sec;
        let burst = (rate * 2.0).max(1.0);
        if let Err(wait) = self.typing.try_take(rate, burst, Instant::now()) {
            return Err(ApiError::rate_limited(wait));
        }
        let members = self
            .state
            .members
            .members_of(self.state.store.as_ref(), conversation)
            .await?;
        let user = self.identity.user;
        if !members.contains(&user) {
            return Err(ApiError::forbidden(
                "you are not a member of this conversation",
            ));
        }
        if typing_blocked(&self.state, user, conversation, &members).await? {
            // Not forwarded between a user and someone it blocks (or who
            // blocks it); the sender is not told, as with presence.
            return Ok(());
        }
        let frame = Outbound::Frame(
            ServerFrame::Typing {
                conversation_id: conversation,
                user_id: user,
                active,
            }
            .to_json()
            .into(),
        );
        for &member in members.iter().filter(|&&m| m != user) {
            self.state.hub.send_to_user(member, &frame, None);
        }
        if let (Some(cluster), Outbound::Frame(text)) = (&self.state.cluster, &frame) {
            let others = members.iter().copied().filter(|&m| m != user).collect();
            cluster.route_frame(text.as_str().to_owned(), others);
        }
        Ok(())
    }

    pub(super) async fn subscribe(&mut self, users: Vec<UserId>) -> Result<(), ApiError> {
        let rate = self.state.config.presence_subscribe_rate_per_sec;
        let burst = (rate * 2.0).max(1.0);
        let now = Instant::now();
        let budget = self
            .presence_budget
            .get_or_insert_with(|| Box::new(TokenBucket::new(burst, now)));
        if let Err(wait) = budget.try_take(rate, burst, now) {
            return Err(crate::abuse::refused("presence_subscribe", wait));
        }
        let max = self.state.config.max_presence_subscriptions;
        let new: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|u| !self.subscriptions.contains(u))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if self.subscriptions.len() + new.len() > max {
            return Err(ApiError::bad_request(format!(
                "at most {max} presence subscriptions per socket; unsubscribe first"
            )));
        }
        self.subscriptions.extend(new.iter().copied());
        // Everyone asked for gets the current state, even if already watched.
        self.state
            .presence
            .subscribe(self.identity.user, &self.socket, &users)
            .await;
        Ok(())
    }
}

/// Whether typing in `conversation` must not be forwarded: a direct
/// conversation whose two members are separated by a block. Groups
/// are not affected.
async fn typing_blocked(
    state: &AppState,
    user: UserId,
    conversation: ConversationId,
    members: &[UserId],
) -> Result<bool, ApiError> {
    let [a, b] = members else { return Ok(false) };
    let other = if *a == user { *b } else { *a };
    let store = state.store.as_ref();
    if !state.presence.blocks().between(store, user, other).await? {
        return Ok(false);
    }
    // Rare: only now ask whether it is a direct conversation.
    Ok(store
        .conversation(conversation)
        .await?
        .is_some_and(|c| c.kind == parley_proto::api::ConversationKind::Direct))
}
