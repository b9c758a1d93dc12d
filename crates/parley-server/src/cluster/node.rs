//! A node's life in the cluster: its subscriber connection, its lease, the
//! registry of its users, cross-node presence, reaping dead peers, and the
//! resync triggers that re-check every local socket against the store.
//!
//! Resync triggers (each re-checks every local socket's cursor; the cause
//! is counted in `parley_router_resyncs_total{cause}`):
//! - `subscribe`: the subscriber connection (re)subscribed, after a Redis
//!   outage or restart (an empty Redis is re-filled first);
//! - `probe`: this node's probe of its own channel went unanswered for
//!   three seconds (a wedged subscriber: it is reconnected);
//! - `heal`: a Redis write of ours failed and Redis answers again;
//! - `peer`: a peer's lease expired or it restarted (it may have died
//!   between a commit and its publish), or a peer asked for it;
//! - `link`: an envelope sequence from a peer jumped (envelopes lost);
//! - `backstop`: every minute, whatever happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use parley_proto::{EncodedMessage, UserId, close_code, now_ms};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::envelope::{Envelope, Item};
use super::{Cluster, Lease, REDIS_TIMEOUT, RegistryOp};
use crate::hub::Outbound;
use crate::state::AppState;

/// A probe unanswered this long means the subscription is wedged.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Every socket re-checks its cursor at least this often.
const BACKSTOP: Duration = Duration::from_secs(60);

/// Adds a user's entry, cancels its grace period, and tells whether it
/// was online elsewhere (grace cancelled, or other entries).
const REG_ADD: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local grace = redis.call('DEL', KEYS[2])
return {grace, redis.call('HGETALL', KEYS[1])}
";

/// Removes this node's entry; with none left, starts the grace period.
/// Returns the entries left.
const REG_REMOVE: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
local left = redis.call('HGETALL', KEYS[1])
if #left == 0 then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
return left
";

/// Ends a grace period if it is still ours; returns the entries then, or
/// nil when someone came back meanwhile.
const GRACE_END: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[2])
return redis.call('HGETALL', KEYS[1])
";

/// Removes a dead process's entry (only if it is still that epoch's);
/// returns the entries left.
const REG_REAP: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return redis.call('HGETALL', KEYS[1])
";

/// The running cluster tasks.
pub struct ClusterTasks {
    router: JoinHandle<()>,
    others: Vec<JoinHandle<()>>,
}

impl ClusterTasks {
    /// After the dispatcher stopped: lets the router publish what is
    /// queued (bounded), gives up this node's lease and asks the peers to
    /// re-check at once, and stops.
    pub async fn stop(self, state: &AppState) {
        let Some(cluster) = &state.cluster else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !cluster.router_idle() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in &self.others {
            task.abort();
        }
        self.router.abort();
        let mut conn = cluster.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("HDEL")
            .arg(Cluster::NODES)
            .arg(&cluster.node)
            .ignore();
        pipe.cmd("PUBLISH")
            .arg(Cluster::CONTROL)
            .arg(control_payload(cluster, Item::Resync))
            .ignore();
        let _ = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
    }
}

fn control_payload(cluster: &Cluster, item: Item) -> String {
    Envelope {
        src: cluster.node.clone(),
        epoch: cluster.epoch,
        link: 0,
        sent_ms: now_ms(),
        items: vec![item],
    }
    .to_text()
}

/// Spawns the router, the registry writer, the subscriber and the lease
/// loop.
pub fn start(state: &Arc<AppState>) -> ClusterTasks {
    let cluster = state.cluster.clone().expect("cluster mode");
    let router_rx = cluster.take_router_rx().expect("started once");
    let registry_rx = cluster.take_registry_rx().expect("started once");
    ClusterTasks {
        router: tokio::spawn(super::router::run(cluster.clone(), router_rx)),
        others: vec![
            tokio::spawn(run_registry(state.clone(), registry_rx)),
            tokio::spawn(run_subscriber(state.clone())),
            tokio::spawn(run_leases(state.clone())),
        ],
    }
}

