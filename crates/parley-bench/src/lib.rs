//! `parley bench`: load generator and chaos harness (see BENCHMARKS.md).
//!
//! The `parley` binary embeds this crate: it parses [`BenchArgs`] as its
//! `bench` subcommand and calls [`run`]. A spawned server and the
//! `connections` worker processes are that same binary
//! (`std::env::current_exe()`), so the bench only works from inside it.
//!
//! # Layout
//! - `lib.rs`: [`BenchArgs`], [`run`] (scenario dispatch), progress bars and
//!   number formatting.
//! - `target`: the server under test, spawned (`--spawn`) or at `--url`;
//!   its memory and CPU from `/proc`.
//! - `setup`: users, logins and conversations over HTTP (`parley-client`).
//! - `wire`: sockets through `parley-client` (handshake, auth, ready) on a
//!   source-bound, RST-closing TCP socket; frames encoded by `parley-proto`;
//!   hot-frame decoding.
//! - `lean`: the `--lean-parse` field scanner for the hot frames.
//! - `traffic`: the open/closed-loop engine behind `direct` and `group`.
//! - `stats`: latency histograms, live counters, errors by kind.
//! - `verify`: loss, duplicate, ordering and gap checks.
//! - `report`: summary table, `--json`, `--plot` SVG.
//! - `direct`: the `direct` and `group` scenarios.
//! - `connections`: the `connections` scenario and its hidden worker
//!   process.
//! - `reconnect`: the `reconnect` scenario.
//! - `chaos`: the `chaos` scenario (kill -9 under load).
//! - `cluster`: the `cluster` scenario (same-node against cross-node
//!   delivery on several nodes sharing PostgreSQL and Redis).
//! - `fill`: a pipelined sender of varied, searchable text, optionally
//!   mixing in edits and reactions.
//! - `search`: the `search` scenario (search latency over a filled store)
//!   and the `events` scenario (what edits and reactions cost on the send
//!   path).
//! - `soak`: the `soak` scenario (a share of the capacity held for half an
//!   hour with reconnects, receipts and group churn; RSS, descriptors, CPU
//!   and latency per minute, and a leak verdict).
//!
//! Every run is bounded in time and count, stops by itself, and only
//! talks to 127.0.0.0/8.

mod chaos;
mod cluster;
mod connections;
mod direct;
mod fill;
mod lean;
mod reconnect;
mod report;
mod search;
mod setup;
mod soak;
mod stats;
mod target;
mod traffic;
mod verify;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, ValueEnum};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use stats::Live;
use target::Target;

/// Sockets per source address: well inside the 28,000 ephemeral ports of
/// one (source, destination) pair, with room for TIME_WAIT leftovers.
pub(crate) const SOCKETS_PER_SOURCE_IP: usize = 15_000;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// N idle authenticated WebSockets: connect rate, server memory each.
    Connections,
    /// P pairs exchanging 1:1 messages, open or closed loop.
    Direct,
    /// G groups of M members, one sender each.
    Group,
    /// K clients miss messages, then all reconnect at once.
    Reconnect,
    /// kill -9 a spawned server under load; verify nothing acked is lost.
    Chaos,
    /// Several cluster nodes: same-node against cross-node delivery,
    /// Redis commands and bytes, messages per envelope, CPU per message.
    Cluster,
    /// One user in C conversations holding M messages; search latency.
    Search,
    /// Pairs sending with a share of edits and reactions mixed in.
    Events,
    /// A share of the capacity held for a long time (default 30 min) with
    /// reconnects, receipts and group churn; watches for leaks.
    Soak,
    /// Internal: a `connections` worker process.
    #[value(hide = true)]
    Worker,
}

