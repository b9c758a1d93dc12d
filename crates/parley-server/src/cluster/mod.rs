//! Cluster mode: several `parley serve` nodes on one PostgreSQL and one
//! Redis (protocol §13; the design and its reasons are in docs/cluster.md).
//!
//! PostgreSQL stays the only record. Redis holds what the nodes can
//! rebuild and carries hints:
//! - a registry `parley:reg:{user}` (hash node → epoch) of the nodes where
//!   a user has sockets, and `parley:nconn:{node}:{epoch}` (the users of a
//!   node's process, for reaping it when it dies);
//! - `parley:nodes` (hash node → `epoch:lease_expiry_ms`), the leases;
//! - `parley:pres:{user}`, a pending presence grace period;
//! - one channel per node, `parley:n:{node}`, for envelopes routed to its
//!   users, and `parley:ctl` for the rare broadcasts (presence, logout,
//!   "re-check your sockets").
//!
//! A commit's local recipients are served by [`crate::dispatch`] as on a
//! single node and never touch Redis. The [`router`] looks the other
//! recipients up after the commit and publishes one envelope per
//! destination node per batch. Envelopes are at most once; every socket
//! stitches frames by cursor ([`stitch`]) and re-reads the store when a
//! gap shows or a resync trigger fires (subscriber reconnected or a probe
//! went unanswered, a Redis error, a peer died, an envelope sequence jumped,
//! a periodic backstop), so a lost hint costs a read, never a message.
//!
//! - [`stitch`]: per-socket exactly-once, in-order logic (property-tested).
//! - [`envelope`]: the wire format between nodes.
//! - [`router`]: commit → envelopes.
//! - [`node`]: the subscriber, leases, resyncs, reaping dead nodes,
//!   registry upkeep and cross-node presence.

pub mod envelope;
pub mod node;
pub mod router;
pub mod stitch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use parley_proto::{DeviceId, Message, UserId};
use parley_store::Recipient;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::config::Config;
use crate::ratelimit::KeyedLimiter;
use crate::state::AppState;
use envelope::Item;

/// How long one Redis command (or pipeline) may take before it counts as
/// failed. Short: nothing on a client's path waits longer than this on
/// Redis, and an outage must not pile commands up.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Items the router may have queued before new ones are dropped (and the
/// other nodes told to re-check their sockets).
const ROUTER_QUEUE: usize = 65_536;

/// Store reads for cursor checks running at once on this node, so that a
/// resync of every socket is not a read storm.
const RESYNC_CONCURRENCY: usize = 32;

/// Something for the router to deliver on other nodes.
// `Message` grew its event fields (§8); an item lives only until the router
// encodes it, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RouteItem {
    /// A committed message.
    Message {
        /// The message.
        message: Arc<Message>,
        /// Every recipient, with cursors.
        recipients: Vec<Recipient>,
    },
    /// A frame for users wherever they are.
    Frame {
        /// The frame's JSON.
        frame: String,
        /// Who gets it.
        to: Vec<UserId>,
        /// A device that must not get it.
        except: Option<DeviceId>,
    },
    /// Something every node must hear (control channel).
    Broadcast(Item),
}

/// A registry change, applied in order by one task.
#[derive(Debug)]
pub(crate) enum RegistryOp {
    /// A socket of `user` came up; `first` if it is the user's first on
    /// this node. Acknowledged once Redis has it (or has failed).
    Open {
        user: UserId,
        first: bool,
        ack: oneshot::Sender<()>,
    },
    /// The last socket of `user` on this node went away at `left_at_ms`.
    Close { user: UserId, left_at_ms: i64 },
}

/// What a node knows of a peer's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) epoch: u64,
    pub(crate) expires_ms: i64,
}

/// This node's cluster membership, shared by sockets, the dispatcher and
/// the cluster's tasks.
pub struct Cluster {
    /// This node's name.
    pub node: String,
    /// This process's random epoch.
    pub epoch: u64,
    pub(crate) client: redis::Client,
    pub(crate) conn: ConnectionManager,
    pub(crate) lease_ms: u64,
    pub(crate) grace_ms: u64,
    router_tx: mpsc::Sender<RouteItem>,
    router_rx: std::sync::Mutex<Option<mpsc::Receiver<RouteItem>>>,
    pub(crate) registry_tx: mpsc::UnboundedSender<RegistryOp>,
    registry_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<RegistryOp>>>,
    resync_permits: Arc<Semaphore>,
    /// The subscriber connection is up and subscribed.
    pub(crate) subscribed: AtomicBool,
    /// A Redis write of ours may have been lost: re-register every local
    /// user and re-check every socket once Redis answers again.
    pub(crate) needs_heal: AtomicBool,
    /// Something we should have published may be lost: ask every node to
    /// re-check its sockets once Redis answers again.
    pub(crate) needs_broadcast_resync: AtomicBool,
    /// Peers' leases, as last read.
    pub(crate) leases: DashMap<String, Lease>,
}

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
#[error("cluster: {0}")]
pub struct ClusterError(pub String);