fn cluster_of(state: &AppState) -> &Arc<Cluster> {
    state.cluster.as_ref().expect("cluster mode")
}

fn redis_error(op: &'static str) {
    metrics::counter!("parley_redis_errors_total", "op" => op).increment(1);
}

/// Every local socket re-checks its cursor against the store.
pub fn resync_all(state: &AppState, cause: &'static str) {
    let sockets = state.hub.push_all(&Outbound::Resync);
    metrics::counter!("parley_router_resyncs_total", "cause" => cause).increment(1);
    tracing::debug!(cause, sockets, "re-checking every socket's cursor");
}

/// What each registry command's answer means, in pipeline order.
enum Sent {
    Open(UserId, bool, tokio::sync::oneshot::Sender<()>),
    Close(UserId, i64, String),
}

/// How long a grace key lives in Redis (a safety net if its timer's node
/// dies; the timer itself runs `presence_grace_ms`).
fn grace_key_ms(cluster: &Cluster) -> u64 {
    cluster.grace_ms.saturating_mul(4).max(10_000)
}

/// Applies registry changes in the order sockets made them.
async fn run_registry(
    state: Arc<AppState>,
    mut ops: tokio::sync::mpsc::UnboundedReceiver<RegistryOp>,
) {
    let cluster = cluster_of(&state).clone();
    let mut batch = Vec::new();
    while ops.recv_many(&mut batch, 512).await > 0 {
        let mut pipe = redis::pipe();
        let mut sent = Vec::new();
        for op in batch.drain(..) {
            match op {
                RegistryOp::Open { user, first, ack } => {
                    pipe.cmd("EVAL")
                        .arg(REG_ADD)
                        .arg(2)
                        .arg(Cluster::reg_key(user))
                        .arg(Cluster::pres_key(user))
                        .arg(&cluster.node)
                        .arg(cluster.epoch);
                    pipe.cmd("SADD")
                        .arg(Cluster::nconn_key(&cluster.node, cluster.epoch))
                        .arg(user.0)
                        .ignore();
                    sent.push(Sent::Open(user, first, ack));
                }
                RegistryOp::Close { user, left_at_ms } => {
                    // A socket of the user came up again meanwhile: its
                    // entry stays (its own Open is queued after this).
                    if state.hub.is_connected(user) {
                        continue;
                    }
                    let token = format!("{}:{}:{left_at_ms}", cluster.node, cluster.epoch);
                    pipe.cmd("EVAL")
                        .arg(REG_REMOVE)
                        .arg(2)
                        .arg(Cluster::reg_key(user))
                        .arg(Cluster::pres_key(user))
                        .arg(&cluster.node)
                        .arg(&token)
                        .arg(grace_key_ms(&cluster));
                    pipe.cmd("SREM")
                        .arg(Cluster::nconn_key(&cluster.node, cluster.epoch))
                        .arg(user.0)
                        .ignore();
                    sent.push(Sent::Close(user, left_at_ms, token));
                }
            }
        }
        if sent.is_empty() {
            continue;
        }
        let mut conn = cluster.conn.clone();
        let result = tokio::time::timeout(
            REDIS_TIMEOUT,
            pipe.query_async::<Vec<redis::Value>>(&mut conn),
        )
        .await;
        let answers = match result {
            Ok(Ok(answers)) => answers,
            _ => {
                redis_error("registry");
                cluster.needs_heal.store(true, Ordering::Release);
                // Sockets go on unregistered; the heal re-registers them
                // and re-checks them. Presence is decided locally meanwhile.
                for item in sent {
                    if let Sent::Close(user, left_at_ms, token) = item {
                        spawn_grace(&state, user, left_at_ms, token);
                    }
                }
                continue;
            }
        };
        let now = now_ms();
        for (item, answer) in sent.into_iter().zip(answers) {
            match item {
                Sent::Open(user, first, ack) => {
                    let _ = ack.send(());
                    if !first {
                        continue;
                    }
                    let (grace, entries): (i64, Vec<(String, u64)>) =
                        redis::from_redis_value(answer).unwrap_or((1, Vec::new()));
                    let elsewhere = entries.iter().any(|(node, epoch)| {
                        *node != cluster.node && cluster.maybe_alive(node, *epoch, now)
                    });
                    if grace == 0 && !elsewhere {
                        announce(&state, user, true, None).await;
                    }
                }
                Sent::Close(user, left_at_ms, token) => {
                    let entries: Vec<(String, u64)> =
                        redis::from_redis_value(answer).unwrap_or_default();
                    let alive = entries
                        .iter()
                        .any(|(node, epoch)| cluster.maybe_alive(node, *epoch, now));
                    if alive {
                        continue;
                    }
                    if !entries.is_empty() {
                        // Only dead nodes' entries are left: start the
                        // grace period here (rare: before their reaping).
                        let mut conn = cluster.conn.clone();
                        let _ = tokio::time::timeout(
                            REDIS_TIMEOUT,
                            redis::cmd("SET")
                                .arg(Cluster::pres_key(user))
                                .arg(&token)
                                .arg("PX")
                                .arg(grace_key_ms(&cluster))
                                .query_async::<()>(&mut conn),
                        )
                        .await;
                    }
                    spawn_grace(&state, user, left_at_ms, token);
                }
            }
        }
    }
}

