//! The push trigger (§12): after a durable message commits, which devices
//! does it wake? Runs as one task fed by the dispatcher through a bounded
//! queue, so a send never waits for it.
//!
//! A recipient's device is woken when it has a registration, its owner
//! has not muted the conversation and does not block the sender (the
//! store's `push_candidates`), and it had no live socket on this node when
//! the dispatcher routed the message (a device that got it on its socket
//! is not woken, even if it left since). In
//! cluster mode the other nodes' sockets are checked by the worker at
//! delivery time, per user (the registry is per user and node, see
//! docs/push.md).
//! Each woken device gets one pending push in the store, due after
//! `push_delay_ms`; further messages coalesce into it.

use std::sync::Arc;
use std::time::Duration;

use parley_store::NewPendingPush;
use tokio::sync::mpsc;

use super::TriggerJob;
use crate::state::AppState;

/// Runs until the dispatcher's side of the queue is gone; also reloads
/// who has registrations every `push_registry_refresh_ms`.
pub async fn run(state: Arc<AppState>, mut jobs: mpsc::Receiver<TriggerJob>) {
    let mut refresh =
        tokio::time::interval(Duration::from_millis(state.config.push_registry_refresh_ms));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { return };
                if let Err(err) = queue_for(&state, &job).await {
                    metrics::counter!("parley_push_trigger_errors_total").increment(1);
                    tracing::warn!(%err, "push trigger could not queue pushes");
                }
            }
            _ = refresh.tick() => state.push.refresh_registered(&*state.store).await,
        }
    }
}

async fn queue_for(state: &AppState, job: &TriggerJob) -> Result<(), parley_store::StoreError> {
    let message = &job.message;
    let users = job.recipients.clone();
    let now = parley_proto::now_ms();
    let candidates = state
        .store
        .push_candidates(message.conversation_id, message.sender_id, users, now)
        .await?;
    let due = now + state.config.push_delay_ms as i64;
    let pushes: Vec<NewPendingPush> = candidates
        .into_iter()
        .filter(|c| !job.live.contains(&c.device_id))
        .map(|c| NewPendingPush {
            device_id: c.device_id,
            user_id: c.user_id,
            conversation_id: message.conversation_id,
            urgent: c.direct,
            preview: if c.previews {
                super::preview(message, state.config.push_preview_chars)
                    .map(|text| (message.sender_id, text))
            } else {
                None
            },
            due_at_ms: due,
            now_ms: now,
        })
        .collect();
    if pushes.is_empty() {
        return Ok(());
    }
    metrics::counter!("parley_push_queued_total").increment(pushes.len() as u64);
    state.store.queue_pushes(pushes).await?;
    state.push.wake.notify_one();
    Ok(())
}
