//! The Parley server.
//!
//! # Layout
//! - [`config`]: the one [`Config`] struct (file, `PARLEY_*` env, flags).
//! - [`state`]: [`state::AppState`], everything requests and sockets share.
//! - [`accounts`]: making accounts (sign-up and administrators share it)
//!   and ending every session of a user at once.
//! - [`admin`]: what `parley admin` does on the server host without a
//!   running server: the first administrator, backups.
//! - [`http`]: the `/v1` HTTP API, `/healthz`, `/metrics`; one module per
//!   resource, and [`http::extract`] for bodies, paths and the bearer token.
//! - [`ws`]: the WebSocket gateway, one task per socket.
//! - [`send`]: the send service both `ws` and `http` call (limits, rate,
//!   enqueue on the store).
//! - [`dispatch`]: commit stream → sockets, in commit order.
//! - [`hub`]: live sockets and their bounded queues.
//! - [`members`]: the membership cache for routing typing frames, and its
//!   one invalidation rule.
//! - [`media`]: uploads (slots, the `local` upload URL, verification at
//!   `complete`, thumbnails), downloads, capability URLs, garbage
//!   collection, over `object_store`.
//! - [`presence`]: online / last seen for subscribed sockets.
//! - [`push`]: push notifications for devices without a live socket: the
//!   trigger, the delivery worker, the providers (Web Push, FCM, APNs).
//! - [`blocks`]: who blocks whom, cached for presence and typing.
//! - [`catalog`]: every exported metric with its help text, registered at
//!   start.
//! - [`sessions`]: counts live socket tasks, for shutdown and the
//!   connection limit.
//! - [`background`]: the dispatcher, inbox pruner and presence timers,
//!   started and stopped in one place.
//! - [`cluster`]: cluster mode (several nodes on Redis and PostgreSQL):
//!   cross-node routing, the per-socket stitcher, leases, presence.
//! - [`connections`]: the `max_connections` limit: counts connections at
//!   the listener, answers those over it 503; and the per-source cap.
//! - [`transport`]: the accept loop over hyper: header and body timeouts,
//!   and a shutdown bounded whatever clients do.
//! - [`tls`]: built-in TLS (optional): the acceptor, reloaded on SIGHUP.
//! - [`auth`]: argon2id passwords, signed tokens, revocation.
//! - [`ratelimit`]: token buckets; [`abuse`]: the HTTP abuse limits
//!   (sign-ups, groups, member additions, requests per token).
//! - [`error`]: [`ApiError`], the one place errors become protocol codes.
//! - `web`: the embedded web client.
//!
//! The hot path reads top to bottom: socket → frame decode ([`ws`]) →
//! [`send`] → store (group commit) → `sent` to the sender; commit stream →
//! [`dispatch`] → [`hub`] queues → sockets.

pub mod abuse;
pub mod accounts;
pub mod admin;
pub mod auth;
pub mod background;
pub mod blocks;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod dispatch;
pub mod error;
pub mod http;
pub mod hub;
pub mod media;
pub mod members;
pub mod presence;
pub mod push;
pub mod ratelimit;
pub mod send;
pub mod sessions;
pub mod state;
pub mod tls;
pub mod transport;
mod web;
pub mod ws;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parley_proto::ServerFrame;
use parley_store::postgres::PostgresOptions;
use parley_store::{StoreConfig, sqlite::SqliteOptions};
use rand::Rng;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::ApiError;

