//! Shared server state: everything a request or a socket needs, built once
//! at start and shared behind an `Arc`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parley_proto::UserId;
use parley_store::Store;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::hub::Hub;
use crate::members::MembershipCache;
use crate::presence::Presence;
use crate::ratelimit::KeyedLimiter;
use crate::sessions::SessionTracker;

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
    /// Active members per conversation, for routing typing frames.
    pub members: MembershipCache,
    /// Set when shutdown begins: new sockets and sends are refused.
    pub draining: AtomicBool,
    /// Live socket tasks, for shutdown and the connection limit.
    pub sessions: Arc<SessionTracker>,
    /// Sign-up, group, member-addition and per-token request limits.
    pub abuse: crate::abuse::Limits,
    /// Cluster mode (a Redis URL is set); `None` on a single node, whose
    /// paths then never touch cluster code.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Media uploads, downloads and garbage collection (§9).
    pub media: Arc<crate::media::Media>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The per-message metrics' handles.
    pub hot: crate::catalog::HotMetrics,
    /// Push notifications (§12): VAPID identity, providers, trigger queue.
    pub push: Arc<crate::push::Push>,
}
