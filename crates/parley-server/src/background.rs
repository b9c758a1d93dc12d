//! Background work, started and stopped in one place.
//!
//! These tasks run beside the request and socket tasks:
//! - the dispatcher ([`crate::dispatch`]): the store's commit stream →
//!   socket queues, in commit order;
//! - the inbox pruner: hourly, drops inbox entries older than
//!   `inbox_retention_days`;
//! - the presence leave timers ([`Presence::run_leave_timers`]): announce a
//!   user offline when its grace period ends;
//! - the push trigger and delivery worker ([`crate::push`]), the worker
//!   only when `push_concurrency` is above 0.
//! - the media garbage collector: every `media_gc_interval_secs`, deletes
//!   media unreferenced (or never completed) for `media_orphan_grace_secs`
//!   ([`crate::media::Media::collect_garbage`]).
//! - the metrics upkeep: every [`METRICS_UPKEEP_INTERVAL`], folds the
//!   histogram samples recorded since into their buckets.
//!
//! [`Background::start`] spawns them; [`Background::stop`] ends them in the
//! order shutdown needs (see there).

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use parley_store::CommitReceiver;
use tokio::task::JoinHandle;

use crate::presence::{LeaveTimers, Presence};
use crate::state::AppState;

/// How often inbox entries past retention are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// How long shutdown waits for the dispatcher to route what was committed.
const DISPATCH_DRAIN: Duration = Duration::from_secs(5);

/// How often recorded histogram samples are folded into their buckets.
///
/// The Prometheus recorder keeps every histogram sample in a queue until
/// something drains it: a `/metrics` scrape or an upkeep. Without upkeep a
/// server nobody scrapes grows by ~8 bytes per sample for good (two per
/// commit batch: ~1 MiB a minute in the soak at 1,500 msg/s with its
/// receipts; BENCHMARKS.md, "Soak"). 5 s is the exporter's own default.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The running background tasks.
pub struct Background {
    dispatcher: JoinHandle<()>,
    inbox_pruner: JoinHandle<()>,
    leave_timers: JoinHandle<()>,
    push_trigger: Option<JoinHandle<()>>,
    push_worker: Option<JoinHandle<()>>,
    media_gc: JoinHandle<()>,
    metrics_upkeep: JoinHandle<()>,
}

impl Background {
    /// Spawns every background task.
    pub fn start(
        state: &Arc<AppState>,
        commits: CommitReceiver,
        leave_timers: LeaveTimers,
    ) -> Background {
        Background {
            dispatcher: tokio::spawn(crate::dispatch::run(state.clone(), commits)),
            inbox_pruner: tokio::spawn(prune_inbox_periodically(state.clone())),
            leave_timers: tokio::spawn(Presence::run_leave_timers(
                state.presence.clone(),
                leave_timers,
            )),
            push_trigger: state
                .push
                .take_trigger_rx()
                .map(|jobs| tokio::spawn(crate::push::trigger::run(state.clone(), jobs))),
            push_worker: (state.config.push_concurrency > 0)
                .then(|| tokio::spawn(crate::push::worker::run(state.clone()))),
            media_gc: tokio::spawn(collect_media_periodically(state.clone())),
            metrics_upkeep: tokio::spawn(keep_metrics_bounded(
                state.metrics.clone(),
                METRICS_UPKEEP_INTERVAL,
            )),
        }
    }

    /// Stops everything once the listener and every socket are done:
    /// the pruner and the leave timers stop, last-seen times of everyone
    /// still online or in a grace period are stored, the store flushes and
    /// stops (which ends its commit stream), and the dispatcher is given a
    /// bounded time to route what was committed.
    pub async fn stop(self, state: &AppState) {
        self.inbox_pruner.abort();
        // A push being delivered now stays claimed in the store until its
        // lease ends; then this or another node delivers it.
        if let Some(worker) = &self.push_worker {
            worker.abort();
        }
        // A round cut short is finished by the next run (see there).
        self.media_gc.abort();
        self.metrics_upkeep.abort();
        self.leave_timers.abort();
        let _ = self.leave_timers.await;
        state.presence.record_all_last_seen().await;
        state.store.shutdown().await;
        tracing::info!("storage shut down");
        if tokio::time::timeout(DISPATCH_DRAIN, self.dispatcher)
            .await
            .is_err()
        {
            tracing::warn!("the dispatcher did not finish routing within the shutdown bound");
        }
        // Messages committed in the last moments may lose their push: the
        // store no longer takes the trigger's writes (docs/push.md).
        if let Some(trigger) = self.push_trigger {
            trigger.abort();
        }
    }
}

/// Drops inbox entries past retention, every [`PRUNE_INTERVAL`].
async fn prune_inbox_periodically(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        interval.tick().await;
        let cutoff = parley_proto::now_ms() - state.config.inbox_retention_ms();
        match state.store.prune_inbox(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "pruned inbox entries past retention"),
            Err(err) => tracing::warn!(%err, "inbox pruning failed"),
        }
    }
}

/// Runs the media garbage collector every `media_gc_interval_secs`.
async fn collect_media_periodically(state: Arc<AppState>) {
    let mut interval =
        tokio::time::interval(Duration::from_secs(state.config.media_gc_interval_secs));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let grace_ms = (state
            .config
            .media_orphan_grace_secs
            .min(i64::MAX as u64 / 1000) as i64)
            .saturating_mul(1000);
        let before = parley_proto::now_ms().saturating_sub(grace_ms);
        match state.media.collect_garbage(&*state.store, before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(media = n, "collected unreferenced media"),
            Err(err) => tracing::warn!(%err, "media garbage collection failed"),
        }
    }
}

/// Drains recorded histogram samples every `every` ([`METRICS_UPKEEP_INTERVAL`]
/// in the server), so that memory does not depend on whether anyone
/// scrapes `/metrics`. Public for its test (`tests/metrics_upkeep.rs`).
pub async fn keep_metrics_bounded(metrics: PrometheusHandle, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        // Short: a few thousand samples moved into fixed buckets under the
        // recorder's own lock, which nothing holds across an await.
        metrics.run_upkeep();
    }
}