fn spawn_grace(state: &Arc<AppState>, user: UserId, left_at_ms: i64, token: String) {
    let state = state.clone();
    tokio::spawn(async move {
        let grace = cluster_of(&state).grace_ms;
        tokio::time::sleep(Duration::from_millis(grace)).await;
        end_grace(&state, user, left_at_ms, token).await;
    });
}

/// The grace period of `user` ended: offline unless it came back anywhere.
async fn end_grace(state: &Arc<AppState>, user: UserId, left_at_ms: i64, token: String) {
    let cluster = cluster_of(state);
    let mut conn = cluster.conn.clone();
    let result = tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("EVAL")
            .arg(GRACE_END)
            .arg(2)
            .arg(Cluster::reg_key(user))
            .arg(Cluster::pres_key(user))
            .arg(&token)
            .query_async::<Option<Vec<(String, u64)>>>(&mut conn),
    )
    .await;
    match result {
        Ok(Ok(Some(entries))) => {
            let now = now_ms();
            if entries
                .iter()
                .any(|(node, epoch)| cluster.maybe_alive(node, *epoch, now))
            {
                return;
            }
            went_offline(state, user, left_at_ms).await;
        }
        Ok(Ok(None)) => {}
        _ => {
            redis_error("presence");
            // Redis is away: decide locally, as a single node would.
            if !state.hub.is_connected(user) {
                went_offline(state, user, left_at_ms).await;
            }
        }
    }
}

async fn went_offline(state: &Arc<AppState>, user: UserId, last_seen_ms: i64) {
    state.presence.record_left(user, last_seen_ms).await;
    announce(state, user, false, Some(last_seen_ms)).await;
}

/// Tells this node's subscribers now, and every other node's through the
/// control channel.
async fn announce(state: &Arc<AppState>, user: UserId, online: bool, last_seen_ms: Option<i64>) {
    state
        .presence
        .apply_cluster_change(user, online, last_seen_ms, None)
        .await;
    cluster_of(state).broadcast(Item::Presence {
        user,
        online,
        last_seen_ms,
        visibility: None,
    });
}

