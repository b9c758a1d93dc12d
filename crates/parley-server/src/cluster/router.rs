//! The router: what this node committed (and typing frames) → envelopes
//! for the other nodes where the recipients have sockets.
//!
//! It batches the way group commit does: it takes everything queued, looks
//! the distinct recipients up in one pipeline (after the commit, so a
//! socket registered before its replay is never missed), groups them by
//! node, and publishes one envelope per node in a second pipeline. While
//! one batch is in flight the next one queues. A failed batch is not
//! retried: the other nodes are asked to re-check their sockets instead
//! (and see a jump in the envelope sequence), which heals it from the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parley_proto::UserId;
use tokio::sync::mpsc;

use super::envelope::{self, Item};
use super::{Cluster, REDIS_TIMEOUT, RouteItem};

/// Most queued items taken into one batch.
const MAX_BATCH: usize = 1_024;

/// Runs until the queue closes.
pub async fn run(cluster: Arc<Cluster>, mut queue: mpsc::Receiver<RouteItem>) {
    // Per destination node: the last envelope sequence used.
    let mut links: HashMap<String, u64> = HashMap::new();
    let mut batch: Vec<RouteItem> = Vec::with_capacity(MAX_BATCH);
    loop {
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        route_batch(&cluster, std::mem::take(&mut batch), &mut links).await;
    }
}

async fn route_batch(cluster: &Cluster, batch: Vec<RouteItem>, links: &mut HashMap<String, u64>) {
    let mut users: HashSet<UserId> = HashSet::new();
    let mut broadcasts = Vec::new();
    let mut routed = Vec::new();
    for item in batch {
        match item {
            RouteItem::Message { ref recipients, .. } => {
                users.extend(recipients.iter().map(|r| r.user_id));
                routed.push(item);
            }
            RouteItem::Frame { ref to, .. } => {
                users.extend(to.iter().copied());
                routed.push(item);
            }
            RouteItem::Broadcast(item) => broadcasts.push(item),
        }
    }
    let users: Vec<UserId> = users.into_iter().collect();
    let mut conn = cluster.conn.clone();

    // Where each user has sockets, other than here.
    let mut nodes_of: HashMap<UserId, Vec<String>> = HashMap::new();
    if !users.is_empty() {
        let mut pipe = redis::pipe();
        for &user in &users {
            pipe.cmd("HGETALL").arg(Cluster::reg_key(user));
        }
        let found = tokio::time::timeout(
            REDIS_TIMEOUT,
            pipe.query_async::<Vec<Vec<(String, u64)>>>(&mut conn),
        )
        .await;
        let found = match found {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => return failed(cluster, "lookup", &err.to_string()),
            Err(_) => return failed(cluster, "lookup", "timed out"),
        };
        let now = parley_proto::now_ms();
        for (user, entries) in users.iter().zip(found) {
            let nodes: Vec<String> = entries
                .into_iter()
                .filter(|(node, epoch)| {
                    *node != cluster.node && cluster.maybe_alive(node, *epoch, now)
                })
                .map(|(node, _)| node)
                .collect();
            if !nodes.is_empty() {
                nodes_of.insert(*user, nodes);
            }
        }
    }

    // Per destination node, in commit order.
    let mut per_node: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    for item in routed {
        match item {
            RouteItem::Message {
                message,
                recipients,
            } => {
                let mut to_by_node: BTreeMap<&str, Vec<(UserId, u64)>> = BTreeMap::new();
                for recipient in &recipients {
                    for node in nodes_of.get(&recipient.user_id).into_iter().flatten() {
                        to_by_node
                            .entry(node)
                            .or_default()
                            .push((recipient.user_id, recipient.cursor));
                    }
                }
                for (node, to) in to_by_node {
                    per_node
                        .entry(node.to_owned())
                        .or_default()
                        .push(Item::Message {
                            message: (*message).clone(),
                            to,
                        });
                }
            }
            RouteItem::Frame { frame, to, except } => {
                let mut to_by_node: BTreeMap<&str, Vec<UserId>> = BTreeMap::new();
                for user in &to {
                    for node in nodes_of.get(user).into_iter().flatten() {
                        to_by_node.entry(node).or_default().push(*user);
                    }
                }
                for (node, to) in to_by_node {
                    per_node
                        .entry(node.to_owned())
                        .or_default()
                        .push(Item::Frame {
                            frame: frame.clone(),
                            to,
                            except,
                        });
                }
            }
            RouteItem::Broadcast(_) => {}
        }
    }

    let now = parley_proto::now_ms();
    let mut pipe = redis::pipe();
    let mut publishes = 0usize;
    for (node, items) in per_node {
        let link = links.entry(node.clone()).or_insert(0);
        for (payload, messages) in
            envelope::encode(&cluster.node, cluster.epoch, now, items, || {
                *link += 1;
                *link
            })
        {
            metrics::counter!("parley_router_envelopes_total").increment(1);
            metrics::counter!("parley_router_bytes_total").increment(payload.len() as u64);
            if messages > 0 {
                metrics::histogram!("parley_router_envelope_messages_batch_size")
                    .record(messages as f64);
                metrics::counter!("parley_router_messages_total").increment(messages as u64);
            }
            pipe.cmd("PUBLISH")
                .arg(Cluster::channel(&node))
                .arg(payload)
                .ignore();
            publishes += 1;
        }
    }
    if !broadcasts.is_empty() {
        for (payload, _) in envelope::encode(&cluster.node, cluster.epoch, now, broadcasts, || 0) {
            pipe.cmd("PUBLISH")
                .arg(Cluster::CONTROL)
                .arg(payload)
                .ignore();
            publishes += 1;
        }
    }
    if publishes == 0 {
        return;
    }
    match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => failed(cluster, "publish", &err.to_string()),
        Err(_) => failed(cluster, "publish", "timed out"),
    }
}

/// A batch could not be routed: once Redis answers again every node
/// re-checks its sockets against the store.
fn failed(cluster: &Cluster, op: &'static str, why: &str) {
    metrics::counter!("parley_redis_errors_total", "op" => op).increment(1);
    tracing::debug!(
        op,
        why,
        "router batch failed; peers will re-check from the store"
    );
    cluster
        .needs_broadcast_resync
        .store(true, Ordering::Release);
    cluster.needs_heal.store(true, Ordering::Release);
}
