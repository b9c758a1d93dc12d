//! `parley bench cluster`: what routing between nodes costs.
//!
//! `--spawn` starts `--nodes` cluster nodes (this binary) on one
//! PostgreSQL database (`--database`) and a private `redis-server` on a
//! free port (or `--redis-url`); `--node-url` (repeated) drives nodes that
//! are already running instead. For each rate of `--rates`, two runs of
//! `--duration` each (at most 60 s), on fresh pairs of users:
//!
//! - **same-node**: both members of each pair on one node (pairs spread
//!   over the nodes): the commit is delivered locally, never through Redis;
//! - **cross-node**: the members on different nodes: every message is
//!   routed through Redis to the other node.
//!
//! Both members send, open loop, through [`super::traffic`] (which checks
//! loss, duplicates and gaps). Around each run the scenario reads Redis's
//! `INFO commandstats` and `INFO stats` (commands and network bytes per
//! delivered message), each node's `/metrics` (envelopes published and
//! messages in them: messages per envelope; and how often a socket had to
//! wait out a missing cursor and read the store: gap waits) and, for
//! spawned nodes, each node's CPU time from `/proc` (CPU per message).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::direct::pair_participants;
use super::report::Report;
use super::stats::Live;
use super::target::{Spawned, cpu_secs};
use super::traffic::{self, Load, Plan};
use super::wire::Dial;
use super::{BenchArgs, fmt_rate, progress_bar, setup, thousands};

/// Longest run the scenario allows (each rate runs twice).
const MAX_RUN: Duration = Duration::from_secs(60);

/// A private `redis-server` on a free port, killed when dropped.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    fn start() -> anyhow::Result<PrivateRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run redis-server (install it, or pass --redis-url)")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                bail!("redis-server did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(PrivateRedis {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        })
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster under test.
struct Cluster {
    /// `http://127.0.0.1:PORT` of each node.
    bases: Vec<String>,
    /// Spawned nodes (empty with `--node-url`).
    spawned: Vec<Spawned>,
    redis_url: String,
    _redis: Option<PrivateRedis>,
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    fn describe(&self) -> String {
        if self.spawned.is_empty() {
            format!(
                "nodes at {} with Redis {}",
                self.bases.join(", "),
                self.redis_url
            )
        } else {
            format!(
                "{} spawned nodes ({}) on one PostgreSQL database, Redis {}; logs next to their data dirs",
                self.spawned.len(),
                self.bases.join(", "),
                self.redis_url
            )
        }
    }

    /// CPU seconds used so far by every spawned node.
    fn cpu(&self) -> Option<f64> {
        if self.spawned.is_empty() {
            return None;
        }
        self.spawned.iter().map(|s| cpu_secs(s.pid())).sum()
    }
}

/// A token key for the spawned nodes: base64 of 36 random bytes (48
/// characters, no padding needed).
fn random_token_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..48)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn start_cluster(args: &BenchArgs) -> anyhow::Result<Cluster> {
    if !args.cluster.node_url.is_empty() {
        let redis_url = args
            .cluster
            .redis_url
            .clone()
            .context("with --node-url, pass the cluster's --redis-url too")?;
        for url in &args.cluster.node_url {
            Dial::new(url)?;
        }
        return Ok(Cluster {
            bases: args
                .cluster
                .node_url
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            spawned: Vec::new(),
            redis_url,
            _redis: None,
            _dir: None,
        });
    }
    if !args.spawn {
        bail!("pass --spawn (with --database) or --node-url for each node and --redis-url");
    }
    let database = args
        .cluster
        .database
        .clone()
        .or_else(|| std::env::var("PARLEY_DATABASE_URL").ok())
        .context("cluster nodes share a PostgreSQL database: pass --database postgres://...")?;
    let redis = match &args.cluster.redis_url {
        Some(_) => None,
        None => Some(PrivateRedis::start()?),
    };
    let redis_url = match (&redis, &args.cluster.redis_url) {
        (Some(private), _) => private.url.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => unreachable!("one of the two is set above"),
    };
    let dir = match &args.data_parent {
        Some(parent) => tempfile::Builder::new()
            .prefix("parley-bench-")
            .tempdir_in(parent)?,
        None => tempfile::Builder::new().prefix("parley-bench-").tempdir()?,
    };
    let key = random_token_key();
    let mut spawned = Vec::new();
    for i in 0..args.cluster.nodes.clamp(2, 16) {
        let name = format!("bench{i}");
        let env = [
            ("PARLEY_DATABASE_URL", database.as_str()),
            ("PARLEY_REDIS_URL", redis_url.as_str()),
            ("PARLEY_TOKEN_KEY", key.as_str()),
            ("PARLEY_NODE_ID", name.as_str()),
        ];
        spawned.push(Spawned::start_with(&dir.path().join(&name), &env)?);
    }
    let bases: Vec<String> = spawned.iter().map(|s| s.base.clone()).collect();
    for base in &bases {
        wait_ready(base).await?;
    }
    Ok(Cluster {
        bases,
        spawned,
        redis_url,
        _redis: redis,
        _dir: Some(dir),
    })
}