/// Subscribes, keeps the subscription, and reconnects: each (re)subscribe
/// re-registers every local user and re-checks every socket.
async fn run_subscriber(state: Arc<AppState>) {
    let cluster = cluster_of(&state).clone();
    let own_channel = Cluster::channel(&cluster.node);
    let mut backoff = Duration::from_millis(100);
    let mut links: HashMap<(String, u64), u64> = HashMap::new();
    loop {
        let pubsub = async {
            let mut pubsub = cluster.client.get_async_pubsub().await?;
            pubsub.subscribe(&own_channel).await?;
            pubsub.subscribe(Cluster::CONTROL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(REDIS_TIMEOUT * 2, pubsub).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                redis_error("subscribe");
                // Full jitter, capped low: delivery must resume within
                // seconds of Redis coming back.
                let jitter = rand::random::<u64>() % (backoff.as_millis() as u64 + 1);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                backoff = (backoff * 2).min(Duration::from_millis(1_000));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        cluster.subscribed.store(true, Ordering::Release);
        metrics::gauge!("parley_router_connected").set(1.0);
        tracing::info!(node = %cluster.node, "cluster subscriber connected");
        // Sequences restart; a tail lost before this point is covered by
        // the re-check below.
        links.clear();
        heal(&state).await;
        resync_all(&state, "subscribe");

        let mut stream = pubsub.into_on_message();
        let mut last_heard = Instant::now();
        let mut probe = tokio::time::interval(PROBE_TIMEOUT / 3);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => {
                        last_heard = Instant::now();
                        receive(&state, message.get_payload_bytes(), &mut links);
                    }
                    None => break,
                },
                _ = probe.tick() => {
                    if last_heard.elapsed() > PROBE_TIMEOUT {
                        tracing::warn!("cluster subscriber is wedged (own probe unanswered); reconnecting");
                        metrics::counter!("parley_router_resyncs_total", "cause" => "probe").increment(1);
                        break;
                    }
                    let mut conn = cluster.conn.clone();
                    let payload = control_payload(&cluster, Item::Probe);
                    let channel = own_channel.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            REDIS_TIMEOUT,
                            redis::cmd("PUBLISH").arg(channel).arg(payload).query_async::<i64>(&mut conn),
                        ).await;
                    });
                }
            }
        }
        cluster.subscribed.store(false, Ordering::Release);
        metrics::gauge!("parley_router_connected").set(0.0);
        redis_error("subscriber");
        tracing::warn!("cluster subscriber disconnected; reconnecting");
    }
}

/// Handles one envelope.
fn receive(state: &Arc<AppState>, payload: &[u8], links: &mut HashMap<(String, u64), u64>) {
    let cluster = cluster_of(state);
    let envelope = match Envelope::parse(payload) {
        Ok(envelope) => envelope,
        Err(err) => {
            tracing::warn!(%err, "undecodable envelope");
            return;
        }
    };
    let own = envelope.src == cluster.node && envelope.epoch == cluster.epoch;
    if envelope.link > 0 {
        metrics::counter!("parley_router_envelopes_received_total").increment(1);
        let last = links
            .entry((envelope.src.clone(), envelope.epoch))
            .or_insert(envelope.link - 1);
        if envelope.link != *last + 1 {
            resync_all(state, "link");
        }
        *last = envelope.link.max(*last);
    }
    let latency = (now_ms() - envelope.sent_ms).max(0) as f64 / 1000.0;
    for item in envelope.items {
        match item {
            Item::Message { message, to } => {
                metrics::histogram!("parley_router_delivery_latency_seconds").record(latency);
                let encoded = Arc::new(EncodedMessage::new(&message));
                for (user, cursor) in to {
                    let item = Outbound::Message {
                        encoded: encoded.clone(),
                        cursor,
                        sender_device: message.sender_device_id,
                    };
                    state.hub.send_to_user(user, &item, None);
                }
            }
            Item::Frame { frame, to, except } => {
                let item = Outbound::Frame(frame.into());
                for user in to {
                    state.hub.send_to_user(user, &item, except);
                }
            }
            Item::Presence {
                user,
                online,
                last_seen_ms,
                visibility,
            } => {
                if own {
                    continue;
                }
                let state = state.clone();
                tokio::spawn(async move {
                    state
                        .presence
                        .apply_cluster_change(user, online, last_seen_ms, visibility)
                        .await;
                });
            }
            Item::Revoke { user, device } => {
                if own {
                    continue;
                }
                state.auth.revoke(device);
                state
                    .hub
                    .close_device(user, device, close_code::UNAUTHORIZED);
            }
            Item::Disable { user, devices } => {
                if own {
                    continue;
                }
                for device in devices {
                    state.auth.revoke(device);
                }
                state.hub.close_user(user, close_code::UNAUTHORIZED);
            }
            Item::Resync => {
                if !own {
                    resync_all(state, "peer");
                }
            }
            Item::Probe => {}
        }
    }
}

