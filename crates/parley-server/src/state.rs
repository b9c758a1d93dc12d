//! Shared server state, and the services built on the store.

use std::sync::Arc;

use dashmap::DashMap;
use parley_proto::{ConversationId, UserId};
use parley_store::Store;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::hub::Hub;
use crate::presence::Presence;
use crate::ratelimit::KeyedLimiter;

/// Everything a request or socket needs, shared behind an `Arc`.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Tokens and passwords.
    pub auth: Authenticator,
    /// Live sockets.
    pub hub: Arc<Hub>,
    /// Online / last seen.
    pub presence: Arc<Presence>,
    /// Per-user send budget (shared by all of a user's devices, WS and HTTP).
    pub send_limiter: KeyedLimiter<UserId>,
    /// Per-username login attempts.
    pub login_limiter: KeyedLimiter<String>,
    /// Active members per conversation, for routing typing frames. Cleared
    /// by the dispatcher on every membership change.
    pub members: DashMap<ConversationId, Arc<[UserId]>>,
    /// Set when shutdown begins: new sockets and sends are refused.
    pub draining: std::sync::atomic::AtomicBool,
    /// Live socket tasks, for shutdown.
    pub sessions: Arc<crate::ws::SessionTracker>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    /// Active members of `conversation`, from the cache or the store.
    pub async fn members_of(&self, conversation: ConversationId) -> ApiResult<Arc<[UserId]>> {
        if let Some(members) = self.members.get(&conversation) {
            return Ok(members.clone());
        }
        let record = self
            .store
            .conversation(conversation)
            .await?
            .ok_or_else(|| ApiError::not_found("conversation not found"))?;
        let members: Arc<[UserId]> = record.members.iter().map(|m| m.user_id).collect();
        self.members.insert(conversation, members.clone());
        Ok(members)
    }

    /// Takes a send token for `user`.
    pub fn check_send_rate(&self, user: UserId) -> ApiResult<()> {
        self.send_limiter
            .check(&user)
            .map_err(ApiError::rate_limited)
    }
}
