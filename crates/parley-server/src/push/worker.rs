//! The delivery worker: claims due pushes from the store (a lease, so a
//! node that dies leaves them to another), delivers them through their
//! provider with at most `push_concurrency` in flight, and records the
//! outcome: delivered → done; retry → due again after a backoff that
//! honours `Retry-After`; gone → the registration is deleted; rejected or
//! past `push_ttl_secs` → dropped. Metrics: `parley_push_sent_total`,
//! `parley_push_failed_total{reason}`, `parley_push_gone_total`,
//! `parley_push_latency_seconds` (first queued message → accepted).

use std::sync::Arc;
use std::time::Duration;

use parley_proto::now_ms;
use parley_proto::push::PushPayload;
use parley_store::PendingPush;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::provider::{Outcome, Outgoing, backoff};
use crate::state::AppState;

/// Runs until aborted (the background stop).
pub async fn run(state: Arc<AppState>) {
    let config = &state.config;
    let limit = config.push_concurrency;
    let permits = Arc::new(Semaphore::new(limit));
    let mut in_flight = JoinSet::new();
    let poll = Duration::from_millis(config.push_poll_ms);
    loop {
        while in_flight.try_join_next().is_some() {}
        let free = permits.available_permits();
        let mut claimed_all = false;
        if free > 0 {
            let now = now_ms();
            match state
                .store
                .claim_pushes(now, now + config.push_lease_ms as i64, free)
                .await
            {
                Ok(claimed) => {
                    claimed_all = claimed.len() == free;
                    for push in claimed {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            return;
                        };
                        let state = state.clone();
                        in_flight.spawn(async move {
                            deliver(&state, push).await;
                            drop(permit);
                        });
                    }
                }
                Err(err) => {
                    metrics::counter!("parley_push_store_errors_total").increment(1);
                    tracing::warn!(%err, "could not claim due pushes");
                }
            }
        }
        if claimed_all {
            // More may be due: claim again once half the slots are free, so
            // a backlog is claimed in batches (each claim is a store write),
            // not one push per write.
            let half = (limit / 2).max(1);
            while permits.available_permits() < half && in_flight.join_next().await.is_some() {}
            continue;
        }
        let wait = match state.store.next_push_due().await {
            Ok(Some(due)) => Duration::from_millis((due - now_ms()).max(0) as u64).min(poll),
            _ => poll,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.push.wake.notified() => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() && free == 0 => {}
        }
    }
}

/// One claimed push: deliver it and record what came of it.
async fn deliver(state: &AppState, push: PendingPush) {
    let config = &state.config;
    let store = &state.store;
    let now = now_ms();
    let finish = || store.finish_push(push.device_id, push.generation, push.unread);
    if still_live(state, &push).await {
        // It reconnected meanwhile and got the messages on its socket.
        log_store(finish().await);
        metrics::counter!("parley_push_skipped_total", "reason" => "live").increment(1);
        return;
    }
    if now - push.created_at_ms > config.push_ttl_secs as i64 * 1000 {
        metrics::counter!("parley_push_failed_total", "reason" => "expired").increment(1);
        log_store(finish().await);
        return;
    }
    let Some(provider) = state.push.provider(&push.target) else {
        metrics::counter!("parley_push_failed_total", "reason" => "unconfigured").increment(1);
        log_store(finish().await);
        return;
    };
    let mut payload = PushPayload::wake(push.conversation_id, push.unread);
    if let Some((sender, text)) = &push.preview {
        payload.sender_id = Some(*sender);
        payload.text = Some(text.clone());
    }
    let ttl_secs = (config.push_ttl_secs as i64 - (now - push.created_at_ms) / 1000).max(0) as u64;
    let outcome = provider
        .send(&Outgoing {
            target: &push.target,
            payload: &payload,
            urgent: push.urgent,
            ttl_secs,
        })
        .await;
    let name = provider.name();
    match outcome {
        Outcome::Delivered => {
            metrics::counter!("parley_push_sent_total", "provider" => name).increment(1);
            let latency = (now_ms() - push.created_at_ms).max(0) as f64 / 1000.0;
            metrics::histogram!("parley_push_latency_seconds", "provider" => name).record(latency);
            log_store(finish().await);
        }
        Outcome::Gone => {
            metrics::counter!("parley_push_gone_total", "provider" => name).increment(1);
            log_store(store.delete_push_target(push.device_id).await);
        }
        Outcome::Retry(asked) => {
            metrics::counter!("parley_push_failed_total", "provider" => name, "reason" => "retry")
                .increment(1);
            let wait = backoff(
                push.attempts,
                Duration::from_millis(config.push_retry_initial_ms),
                Duration::from_millis(config.push_retry_max_ms),
                asked,
            );
            log_store(
                store
                    .retry_push(push.device_id, now_ms() + wait.as_millis() as i64)
                    .await,
            );
        }
        Outcome::Rejected(why) => {
            metrics::counter!("parley_push_failed_total", "provider" => name, "reason" => "rejected")
                .increment(1);
            tracing::warn!(provider = name, device = %push.device_id, %why, "push rejected");
            log_store(finish().await);
        }
    }
}

/// Whether the device is taken for live. One node: it has a socket here.
/// Cluster: its user has a socket on any node, because the registry is
/// per user and node and cannot tell this device's socket from another's;
/// judging every node by that same coarse rule keeps the answer the same
/// whichever node's worker delivers.
async fn still_live(state: &AppState, push: &PendingPush) -> bool {
    if state.hub.device_connected(push.user_id, push.device_id) {
        return true;
    }
    match &state.cluster {
        Some(cluster) => {
            state.hub.is_connected(push.user_id)
                || cluster.online_elsewhere(push.user_id).await == Some(true)
        }
        None => false,
    }
}

fn log_store(result: Result<(), parley_store::StoreError>) {
    if let Err(err) = result {
        metrics::counter!("parley_push_store_errors_total").increment(1);
        tracing::warn!(%err, "could not record a push outcome");
    }
}