/// After Redis came back (or lost data): every local user is registered
/// again, entries of users that left meanwhile are removed, the
/// revocation set is reloaded from the store. Re-checking the sockets is
/// the caller's.
async fn heal(state: &Arc<AppState>) -> bool {
    let cluster = cluster_of(state);
    let mut conn = cluster.conn.clone();
    let users = state.hub.connected_users();
    let nconn = Cluster::nconn_key(&cluster.node, cluster.epoch);
    let mut ok = true;
    for chunk in users.chunks(1_000) {
        let mut pipe = redis::pipe();
        for &user in chunk {
            pipe.cmd("HSET")
                .arg(Cluster::reg_key(user))
                .arg(&cluster.node)
                .arg(cluster.epoch)
                .ignore();
            pipe.cmd("DEL").arg(Cluster::pres_key(user)).ignore();
            pipe.cmd("SADD").arg(&nconn).arg(user.0).ignore();
        }
        if !matches!(
            tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await,
            Ok(Ok(()))
        ) {
            ok = false;
            break;
        }
    }
    // Users registered here who have no socket any more (a removal that
    // failed while Redis was away).
    if ok {
        match tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("SMEMBERS")
                .arg(&nconn)
                .query_async::<Vec<i64>>(&mut conn),
        )
        .await
        {
            Ok(Ok(members)) => {
                for user in members.into_iter().map(UserId) {
                    if !state.hub.is_connected(user) {
                        let _ = cluster.registry_tx.send(RegistryOp::Close {
                            user,
                            left_at_ms: now_ms(),
                        });
                    }
                }
            }
            _ => ok = false,
        }
    }
    match state.store.revoked_devices().await {
        Ok(devices) => state.auth.revoke_all(devices),
        Err(err) => tracing::warn!(%err, "could not reload revoked devices"),
    }
    for handle in state.hub.all() {
        if state.auth.is_revoked(handle.device) {
            handle.shared.close(close_code::UNAUTHORIZED);
        }
    }
    if !ok {
        redis_error("heal");
        cluster.needs_heal.store(true, Ordering::Release);
    }
    ok
}

/// Renews this node's lease, reads the peers', and runs the triggers that
/// follow from them: heal after a Redis error, a broadcast re-check after
/// a lost publish, a re-check and reaping when a peer died, the backstop.
async fn run_leases(state: Arc<AppState>) {
    let cluster = cluster_of(&state).clone();
    let period = Duration::from_millis((cluster.lease_ms / 3).clamp(200, 1_000));
    let mut tick = tokio::time::interval(period);
    let mut last_backstop = Instant::now();
    loop {
        tick.tick().await;
        let now = now_ms();
        let mut conn = cluster.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(Cluster::NODES)
            .arg(&cluster.node)
            .arg(format!(
                "{}:{}",
                cluster.epoch,
                now + cluster.lease_ms as i64
            ))
            .ignore();
        pipe.cmd("HGETALL").arg(Cluster::NODES);
        let leases = match tokio::time::timeout(
            REDIS_TIMEOUT,
            pipe.query_async::<(HashMap<String, String>,)>(&mut conn),
        )
        .await
        {
            Ok(Ok((leases,))) => leases,
            _ => {
                redis_error("lease");
                cluster.needs_heal.store(true, Ordering::Release);
                continue;
            }
        };
        if cluster.needs_heal.swap(false, Ordering::AcqRel) && heal(&state).await {
            resync_all(&state, "heal");
        }
        if cluster.needs_broadcast_resync.swap(false, Ordering::AcqRel) {
            cluster.broadcast(Item::Resync);
        }
        // Peers: who died (lease expired, or restarted with a new epoch).
        let mut dead: Vec<(String, Lease)> = Vec::new();
        let mut seen = Vec::new();
        for (node, value) in leases {
            let Some((epoch, expires)) = value.split_once(':') else {
                continue;
            };
            let (Ok(epoch), Ok(expires_ms)) = (epoch.parse::<u64>(), expires.parse::<i64>()) else {
                continue;
            };
            let lease = Lease { epoch, expires_ms };
            seen.push(node.clone());
            let previous = cluster.leases.insert(node.clone(), lease);
            if node == cluster.node {
                continue;
            }
            match previous {
                Some(old) if old.epoch != epoch => dead.push((node.clone(), old)),
                Some(old) if old.expires_ms > now && expires_ms <= now => {
                    dead.push((node.clone(), lease))
                }
                None if expires_ms <= now => dead.push((node.clone(), lease)),
                _ => {}
            }
            // Long gone: drop the lease entry.
            if expires_ms + 600_000 < now {
                let mut conn = cluster.conn.clone();
                let _ = tokio::time::timeout(
                    REDIS_TIMEOUT,
                    redis::cmd("HDEL")
                        .arg(Cluster::NODES)
                        .arg(&node)
                        .query_async::<()>(&mut conn),
                )
                .await;
            }
        }
        // A lease that vanished (its node stopped, or Redis was emptied):
        // forget it, and re-check in case it had not published everything.
        let gone: Vec<(String, Lease)> = cluster
            .leases
            .iter()
            .filter(|e| !seen.contains(e.key()) && *e.key() != cluster.node)
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        for (node, lease) in &gone {
            cluster.leases.remove(node);
            if lease.expires_ms > now {
                dead.push((node.clone(), *lease));
            }
        }
        if !dead.is_empty() {
            resync_all(&state, "peer");
            for (node, lease) in dead {
                let state = state.clone();
                tokio::spawn(async move { reap(&state, &node, lease).await });
            }
        }
        if last_backstop.elapsed() >= BACKSTOP {
            last_backstop = Instant::now();
            resync_all(&state, "backstop");
        }
    }
}

