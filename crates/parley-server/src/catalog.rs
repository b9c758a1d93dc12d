//! Every metric the server exports, described once: its kind and the help
//! text `/metrics` shows. [`register`] describes each and registers it at
//! zero when the server starts, so dashboards and alert rules see every
//! series from the first scrape (a counter that never moved would
//! otherwise be absent, and an absent series never alerts).
//! docs/operations.md lists the same metrics with what a healthy value
//! looks like; a test keeps the two in step.

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its name on `/metrics`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Whether only cluster mode moves it.
    pub cluster: bool,
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, cluster: bool, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        cluster,
        help,
    }
}

/// Every metric, single node first, then cluster mode's.
pub const METRICS: &[Metric] = &[
    metric(
        "parley_connections",
        Kind::Gauge,
        false,
        "Open WebSockets on this node.",
    ),
    metric(
        "parley_sends_total",
        Kind::Counter,
        false,
        "Messages and events accepted for storage (WebSocket and HTTP).",
    ),
    metric(
        "parley_deliveries_total",
        Kind::Counter,
        false,
        "Message copies routed to recipients (one per recipient).",
    ),
    metric(
        "parley_frames_in_total",
        Kind::Counter,
        false,
        "WebSocket text frames received.",
    ),
    metric(
        "parley_frames_out_total",
        Kind::Counter,
        false,
        "WebSocket text frames sent.",
    ),
    metric(
        "parley_commit_seconds",
        Kind::Histogram,
        false,
        "Time of one group commit (a transaction and its fsync or COMMIT).",
    ),
    metric(
        "parley_commit_batch_size",
        Kind::Histogram,
        false,
        "Writes per group commit.",
    ),
    metric(
        "parley_sqlite_wal_pages",
        Kind::Gauge,
        false,
        "SQLite: pages in the WAL at the last checkpoint (bounded by sqlite_wal_restart_pages).",
    ),
    metric(
        "parley_search_index_seconds",
        Kind::Histogram,
        false,
        "SQLite: time of one search index catch-up (the indexer thread's, in its own file).",
    ),
    metric(
        "parley_commit_retries_total",
        Kind::Counter,
        false,
        "PostgreSQL write batches re-run after a deadlock or serialization failure.",
    ),
    metric(
        "parley_abandoned_sends_total",
        Kind::Counter,
        false,
        "Sends skipped unwritten because their sender was gone (socket closed, request dropped) before the writer reached them.",
    ),
    metric(
        "parley_slow_consumer_closes_total",
        Kind::Counter,
        false,
        "Sockets closed (4008) because their queue filled up.",
    ),
    metric(
        "parley_refused_connections_total",
        Kind::Counter,
        false,
        "Connections answered 503 because max_connections was reached.",
    ),
    metric(
        "parley_refused_connections_per_ip_total",
        Kind::Counter,
        false,
        "Connections answered 503 because one address held max_connections_per_ip.",
    ),
    metric(
        "parley_rate_limited_total",
        Kind::Counter,
        false,
        "Requests refused by an abuse limit, by limit.",
    ),
    metric(
        "parley_cursor_checks_total",
        Kind::Counter,
        false,
        "Sockets whose cursor was re-checked against the store, by cause.",
    ),
    metric(
        "parley_cursor_check_healed_total",
        Kind::Counter,
        false,
        "Messages a re-check found in the store that the socket had not had, by cause.",
    ),
    metric(
        "parley_router_connected",
        Kind::Gauge,
        true,
        "1 while the node's Redis subscription is up (cluster mode).",
    ),
    metric(
        "parley_router_envelopes_total",
        Kind::Counter,
        true,
        "Envelopes published to other nodes.",
    ),
    metric(
        "parley_router_envelopes_received_total",
        Kind::Counter,
        true,
        "Envelopes received from other nodes.",
    ),
    metric(
        "parley_router_bytes_total",
        Kind::Counter,
        true,
        "Bytes of envelopes published.",
    ),
    metric(
        "parley_router_messages_total",
        Kind::Counter,
        true,
        "Messages carried in published envelopes.",
    ),
    metric(
        "parley_router_envelope_messages_batch_size",
        Kind::Histogram,
        true,
        "Messages per published envelope.",
    ),
    metric(
        "parley_router_dropped_total",
        Kind::Counter,
        true,
        "Envelopes dropped because the router's queue was full (sockets heal from the store).",
    ),
    metric(
        "parley_router_resyncs_total",
        Kind::Counter,
        true,
        "Re-checks of every socket, by cause.",
    ),
    metric(
        "parley_router_delivery_latency_seconds",
        Kind::Histogram,
        true,
        "From publish on one node to the frame on another.",
    ),
    metric(
        "parley_redis_errors_total",
        Kind::Counter,
        true,
        "Failed Redis operations, by operation.",
    ),
    metric(
        "parley_cluster_nodes_reaped_total",
        Kind::Counter,
        true,
        "Dead nodes whose users this node reaped.",
    ),
];

/// Describes every metric and registers it at zero. Cluster metrics only
/// in cluster mode: on a single node they would sit at zero forever, and
/// `parley_router_connected` at 0 reads as "Redis is down".
pub fn register(cluster_mode: bool) {
    for metric in METRICS.iter().filter(|m| cluster_mode || !m.cluster) {
        match metric.kind {
            Kind::Counter => {
                metrics::describe_counter!(metric.name, metric.help);
                metrics::counter!(metric.name).increment(0);
            }
            Kind::Gauge => {
                metrics::describe_gauge!(metric.name, metric.help);
                metrics::gauge!(metric.name).increment(0.0);
            }
            Kind::Histogram => {
                metrics::describe_histogram!(metric.name, metric.help);
                // Registered without a sample (a sample would skew it).
                let _ = metrics::histogram!(metric.name);
            }
        }
    }
}

/// Handles of the metrics every message moves, looked up once at start: a
/// `metrics::counter!` call hashes its name and searches the registry each
/// time, which the per-frame path paid several times per message.
#[derive(Debug)]
pub struct HotMetrics {
    /// `parley_frames_in_total`.
    pub frames_in: metrics::Counter,
    /// `parley_frames_out_total`.
    pub frames_out: metrics::Counter,
    /// `parley_sends_total`.
    pub sends: metrics::Counter,
    /// `parley_deliveries_total`.
    pub deliveries: metrics::Counter,
}

impl HotMetrics {
    /// The handles, from the installed recorder (call after installing it:
    /// a handle made before is a no-op for good).
    pub fn new() -> HotMetrics {
        HotMetrics {
            frames_in: metrics::counter!("parley_frames_in_total"),
            frames_out: metrics::counter!("parley_frames_out_total"),
            sends: metrics::counter!("parley_sends_total"),
            deliveries: metrics::counter!("parley_deliveries_total"),
        }
    }
}

impl Default for HotMetrics {
    fn default() -> Self {
        HotMetrics::new()
    }
}