impl Cluster {
    /// A cluster member named `node` (nothing is connected yet: the tasks
    /// of [`node::start`] connect, and keep reconnecting).
    pub fn new(config: &Config, node: String) -> Result<Cluster, ClusterError> {
        let url = config
            .redis_url
            .as_deref()
            .ok_or_else(|| ClusterError("no redis_url".into()))?;
        let client = redis::Client::open(url)
            .map_err(|e| ClusterError(format!("redis_url {url:?}: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| ClusterError(format!("redis: {e}")))?;
        let (router_tx, router_rx) = mpsc::channel(ROUTER_QUEUE);
        let (registry_tx, registry_rx) = mpsc::unbounded_channel();
        Ok(Cluster {
            node,
            epoch: rand::random::<u64>() >> 1,
            client,
            conn,
            lease_ms: config.node_lease_ms,
            grace_ms: config.presence_grace_ms,
            router_tx,
            router_rx: std::sync::Mutex::new(Some(router_rx)),
            registry_tx,
            registry_rx: std::sync::Mutex::new(Some(registry_rx)),
            resync_permits: Arc::new(Semaphore::new(RESYNC_CONCURRENCY)),
            subscribed: AtomicBool::new(false),
            needs_heal: AtomicBool::new(false),
            needs_broadcast_resync: AtomicBool::new(false),
            leases: DashMap::new(),
        })
    }

    /// A committed message: route it to recipients on other nodes.
    pub fn route_message(&self, message: Arc<Message>, recipients: Vec<Recipient>) {
        self.enqueue(RouteItem::Message {
            message,
            recipients,
        });
    }

    /// A committed receipt change: route its frames to other nodes.
    pub fn route_receipt(&self, change: parley_store::ReceiptChange) {
        for (frame, to, except) in crate::dispatch::receipt_frames(&change) {
            if to.is_empty() {
                continue;
            }
            self.enqueue(RouteItem::Frame {
                frame: frame.to_json(),
                to,
                except,
            });
        }
    }

    /// A frame (typing) for `to` on other nodes.
    pub fn route_frame(&self, frame: String, to: Vec<UserId>) {
        if !to.is_empty() {
            self.enqueue(RouteItem::Frame {
                frame,
                to,
                except: None,
            });
        }
    }

    /// A device was logged out here: every node refuses its token and
    /// closes its sockets.
    pub fn broadcast_revoke(&self, user: UserId, device: DeviceId) {
        self.enqueue(RouteItem::Broadcast(Item::Revoke { user, device }));
    }

    /// An administrator ended every session of `user` here (disable,
    /// password reset, erasure): every node refuses the devices' tokens
    /// and closes the user's sockets.
    pub fn broadcast_disable(&self, user: UserId, devices: Vec<DeviceId>) {
        self.enqueue(RouteItem::Broadcast(Item::Disable { user, devices }));
    }

    /// `user` changed its presence visibility: every node's subscribers
    /// hear of it, and every node's cache learns it.
    pub fn broadcast_visibility(
        &self,
        user: UserId,
        online: bool,
        last_seen_ms: Option<i64>,
        visibility: parley_proto::api::PresenceVisibility,
    ) {
        self.enqueue(RouteItem::Broadcast(Item::Presence {
            user,
            online,
            last_seen_ms,
            visibility: Some(visibility),
        }));
    }

    /// Something every node must hear (control channel).
    pub(crate) fn broadcast(&self, item: Item) {
        self.enqueue(RouteItem::Broadcast(item));
    }

    /// Whether the router has nothing queued.
    pub(crate) fn router_idle(&self) -> bool {
        self.router_tx.capacity() == self.router_tx.max_capacity()
    }

    pub(crate) fn enqueue(&self, item: RouteItem) {
        if self.router_tx.try_send(item).is_err() {
            // Redis cannot keep up (or is gone): what is dropped here is
            // healed by the other nodes' cursor checks.
            metrics::counter!("parley_router_dropped_total").increment(1);
            self.needs_broadcast_resync.store(true, Ordering::Release);
        }
    }

    /// A socket of `user` came up: registers it in Redis and waits for
    /// the acknowledgement (bounded), so that a message committed from now
    /// on anywhere is routed here. On a Redis failure the socket runs
    /// unregistered until the node heals (which re-checks every socket).
    pub async fn socket_opened(&self, user: UserId, first: bool) {
        let (ack, done) = oneshot::channel();
        if self
            .registry_tx
            .send(RegistryOp::Open { user, first, ack })
            .is_ok()
        {
            let _ = tokio::time::timeout(REDIS_TIMEOUT * 2, done).await;
        }
    }

    /// The last socket of `user` on this node closed.
    pub fn socket_closed(&self, user: UserId) {
        let _ = self.registry_tx.send(RegistryOp::Close {
            user,
            left_at_ms: parley_proto::now_ms(),
        });
    }

    /// A permit to read the store for a cursor check (bounds concurrent
    /// reads when every socket re-checks at once).
    pub async fn resync_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.resync_permits.clone().acquire_owned().await.ok()
    }

    /// Whether the subscriber connection is up.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Answers PING within the Redis timeout.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Login attempts per username per minute, counted across the cluster
    /// (a fixed one-minute window in Redis). Falls back to this node's own
    /// limiter when Redis does not answer.
    pub async fn check_login(
        &self,
        local: &KeyedLimiter<String>,
        username: &str,
        per_minute: u32,
    ) -> Result<(), u64> {
        let now = parley_proto::now_ms();
        let minute = now / 60_000;
        let key = format!("parley:login:{{{username}}}:{minute}");
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(120_000)
            .ignore();
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<(u64,)>(&mut conn)).await {
            Ok(Ok((count,))) => {
                if count > per_minute as u64 {
                    Err(((minute + 1) * 60_000 - now).max(1) as u64)
                } else {
                    Ok(())
                }
            }
            _ => {
                metrics::counter!("parley_redis_errors_total", "op" => "login").increment(1);
                local.check(&username.to_owned())
            }
        }
    }

    pub(crate) fn take_router_rx(&self) -> Option<mpsc::Receiver<RouteItem>> {
        self.router_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub(crate) fn take_registry_rx(&self) -> Option<mpsc::UnboundedReceiver<RegistryOp>> {
        self.registry_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Whether a peer `node` with registry epoch `epoch` may have sockets:
    /// only a node known to be dead (lease expired, or restarted with
    /// another epoch) is skipped; a node not seen yet is assumed alive.
    pub(crate) fn maybe_alive(&self, node: &str, epoch: u64, now_ms: i64) -> bool {
        match self.leases.get(node) {
            Some(lease) => lease.epoch == epoch && lease.expires_ms > now_ms,
            None => true,
        }
    }

    /// Users' registry key.
    pub(crate) fn reg_key(user: UserId) -> String {
        format!("parley:reg:{{{user}}}")
    }

    /// A user's pending grace period.
    pub(crate) fn pres_key(user: UserId) -> String {
        format!("parley:pres:{{{user}}}")
    }

    /// The users of one node process.
    pub(crate) fn nconn_key(node: &str, epoch: u64) -> String {
        format!("parley:nconn:{{{node}}}:{epoch}")
    }

    /// A node's channel.
    pub(crate) fn channel(node: &str) -> String {
        format!("parley:n:{node}")
    }

    /// The control channel.
    pub(crate) const CONTROL: &'static str = "parley:ctl";

    /// The lease hash.
    pub(crate) const NODES: &'static str = "parley:nodes";

    /// Whether `user` is online anywhere in the cluster (a live registry
    /// entry or a pending grace period); `None` when Redis does not answer.
    pub async fn is_online(&self, user: UserId) -> Option<bool> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL")
            .arg(Self::reg_key(user))
            .cmd("EXISTS")
            .arg(Self::pres_key(user));
        let result = tokio::time::timeout(
            REDIS_TIMEOUT,
            pipe.query_async::<(Vec<(String, u64)>, bool)>(&mut conn),
        )
        .await;
        match result {
            Ok(Ok((entries, grace))) => {
                let now = parley_proto::now_ms();
                Some(
                    grace
                        || entries
                            .iter()
                            .any(|(node, epoch)| self.maybe_alive(node, *epoch, now)),
                )
            }
            _ => {
                metrics::counter!("parley_redis_errors_total", "op" => "presence").increment(1);
                None
            }
        }
    }
}

impl Cluster {
    /// Whether `user` has a live socket on another node (a live registry
    /// entry of a node other than this one); `None` when Redis does not
    /// answer. The push worker asks this: the registry is per user and
    /// node, not per device.
    pub async fn online_elsewhere(&self, user: UserId) -> Option<bool> {
        let mut conn = self.conn.clone();
        let result = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("HGETALL")
                .arg(Self::reg_key(user))
                .query_async::<Vec<(String, u64)>>(&mut conn),
        )
        .await;
        match result {
            Ok(Ok(entries)) => {
                let now = parley_proto::now_ms();
                Some(
                    entries.iter().any(|(node, epoch)| {
                        *node != self.node && self.maybe_alive(node, *epoch, now)
                    }),
                )
            }
            _ => {
                metrics::counter!("parley_redis_errors_total", "op" => "push").increment(1);
                None
            }
        }
    }
}

/// Starts cluster mode's tasks for `state` (which holds the cluster).
pub fn start(state: &Arc<AppState>) -> Option<node::ClusterTasks> {
    state.cluster.as_ref().map(|_| node::start(state))
}