/// A peer process died: one node (the first to claim it) removes its
/// registry entries; its users with no socket left anywhere go offline,
/// last seen when its lease was last renewed.
async fn reap(state: &Arc<AppState>, node: &str, lease: Lease) {
    let cluster = cluster_of(state);
    let mut conn = cluster.conn.clone();
    let claim = format!("parley:reap:{{{node}}}:{}", lease.epoch);
    let won = tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("SET")
            .arg(&claim)
            .arg(&cluster.node)
            .arg("NX")
            .arg("PX")
            .arg(600_000)
            .query_async::<Option<String>>(&mut conn),
    )
    .await;
    if !matches!(won, Ok(Ok(Some(_)))) {
        return;
    }
    let nconn = Cluster::nconn_key(node, lease.epoch);
    let users = match tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("SMEMBERS")
            .arg(&nconn)
            .query_async::<Vec<i64>>(&mut conn),
    )
    .await
    {
        Ok(Ok(users)) => users,
        _ => return redis_error("reap"),
    };
    let last_seen = (lease.expires_ms - cluster.lease_ms as i64).min(now_ms());
    tracing::info!(node, users = users.len(), "reaping a dead node");
    for chunk in users.chunks(500) {
        let mut pipe = redis::pipe();
        for &user in chunk {
            pipe.cmd("EVAL")
                .arg(REG_REAP)
                .arg(1)
                .arg(Cluster::reg_key(UserId(user)))
                .arg(node)
                .arg(lease.epoch);
        }
        let Ok(Ok(left)) = tokio::time::timeout(
            REDIS_TIMEOUT,
            pipe.query_async::<Vec<Vec<(String, u64)>>>(&mut conn),
        )
        .await
        else {
            return redis_error("reap");
        };
        let now = now_ms();
        for (&user, entries) in chunk.iter().zip(left) {
            let alive = entries
                .iter()
                .any(|(n, epoch)| cluster.maybe_alive(n, *epoch, now));
            if !alive {
                went_offline(state, UserId(user), last_seen).await;
            }
        }
    }
    let _ = tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("DEL").arg(&nconn).query_async::<()>(&mut conn),
    )
    .await;
    metrics::counter!("parley_cluster_nodes_reaped_total").increment(1);
}