/// `GET path` on `base` over HTTP/1.0: (status, body).
async fn http_get(base: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = base.trim_start_matches("http://");
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .context("no answer within 10 s")??;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not HTTP")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((code, body))
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if matches!(http_get(base, "/readyz").await, Ok((200, _))) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{base} did not become ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of the samples of `name` in Prometheus text whose labels
/// contain `labels` (`""`: all).
fn metric_sum(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key.split('{').next()? == name && key.contains(labels))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Counters read before and after a run.
#[derive(Debug, Default, Clone)]
struct Counters {
    /// Redis command calls by command (`INFO commandstats`).
    commands: BTreeMap<String, u64>,
    /// Redis network bytes in + out (`INFO stats`).
    net_bytes: u64,
    /// Envelopes and messages the routers published (every node).
    envelopes: f64,
    routed: f64,
    /// Store reads of sockets that waited for a missing cursor
    /// (`parley_cursor_checks_total{cause="gap"}`, every node).
    gap_checks: f64,
    /// CPU seconds of the spawned nodes.
    cpu: Option<f64>,
}

async fn read_counters(
    cluster: &Cluster,
    redis: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<Counters> {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .context("INFO commandstats")?;
    let mut commands = BTreeMap::new();
    for line in stats.lines() {
        // cmdstat_publish:calls=12,usec=...
        if let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
            && let Some(calls) = rest
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|c| c.parse::<u64>().ok())
        {
            commands.insert(name.to_owned(), calls);
        }
    }
    let stats: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(redis)
        .await
        .context("INFO stats")?;
    let field = |name: &str| {
        stats
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(':')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let net_bytes = field("total_net_input_bytes") + field("total_net_output_bytes");
    let (mut envelopes, mut routed, mut gap_checks) = (0.0, 0.0, 0.0);
    for base in &cluster.bases {
        let (_, body) = http_get(base, "/metrics").await?;
        envelopes += metric_sum(&body, "parley_router_envelopes_total", "");
        routed += metric_sum(&body, "parley_router_messages_total", "");
        gap_checks += metric_sum(&body, "parley_cursor_checks_total", "cause=\"gap\"");
    }
    Ok(Counters {
        commands,
        net_bytes,
        envelopes,
        routed,
        gap_checks,
        cpu: cluster.cpu(),
    })
}

/// What one run measured, for the table and `--json`.
#[derive(Debug, serde::Serialize)]
struct RunResult {
    placement: &'static str,
    rate: f64,
    pairs: usize,
    acked: u64,
    delivered: u64,
    deliver_p50_ms: f64,
    deliver_p99_ms: f64,
    ack_p50_ms: f64,
    redis_commands_per_message: f64,
    redis_commands: BTreeMap<String, u64>,
    redis_bytes_per_message: f64,
    messages_per_envelope: Option<f64>,
    /// Sockets' store reads after a cursor stayed missing for the gap
    /// wait, per 1,000 delivered messages.
    gap_checks_per_1000: f64,
    node_cpu_us_per_message: Option<f64>,
    clean: bool,
    verification: String,
}

impl RunResult {
    /// The commands of at least 0.05 per message: `hgetall 1.00, ...`.
    fn command_mix(&self) -> String {
        let per_message = |calls: u64| calls as f64 / self.delivered.max(1) as f64;
        let mut mix: Vec<(&String, f64)> = self
            .redis_commands
            .iter()
            .map(|(name, &calls)| (name, per_message(calls)))
            .filter(|(_, each)| *each >= 0.05)
            .collect();
        mix.sort_by(|a, b| b.1.total_cmp(&a.1));
        mix.iter()
            .map(|(name, each)| format!("{name} {each:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `parley bench cluster`.
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let cluster = start_cluster(args).await?;
    let mut report = Report::new("cluster");
    report.row("cluster", cluster.describe());
    report.set("cluster", cluster.describe());
    let redis_client = redis::Client::open(cluster.redis_url.as_str())
        .with_context(|| format!("bad Redis URL {}", cluster.redis_url))?;
    let mut redis = redis_client
        .get_multiplexed_async_connection()
        .await
        .context("cannot reach Redis")?;
    let rates: Vec<f64> = if args.cluster.rates.is_empty() {
        vec![200.0, 1000.0]
    } else {
        args.cluster.rates.clone()
    };
    let duration = args.duration().min(MAX_RUN);
    let pairs = args.pairs.max(cluster.bases.len());
    let mut results = Vec::new();
    for &rate in &rates {
        for placement in ["same-node", "cross-node"] {
            let result =
                one_run(args, &cluster, &mut redis, placement, rate, pairs, duration).await?;
            report.row(
                format!("{placement} {} msg/s", fmt_rate(rate)),
                format!(
                    "send→deliver p50 {:.2} ms p99 {:.2} ms; {:.2} Redis cmds ({}), {:.0} Redis bytes per msg; {} msgs/envelope; {:.1} gap waits per 1,000 msgs; node CPU {} per msg; {} delivered; {}",
                    result.deliver_p50_ms,
                    result.deliver_p99_ms,
                    result.redis_commands_per_message,
                    result.command_mix(),
                    result.redis_bytes_per_message,
                    result
                        .messages_per_envelope
                        .map_or("-".to_owned(), |m| format!("{m:.1}")),
                    result.gap_checks_per_1000,
                    result
                        .node_cpu_us_per_message
                        .map_or("?".to_owned(), |us| format!("{us:.0} µs")),
                    thousands(result.delivered),
                    result.verification,
                ),
            );
            report.passed &= result.clean;
            results.push(result);
        }
    }
    report.set("runs", &results);
    report.set("duration_secs", duration.as_secs_f64());
    report.row(
        "how",
        format!(
            "{pairs} pairs per run, both members send, open loop, {:.0} s each; Redis figures from INFO commandstats/stats, envelopes from the nodes' /metrics, CPU from /proc (spawned nodes only)",
            duration.as_secs_f64()
        ),
    );
    Ok(report)
}

async fn one_run(
    args: &BenchArgs,
    cluster: &Cluster,
    redis: &mut redis::aio::MultiplexedConnection,
    placement: &'static str,
    rate: f64,
    pairs: usize,
    duration: Duration,
) -> anyhow::Result<RunResult> {
    let nodes = cluster.bases.len();
    let dials: Vec<Dial> = cluster
        .bases
        .iter()
        .map(|b| Dial::new(b))
        .collect::<anyhow::Result<_>>()?;
    let progress = progress_bar("setup");
    progress.set_length(3 * pairs as u64);
    let tag = setup::run_tag();
    let first = &cluster.bases[0];
    let (users, conversations) =
        setup::pairs(first, &tag, pairs, args.concurrency, &progress).await?;
    progress.finish_and_clear();
    // Pair i lives on node i mod N; its second member on the same node or
    // the next one.
    let (participants, logs) = pair_participants(&users, &conversations, |user| {
        let home = (user / 2) % nodes;
        let node = if user % 2 == 0 || placement == "same-node" {
            home
        } else {
            (home + 1) % nodes
        };
        Some(dials[node].clone())
    });
    let plan = Plan {
        participants,
        conversations: logs,
        load: Load::Open {
            per_sender: rate / (2 * pairs) as f64,
        },
        duration,
        text: args.text(),
        fanout: 1,
        lean_parse: args.lean_parse,
        connect_concurrency: args.concurrency.max(64),
        server_pid: None,
    };
    let before = read_counters(cluster, redis).await?;
    let live = Arc::new(Live::default());
    let progress = progress_bar(placement);
    let outcome = traffic::run(&dials[0], plan, live, &progress).await?;
    progress.finish_and_clear();
    let after = read_counters(cluster, redis).await?;

    let delivered = outcome.deliver.summary().count;
    let per_message = |x: f64| {
        if delivered > 0 {
            x / delivered as f64
        } else {
            0.0
        }
    };
    let mut commands = BTreeMap::new();
    for (name, calls) in &after.commands {
        let delta = calls - before.commands.get(name).copied().unwrap_or(0);
        // INFO itself is the bench's own reading.
        if delta > 0 && name != "info" {
            commands.insert(name.clone(), delta);
        }
    }
    let total_commands: u64 = commands.values().sum();
    let envelopes = after.envelopes - before.envelopes;
    let deliver = outcome.deliver.summary();
    let ack = outcome.ack.summary();
    let clean = outcome.verdict.clean() && outcome.unanswered == 0 && outcome.drained;
    Ok(RunResult {
        placement,
        rate,
        pairs,
        acked: outcome.verdict.acked,
        delivered,
        deliver_p50_ms: deliver.p50_ms,
        deliver_p99_ms: deliver.p99_ms,
        ack_p50_ms: ack.p50_ms,
        redis_commands_per_message: per_message(total_commands as f64),
        redis_commands: commands,
        redis_bytes_per_message: per_message(
            after.net_bytes.saturating_sub(before.net_bytes) as f64
        ),
        gap_checks_per_1000: per_message(after.gap_checks - before.gap_checks) * 1000.0,
        messages_per_envelope: (envelopes > 0.0)
            .then(|| (after.routed - before.routed) / envelopes),
        node_cpu_us_per_message: match (before.cpu, after.cpu) {
            (Some(b), Some(a)) if delivered > 0 => Some((a - b) * 1e6 / delivered as f64),
            _ => None,
        },
        clean,
        verification: outcome.verdict.line(),
    })
}
