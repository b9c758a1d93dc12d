//! Presence: online / last seen, pushed only to sockets that subscribed.
//!
//! A user is online while it has a live socket. When its last socket goes
//! away the user stays online for `presence_grace_ms`; a device that
//! reconnects within that time (a page reload, a network switch) causes no
//! offline/online flap for subscribers. Only after the grace period is the
//! user announced offline, with `last_seen_ms` set to when the last socket
//! went away, and that time is stored so it survives a restart.
//!
//! The grace periods run in one background task,
//! [`Presence::run_leave_timers`] (started and stopped with the others in
//! [`crate::background`]): every grace period has the same length, so the
//! leavings come due in the order they were queued and one queue serves
//! them all, instead of a sleeping task per disconnect.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use parley_proto::api::{PresenceView, PresenceVisibility};
use parley_proto::{ServerFrame, UserId, now_ms};
use parley_store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::blocks::BlockCache;
use crate::cluster::Cluster;
use crate::hub::{Hub, Outbound, SocketHandle};

/// Why presence could not be read. Mapped to protocol codes in
/// [`crate::error`].
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// Reading the user's profile failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user whose last socket went away, due to be announced offline.
#[derive(Debug)]
struct Leaving {
    user: UserId,
    generation: u64,
    due: Instant,
}

/// The receiving end of the grace-period queue, for
/// [`Presence::run_leave_timers`].
pub struct LeaveTimers(mpsc::UnboundedReceiver<Leaving>);

#[derive(Debug, Default, Clone, Copy)]
struct UserPresence {
    /// Bumped on every connect/disconnect so a stale grace timer can tell.
    generation: u64,
    /// The last socket went away at this time and the grace timer runs.
    leaving_since_ms: Option<i64>,
}

/// The sockets watching one user: socket id -> (subscriber, socket).
type Watchers = HashMap<u64, (UserId, SocketHandle)>;

/// What presence knows of a user that storage also knows.
#[derive(Debug, Clone, Copy)]
struct Profile {
    visibility: PresenceVisibility,
    last_seen_ms: Option<i64>,
}

/// Presence state and subscriptions.
pub struct Presence {
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    grace: Duration,
    // std mutexes: every critical section is a map update, never an await.
    states: Mutex<HashMap<UserId, UserPresence>>,
    subscribers: Mutex<HashMap<UserId, Watchers>>,
    profiles: DashMap<UserId, Profile>,
    leaving: mpsc::UnboundedSender<Leaving>,
    /// Users blocked either way see each other offline with no last seen.
    blocks: BlockCache,
    /// Cluster mode: "online" means online on any node, which Redis knows.
    cluster: OnceLock<Arc<Cluster>>,
}

impl Presence {
    /// Presence over `hub`, persisting last seen in `store`, and the queue
    /// of grace periods for [`Presence::run_leave_timers`].
    pub fn new(hub: Arc<Hub>, store: Arc<dyn Store>, grace: Duration) -> (Presence, LeaveTimers) {
        let (leaving, timers) = mpsc::unbounded_channel();
        let presence = Presence {
            hub,
            store,
            grace,
            states: Mutex::new(HashMap::new()),
            subscribers: Mutex::new(HashMap::new()),
            profiles: DashMap::new(),
            leaving,
            blocks: BlockCache::default(),
            cluster: OnceLock::new(),
        };
        (presence, LeaveTimers(timers))
    }

    async fn profile(&self, user: UserId) -> Result<Profile, PresenceError> {
        if let Some(profile) = self.profiles.get(&user) {
            return Ok(*profile);
        }
        let record = self.store.user_by_id(user).await?;
        let profile = Profile {
            visibility: record
                .as_ref()
                .map(|r| r.presence_visibility)
                .unwrap_or(PresenceVisibility::Everyone),
            last_seen_ms: record.and_then(|r| r.last_seen_ms),
        };
        self.profiles.insert(user, profile);
        Ok(profile)
    }