use crate::background::Background;
use crate::connections::LimitedListener;
use crate::hub::{Hub, Outbound, close_code};
use crate::presence::Presence;
use crate::ratelimit::KeyedLimiter;
use crate::state::AppState;

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Storage failed to open.
    #[error("storage: {0}")]
    Store(#[from] parley_store::StoreError),
    /// Cluster mode could not start.
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    /// Push notifications could not start (the VAPID key, a provider's
    /// credentials).
    #[error("push: {0}")]
    Push(String),
    /// The data dir or the listener failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An administrative command was refused (a taken name, a bad
    /// password).
    #[error("{}", .0.message)]
    Refused(#[from] ApiError),
    /// The media store could not be opened.
    #[error(transparent)]
    Media(#[from] media::MediaSetupError),
}

/// The process-wide Prometheus recorder (a recorder can be installed once;
/// tests run many servers in one process).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                // Push latency includes `push_delay_ms` (seconds, not ms).
                .set_buckets_for_metric(
                    Matcher::Full("parley_push_latency_seconds".into()),
                    &[
                        0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_seconds".into()),
                        &[
                            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                            0.25, 0.5, 1.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_batch_size".into()),
                        &[
                            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                        ],
                    )
                })
                .expect("static bucket lists are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then ours just
            // renders nothing, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The store configuration the server config asks for.
pub fn store_config(config: &Config) -> StoreConfig {
    match &config.database {
        Some(url) => StoreConfig::Postgres {
            url: url.clone(),
            options: PostgresOptions {
                pool_size: config.database_pool_size,
                max_batch: config.commit_max_batch,
                connect_timeout: Duration::from_millis(config.database_timeout_ms.min(5_000)),
                op_timeout: Duration::from_millis(config.database_timeout_ms),
                ..PostgresOptions::default()
            },
        },
        None => StoreConfig::Sqlite {
            path: config.data_dir.join("parley.db"),
            options: SqliteOptions {
                synchronous_full: config.sqlite_synchronous_full,
                max_batch: config.commit_max_batch,
                search_index_batch: config.search_index_batch,
                search_index_delay: Duration::from_millis(config.search_index_delay_ms),
                checkpoint_interval: Duration::from_millis(config.sqlite_checkpoint_interval_ms),
                wal_restart_pages: config.sqlite_wal_restart_pages,
                cache_kib: config.sqlite_cache_kib,
            },
        },
    }
}

/// Runs the server on `listener` until `shutdown` resolves, then drains:
/// refuses new work, tells every socket to reconnect (jittered), finishes
/// in-flight sends, flushes storage, and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let config = config.check()?;
    // Read before anything starts, so a bad certificate stops the server
    // at once.
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(tls::Tls::load(cert, key)?)),
        _ => None,
    };
    std::fs::create_dir_all(&config.data_dir)?;
    // Installed before the store opens: its writer thread takes its metric
    // handles when it starts, and a handle taken earlier would be a no-op.
    let metrics = metrics_handle();
    catalog::register(config.cluster_mode());
    let (store, commits) = parley_store::open(&store_config(&config)).await?;
    let token_key = config.token_key_bytes()?;
    let auth = auth::Authenticator::open_with_key(
        token_key.as_deref(),
        &config.data_dir,
        config.token_ttl_secs,
        config.argon2_memory_kib,
        config.argon2_iterations,
    )?;
    auth.revoke_all(store.revoked_devices().await?);
    let push = Arc::new(
        push::Push::open(&config, &store)
            .await
            .map_err(ServerError::Push)?,
    );
    let media = media::Media::open(&config, auth.derive_key("parley media urls v1"))?;
    let hub = Arc::new(Hub::new(config.socket_queue_frames));
    let (presence, leave_timers) = Presence::new(
        hub.clone(),
        store.clone(),
        Duration::from_millis(config.presence_grace_ms),
    );
    let max_connections = config.max_connections;
    let cluster = match &config.redis_url {
        Some(_) => {
            let node = config.node_id.clone().unwrap_or_else(|| {
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            });
            let cluster = Arc::new(cluster::Cluster::new(&config, node)?);
            presence.set_cluster(cluster.clone());
            tracing::info!(node = %cluster.node, "cluster mode");
            Some(cluster)
        }
        None => None,
    };
    let state = Arc::new(AppState {
        send_limiter: KeyedLimiter::new(config.send_rate_per_sec, config.send_burst as f64),
        login_limiter: KeyedLimiter::new(
            config.login_attempts_per_minute as f64 / 60.0,
            config.login_attempts_per_minute as f64,
        ),
        members: Default::default(),
        draining: Default::default(),
        sessions: Default::default(),
        metrics,
        hot: catalog::HotMetrics::new(),
        abuse: abuse::Limits::new(&config),
        media: Arc::new(media),
        config,
        store,
        auth,
        hub,
        presence: Arc::new(presence),
        cluster,
        push,
    });
    let background = Background::start(&state, commits, leave_timers);
    let cluster_tasks = cluster::start(&state);

    let app: Router = http::router()
        .fallback(web::serve)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            abuse::limit_requests,
        ))
        .layer(axum::middleware::from_fn(connections::refuse_over_limit))
        .with_state(state.clone());

    let listener = LimitedListener::new(
        listener,
        max_connections,
        state.config.max_connections_per_ip,
        state.config.per_ip_limits_on_loopback,
        state.sessions.clone(),
    );
    let timeouts = transport::Timeouts {
        header: Duration::from_millis(state.config.http_header_timeout_ms),
        body: Duration::from_millis(state.config.http_body_timeout_ms),
    };
    #[cfg(unix)]
    let reloader = tls.clone().map(|tls| tokio::spawn(tls.reload_on_sighup()));
    let open = transport::serve_until(listener, app, timeouts, tls, shutdown).await;
    #[cfg(unix)]
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    // Sockets and HTTP connections get the same grace, side by side; after
    // it, whatever is still open is closed, so shutdown is bounded.
    let grace = Duration::from_millis(state.config.shutdown_grace_ms);
    tokio::join!(drain(&state), open.close(grace));
    background.stop(&state).await;
    if let Some(tasks) = cluster_tasks {
        tasks.stop(&state).await;
    }
    tracing::info!("server stopped");
    Ok(())
}

/// Tells every socket to reconnect elsewhere later and waits (bounded) for
/// them to finish their in-flight sends and close.
async fn drain(state: &AppState) {
    state.draining.store(true, Ordering::Release);
    let sockets = state.hub.all();
    tracing::info!(sockets = sockets.len(), "draining");
    let jitter = state.config.reconnect_jitter_ms.max(1);
    for socket in sockets {
        let after_ms = rand::rng().random_range(0..jitter);
        let frame = ServerFrame::Reconnect { after_ms }.to_json();
        // Bypass the queue bound: this frame must arrive even on a busy socket.
        socket.shared.force_push(Outbound::Frame(frame.into()));
        socket.shared.close(close_code::GOING_AWAY);
    }
    let grace = Duration::from_millis(state.config.shutdown_grace_ms);
    if tokio::time::timeout(grace, state.sessions.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!("some sockets did not close within the shutdown grace period");
    }
}