/// Arguments of `parley bench`.
#[derive(Debug, Parser)]
pub struct BenchArgs {
    /// Scenario to run.
    #[arg(value_enum)]
    pub(crate) scenario: Scenario,
    /// Drive the server at this URL (http://127.0.0.x:PORT).
    #[arg(long, conflicts_with = "spawn")]
    pub(crate) url: Option<String>,
    /// Spawn a server (this binary) with its own temporary data dir.
    #[arg(long)]
    pub(crate) spawn: bool,
    /// Where the spawned server's temporary data dir goes (default: the
    /// system temp dir).
    #[arg(long)]
    pub(crate) data_parent: Option<PathBuf>,
    /// The --url server's process id, to report its memory.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// The --url server's per-user send limit (messages/s); the load is
    /// spread over enough users to stay under 80 % of it.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) user_rate: f64,
    /// Seconds of load (direct, group, chaos) or of holding (connections):
    /// `10`, `10s`, `30m`, `1h` (default 10 s; soak: 30 min).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) duration: Option<f64>,
    /// connections: sockets to open (default 1,000); soak: sockets held
    /// (default `--share` of the measured capacity).
    #[arg(long)]
    pub(crate) connections: Option<usize>,
    /// connections: distinct users behind them (default: one per socket).
    #[arg(long)]
    pub(crate) users: Option<usize>,
    /// connections: most sockets per worker process (each process may have
    /// 20,000 open files).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) per_process: usize,
    /// direct: pairs of users, one conversation each (both members send).
    #[arg(long, default_value_t = 50)]
    pub(crate) pairs: usize,
    /// direct, soak: offered messages/s in total; group: per group. Open
    /// loop.
    #[arg(long, conflicts_with = "window")]
    pub(crate) rate: Option<f64>,
    /// Closed loop: sends in flight per sender, as fast as acks return.
    #[arg(long)]
    pub(crate) window: Option<usize>,
    /// group: groups.
    #[arg(long, default_value_t = 2)]
    pub(crate) groups: usize,
    /// group: members per group (sender included); reconnect: group size
    /// used to make the missed messages.
    #[arg(long, default_value_t = 100)]
    pub(crate) members: usize,
    /// reconnect: clients that reconnect at once.
    #[arg(long, default_value_t = 1000)]
    pub(crate) clients: usize,
    /// reconnect: messages each client misses.
    #[arg(long, default_value_t = 10)]
    pub(crate) missed: usize,
    /// chaos: kill -9 this many times at random points.
    #[arg(long, default_value_t = 3)]
    pub(crate) kills: usize,
    /// The `cluster` scenario's own options (boxed: they are rarely used
    /// and would make every `parley` command line value larger).
    #[command(flatten)]
    pub(crate) cluster: Box<ClusterArgs>,
    /// The `soak` scenario's own options (boxed, like `cluster`'s).
    #[command(flatten)]
    pub(crate) soak: Box<soak::SoakArgs>,
    /// search: conversations of the busy user.
    #[arg(long, default_value_t = 200)]
    pub(crate) conversations: usize,
    /// search, events: messages to send in total.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) messages: usize,
    /// search: searches to run (spread over five kinds of query).
    #[arg(long, default_value_t = 1000)]
    pub(crate) queries: usize,
    /// events: percent of sends that are edits and reactions.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) events_percent: u32,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 64)]
    pub(crate) text_bytes: usize,
    /// HTTP setup workers and sockets connecting at once.
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: usize,
    /// Decode the hot frames (`sent`, `message`) with the bench's own field
    /// scanner instead of parley-proto, to measure what decoding costs.
    #[arg(long)]
    pub(crate) lean_parse: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write a latency distribution chart (SVG) here.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
}

/// Options of `parley bench cluster`.
#[derive(Debug, clap::Args)]
pub(crate) struct ClusterArgs {
    /// cluster: nodes to spawn (with --spawn).
    #[arg(long, default_value_t = 3)]
    pub(crate) nodes: usize,
    /// cluster: the PostgreSQL database the spawned nodes share (default
    /// `PARLEY_DATABASE_URL`).
    #[arg(long)]
    pub(crate) database: Option<String>,
    /// cluster: the Redis of the cluster (default with --spawn: a private
    /// `redis-server` on a free port).
    #[arg(long)]
    pub(crate) redis_url: Option<String>,
    /// cluster: a running node's URL (repeat for each node) instead of
    /// --spawn.
    #[arg(long)]
    pub(crate) node_url: Vec<String>,
    /// cluster: offered msg/s of each run, comma-separated (default
    /// 200,1000).
    #[arg(long, value_delimiter = ',')]
    pub(crate) rates: Vec<f64>,
}

impl BenchArgs {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.unwrap_or(10.0).clamp(0.1, 600.0))
    }

    /// The soak's duration: 30 minutes unless given, at most a day.
    fn soak_duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.unwrap_or(1800.0).clamp(1.0, 86_400.0))
    }

    fn text(&self) -> String {
        // Plain filler: nothing to escape.
        "x".repeat(self.text_bytes.clamp(1, 60_000))
    }

    fn target(&self) -> anyhow::Result<Target> {
        match (&self.url, self.spawn) {
            (Some(url), _) => Target::remote(url, self.server_pid, self.user_rate),
            (None, true) => Target::spawn(self.data_parent.as_deref()),
            (None, false) => {
                bail!("pass --spawn (a server of its own) or --url http://127.0.0.1:PORT")
            }
        }
    }
}