    fn is_online(&self, user: UserId) -> bool {
        self.hub.is_connected(user)
            || self
                .states
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&user)
                .is_some_and(|s| s.leaving_since_ms.is_some())
    }

    /// Who blocks whom, as presence and typing see it.
    pub fn blocks(&self) -> &BlockCache {
        &self.blocks
    }

    /// Cluster mode: presence follows the whole cluster (set once at start).
    pub fn set_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// The presence of `user` as `viewer` may see it.
    pub async fn view(&self, user: UserId, viewer: UserId) -> Result<PresenceView, PresenceError> {
        if self
            .blocks
            .between(self.store.as_ref(), user, viewer)
            .await?
        {
            return Ok(Self::hidden(user));
        }
        let profile = self.profile(user).await?;
        if let Some(cluster) = self.cluster.get() {
            // Redis away: what this node knows.
            let online = match cluster.is_online(user).await {
                Some(online) => online,
                None => self.is_online(user),
            };
            return Ok(Self::view_of(user, viewer, profile, online));
        }
        Ok(self.view_with(user, viewer, profile))
    }

    /// What a user hidden from the viewer looks like.
    fn hidden(user: UserId) -> PresenceView {
        PresenceView {
            user_id: user,
            online: false,
            last_seen_ms: None,
        }
    }

    /// `user` blocked or unblocked `other`: both are re-announced to their
    /// watchers as each may now see the other.
    pub async fn blocks_changed(&self, user: UserId, other: UserId) -> Result<(), PresenceError> {
        self.blocks.reload(self.store.as_ref(), user).await?;
        self.announce(user).await;
        self.announce(other).await;
        Ok(())
    }

    fn view_with(&self, user: UserId, viewer: UserId, profile: Profile) -> PresenceView {
        Self::view_of(user, viewer, profile, self.is_online(user))
    }

    fn view_of(user: UserId, viewer: UserId, profile: Profile, online: bool) -> PresenceView {
        if profile.visibility == PresenceVisibility::Nobody && viewer != user {
            return PresenceView {
                user_id: user,
                online: false,
                last_seen_ms: None,
            };
        }
        PresenceView {
            user_id: user,
            online,
            last_seen_ms: if online { None } else { profile.last_seen_ms },
        }
    }

    fn frame(view: PresenceView) -> Outbound {
        Outbound::Frame(
            ServerFrame::Presence {
                user_id: view.user_id,
                online: view.online,
                last_seen_ms: view.last_seen_ms,
            }
            .to_json()
            .into(),
        )
    }

    /// Pushes the current state of `user` to every subscriber.
    async fn announce(&self, user: UserId) {
        let Ok(profile) = self.profile(user).await else {
            return;
        };
        let online = self.is_online(user);
        self.push_to_subscribers(user, profile, online).await;
    }

    /// Cluster mode: `user` went online or offline somewhere in the
    /// cluster (or changed its visibility): this node's cache learns it
    /// and this node's subscribers hear of it.
    pub async fn apply_cluster_change(
        &self,
        user: UserId,
        online: bool,
        last_seen_ms: Option<i64>,
        visibility: Option<PresenceVisibility>,
    ) {
        if let Some(mut profile) = self.profiles.get_mut(&user) {
            if let Some(visibility) = visibility {
                profile.visibility = visibility;
            }
            if let Some(at) = last_seen_ms {
                profile.last_seen_ms = Some(profile.last_seen_ms.unwrap_or(0).max(at));
            }
        }
        let Ok(profile) = self.profile(user).await else {
            return;
        };
        self.push_to_subscribers(user, profile, online).await;
    }

    /// Cluster mode: the user's last socket anywhere went away at `at_ms`
    /// and its grace period ended (stored, so it survives restarts).
    pub async fn record_left(&self, user: UserId, at_ms: i64) {
        self.record_last_seen(user, at_ms).await;
    }

    async fn push_to_subscribers(&self, user: UserId, profile: Profile, online: bool) {
        let subscribers: Vec<(UserId, SocketHandle)> = {
            let subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
            match subscribers.get(&user) {
                Some(sockets) => sockets.values().cloned().collect(),
                None => return,
            }
        };
        // One encoding for everyone but the user itself (who may see
        // through its own privacy setting).
        let public = Self::frame(Self::view_of(user, UserId(i64::MIN), profile, online));
        let own = Self::frame(Self::view_of(user, user, profile, online));
        let hidden = Self::frame(Self::hidden(user));
        for (subscriber, socket) in subscribers {
            let blocked = self
                .blocks
                .between(self.store.as_ref(), user, subscriber)
                .await
                .unwrap_or(true);
            socket.push(if subscriber == user {
                own.clone()
            } else if blocked {
                hidden.clone()
            } else {
                public.clone()
            });
        }
    }

    /// A socket of `user` came up.
    pub async fn connected(&self, user: UserId, first_socket: bool) {
        if !first_socket {
            return;
        }
        let was_leaving = {
            let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
            let state = states.entry(user).or_default();
            state.generation += 1;
            state.leaving_since_ms.take().is_some()
        };
        if !was_leaving {
            self.announce(user).await;
        }
    }

    /// The last socket of `user` went away: announce offline after the grace
    /// period unless it comes back.
    pub fn disconnected(&self, user: UserId) {
        let now = now_ms();
        let generation = {
            let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
            let state = states.entry(user).or_default();
            state.generation += 1;
            state.leaving_since_ms = Some(now);
            state.generation
        };
        // Fails only once the timer task has stopped (shutdown), when
        // `record_all_last_seen` covers this user instead.
        let _ = self.leaving.send(Leaving {
            user,
            generation,
            due: Instant::now() + self.grace,
        });
    }

    /// Runs the grace periods until stopped: announces each leaving user
    /// offline when its period ends, unless it came back. The stores of
    /// last seen run concurrently, so a mass disconnect is not announced
    /// one database write at a time.
    pub async fn run_leave_timers(self: Arc<Self>, timers: LeaveTimers) {
        let LeaveTimers(mut incoming) = timers;
        let mut waiting: VecDeque<Leaving> = VecDeque::new();
        let mut finishing = FuturesUnordered::new();
        loop {
            let next_due = waiting.front().map(|l| l.due);
            tokio::select! {
                leaving = incoming.recv() => match leaving {
                    Some(leaving) => waiting.push_back(leaving),
                    None => break,
                },
                _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                    let now = Instant::now();
                    while waiting.front().is_some_and(|l| l.due <= now) {
                        if let Some(leaving) = waiting.pop_front() {
                            finishing.push(self.finish_leaving(leaving.user, leaving.generation));
                        }
                    }
                }
                Some(()) = finishing.next(), if !finishing.is_empty() => {}
            }
        }
        while finishing.next().await.is_some() {}
    }

    async fn finish_leaving(&self, user: UserId, generation: u64) {
        let left_at = {
            let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
            match states.get_mut(&user) {
                Some(state) if state.generation == generation && !self.hub.is_connected(user) => {
                    let left_at = state.leaving_since_ms.take();
                    states.remove(&user);
                    left_at
                }
                _ => None,
            }
        };
        let Some(left_at) = left_at else { return };
        self.record_last_seen(user, left_at).await;
        self.announce(user).await;
    }

    async fn record_last_seen(&self, user: UserId, at_ms: i64) {
        if let Some(mut profile) = self.profiles.get_mut(&user) {
            profile.last_seen_ms = Some(profile.last_seen_ms.unwrap_or(0).max(at_ms));
        }
        if let Err(err) = self.store.set_last_seen(user, at_ms).await {
            tracing::warn!(%err, %user, "could not store last seen");
        }
    }

    /// On shutdown, after the grace timers stopped: everyone connected was
    /// last seen now, and everyone still in a grace period when its last
    /// socket went away.
    pub async fn record_all_last_seen(&self) {
        let now = now_ms();
        let leaving: Vec<(UserId, i64)> = self
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(&user, state)| state.leaving_since_ms.map(|at| (user, at)))
            .collect();
        for (user, at) in leaving {
            self.record_last_seen(user, at).await;
        }
        for user in self.hub.connected_users() {
            self.record_last_seen(user, now).await;
        }
    }

    /// `socket` of `subscriber` watches `users`; each gets the current state.
    pub async fn subscribe(&self, subscriber: UserId, socket: &SocketHandle, users: &[UserId]) {
        {
            let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
            for &user in users {
                subscribers
                    .entry(user)
                    .or_default()
                    .insert(socket.id, (subscriber, socket.clone()));
            }
        }
        for &user in users {
            match self.view(user, subscriber).await {
                Ok(view) => socket.push(Self::frame(view)),
                Err(err) => tracing::warn!(%err, %user, "presence lookup failed"),
            }
        }
    }

    /// `socket` stops watching `users`.
    pub fn unsubscribe(&self, socket_id: u64, users: &[UserId]) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for user in users {
            if let Some(sockets) = subscribers.get_mut(user) {
                sockets.remove(&socket_id);
                if sockets.is_empty() {
                    subscribers.remove(user);
                }
            }
        }
    }

    /// The user changed its privacy setting: tell current subscribers.
    pub async fn visibility_changed(&self, user: UserId, visibility: PresenceVisibility) {
        if let Some(mut profile) = self.profiles.get_mut(&user) {
            profile.visibility = visibility;
        }
        if let Some(cluster) = self.cluster.get() {
            // Every node's cache and subscribers.
            if let Ok(view) = self.view(user, user).await {
                cluster.broadcast_visibility(user, view.online, view.last_seen_ms, visibility);
                if let Ok(profile) = self.profile(user).await {
                    self.push_to_subscribers(user, profile, view.online).await;
                }
            }
            return;
        }
        self.announce(user).await;
    }
}