/// Runs a benchmark scenario.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.scenario == Scenario::Worker {
        return connections::worker().await;
    }
    let mut report = match args.scenario {
        Scenario::Connections => connections::run(&args).await?,
        Scenario::Direct => direct::direct(&args).await?,
        Scenario::Group => direct::group(&args).await?,
        Scenario::Reconnect => reconnect::run(&args).await?,
        Scenario::Chaos => chaos::run(&args).await?,
        Scenario::Cluster => cluster::run(&args).await?,
        Scenario::Search => search::search(&args).await?,
        Scenario::Events => search::events(&args).await?,
        Scenario::Soak => soak::run(&args).await?,
        Scenario::Worker => unreachable!("handled above"),
    };
    report.set("command", std::env::args().collect::<Vec<_>>());
    report.print(args.json);
    if let Some(path) = &args.plot {
        let written = report.plot(path)?;
        if !args.json {
            if written {
                println!("  latency chart written to {}", path.display());
            } else {
                println!("  no latency distribution in this scenario; no chart written");
            }
        }
    }
    if !report.passed {
        bail!("a correctness check failed (see above)");
    }
    Ok(())
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress_bar(label: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label);
    bar
}

/// Moves `bar` along a run of `duration` from `t0`, showing the counters.
pub(crate) fn tick_progress(
    bar: ProgressBar,
    live: Arc<Live>,
    t0: Instant,
    duration: Duration,
) -> tokio::task::JoinHandle<()> {
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{elapsed_precise}] {bar:30} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_length(duration.as_millis() as u64);
    bar.set_position(0);
    tokio::spawn(async move {
        loop {
            let elapsed = Instant::now().saturating_duration_since(t0);
            bar.set_position((elapsed.as_millis() as u64).min(duration.as_millis() as u64));
            bar.set_message(live.line());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Parses a duration in seconds: a plain number, or one ending in `ms`,
/// `s`, `m` or `h`.
fn parse_duration(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n * scale),
        _ => Err(format!(
            "{text:?} is not a duration (10, 10s, 30m, 1h, 500ms)"
        )),
    }
}

/// A rate for the table: `12,345/s`.
pub(crate) fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// A rate for people: `12,345` or `7.5`.
pub(crate) fn fmt_rate(rate: f64) -> String {
    if rate >= 100.0 {
        thousands(rate.round() as u64)
    } else {
        format!("{rate:.1}")
    }
}

/// A thousands-separated integer.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(per_sec(10, 0.0), 0.0);
        assert_eq!(per_sec(10, 2.0), 5.0);
        assert_eq!(fmt_rate(12_345.4), "12,345");
        assert_eq!(fmt_rate(7.46), "7.5");
    }

    #[test]
    fn arguments_parse() {
        let args = BenchArgs::try_parse_from([
            "bench", "direct", "--spawn", "--pairs", "10", "--rate", "500",
        ])
        .unwrap();
        assert_eq!(args.scenario, Scenario::Direct);
        assert_eq!(args.rate, Some(500.0));
        assert!(
            BenchArgs::try_parse_from(["bench", "direct", "--rate", "1", "--window", "2"]).is_err()
        );
        assert!(BenchArgs::try_parse_from(["bench", "nope"]).is_err());
        let args = BenchArgs::try_parse_from([
            "bench",
            "cluster",
            "--spawn",
            "--nodes",
            "3",
            "--rates",
            "200,1000",
            "--database",
            "postgres://postgres@127.0.0.1:5432/bench",
        ])
        .unwrap();
        assert_eq!(args.scenario, Scenario::Cluster);
        assert_eq!(args.cluster.rates, vec![200.0, 1000.0]);
        assert_eq!(args.cluster.nodes, 3);
        let args = BenchArgs::try_parse_from(["bench", "soak", "--spawn"]).unwrap();
        assert_eq!(args.scenario, Scenario::Soak);
        assert_eq!(args.soak_duration(), Duration::from_secs(1800));
        assert_eq!(args.duration(), Duration::from_secs(10));
        assert_eq!(args.connections, None);
        let args =
            BenchArgs::try_parse_from(["bench", "soak", "--spawn", "--duration", "2m"]).unwrap();
        assert_eq!(args.soak_duration(), Duration::from_secs(120));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10"), Ok(10.0));
        assert_eq!(parse_duration("2.5s"), Ok(2.5));
        assert_eq!(parse_duration("30m"), Ok(1800.0));
        assert_eq!(parse_duration("1h"), Ok(3600.0));
        assert_eq!(parse_duration("500ms"), Ok(0.5));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
