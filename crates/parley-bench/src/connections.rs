//! `parley bench connections`: N idle authenticated sockets.
//!
//! One process may hold 20,000 open files, so the sockets live in worker
//! processes (`parley bench worker`, hidden), at most `--per-process` each.
//! Each socket binds to a source address in 127.0.0.2 and up
//! ([`super::SOCKETS_PER_SOURCE_IP`] per address) so ephemeral ports never
//! run short. The parent makes the users, hands each worker its tokens as
//! one JSON line on stdin, and reads JSON lines back: `progress` while
//! connecting, `connected` when done, and `closed` after it writes `close`.
//! It reads the server's resident memory before and after, when the server
//! is local (spawned, or `--server-pid`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use parley_client::WsMessage;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Semaphore, mpsc, watch};

use super::report::Report;
use super::stats::Errors;
use super::target::rss_kib;
use super::wire::{self, Dial, Ws};
use super::{BenchArgs, SOCKETS_PER_SOURCE_IP, fmt_rate, progress_bar, setup, thousands};

/// First source address of `connections` sockets: 127.0.0.2.
const FIRST_SOURCE: u8 = 2;

/// Sockets opened when --connections is not given.
const DEFAULT_CONNECTIONS: usize = 1000;

/// Per-socket read buffer: idle sockets only see pongs.
const READ_BUFFER: usize = 4096;

/// What a worker is asked to do.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerJob {
    url: String,
    tokens: Vec<String>,
    /// Global index of this worker's first socket (picks source addresses).
    first_socket: usize,
    concurrency: usize,
}

/// What a worker reports, one JSON line each.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct WorkerEvent {
    event: String,
    ok: u64,
    failed: u64,
    /// Wall clock, µs since the epoch.
    started_us: u64,
    finished_us: u64,
    errors: Errors,
    alive: u64,
    dropped: u64,
}

/// The server's resident memory (KiB) as the `--json` report gives it.
#[derive(Serialize)]
struct RssReport {
    before: u64,
    after: u64,
    end_of_hold: Option<u64>,
    anon_before: u64,
    anon_after: u64,
}

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl WorkerProcess {
    async fn next_event(&mut self) -> anyhow::Result<WorkerEvent> {
        let line = tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line())
            .await
            .context("worker silent for 120 s")??
            .context("worker exited")?;
        serde_json::from_str(&line).with_context(|| format!("bad worker line {line:?}"))
    }
}

/// `parley bench connections`.
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let target = args.target()?;
    let mut report = Report::new("connections");
    report.row("server", target.describe());
    report.set("server", target.describe());
    let n = args.connections.unwrap_or(DEFAULT_CONNECTIONS).max(1);
    let n_users = args.users.unwrap_or(n).clamp(1, n);
    let progress = progress_bar("users");
    progress.set_length(n_users as u64);
    let users = setup::users(
        &target.base,
        &setup::run_tag(),
        n_users,
        args.concurrency,
        &progress,
    )
    .await?;
    progress.finish_and_clear();
    let tokens: Vec<String> = (0..n).map(|i| users[i % n_users].token.clone()).collect();
    drop(users);

    // Let the server settle after setup before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = target.pid.and_then(rss_kib);

    let per_process = args.per_process.clamp(1, 19_000);
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for (w, chunk) in tokens.chunks(per_process).enumerate() {
        let mut child = Command::new(&exe)
            .args(["bench", "worker"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot spawn a bench worker")?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("worker stdout")?).lines();
        let job = WorkerJob {
            url: target.base.clone(),
            tokens: chunk.to_vec(),
            first_socket: w * per_process,
            concurrency: args.concurrency.max(64),
        };
        let mut line = serde_json::to_string(&job)?;
        line.push('\n');
        stdin.write_all(line.as_bytes()).await?;
        workers.push(WorkerProcess {
            child,
            stdin,
            stdout,
        });
    }

    let progress = progress_bar("connecting");
    progress.set_length(n as u64);
    let mut progress_by_worker = vec![0u64; workers.len()];
    let mut connected = Vec::new();
    for (w, worker) in workers.iter_mut().enumerate() {
        loop {
            let event = worker.next_event().await?;
            progress_by_worker[w] = event.ok + event.failed;
            progress.set_position(progress_by_worker.iter().sum());
            if event.event == "connected" {
                connected.push(event);
                break;
            }
        }
    }
    progress.finish_and_clear();
    let ok: u64 = connected.iter().map(|e| e.ok).sum();
    let failed: u64 = connected.iter().map(|e| e.failed).sum();
    let started = connected.iter().map(|e| e.started_us).min().unwrap_or(0);
    let finished = connected.iter().map(|e| e.finished_us).max().unwrap_or(0);
    let connect_secs = finished.saturating_sub(started) as f64 / 1e6;
    let mut errors = Errors::default();
    for event in &connected {
        errors.merge(&event.errors);
    }

    // Hold: measure after a short settle, then keep them for the rest.
    let hold = args.duration();
    let settle = Duration::from_secs(2).min(hold);
    tokio::time::sleep(settle).await;
    let after = target.pid.and_then(rss_kib);
    tokio::time::sleep(hold - settle).await;
    let after_hold = target.pid.and_then(rss_kib);
    let mut target = target;
    let server_died = target.spawned.as_mut().is_some_and(|s| !s.alive());

    let mut alive = 0;
    let mut dropped = 0;
    for worker in &mut workers {
        worker.stdin.write_all(b"close\n").await?;
        let event = worker.next_event().await?;
        alive += event.alive;
        dropped += event.dropped;
    }
    for mut worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), worker.child.wait()).await;
    }

    let rate = super::per_sec(ok, connect_secs);
    report.row(
        "sockets",
        format!(
            "{} authenticated ({} users, {} worker process(es)), {} failed",
            thousands(ok),
            thousands(n_users as u64),
            args.connections
                .unwrap_or(DEFAULT_CONNECTIONS)
                .div_ceil(per_process),
            failed
        ),
    );
    report.row(
        "connect",
        format!(
            "{connect_secs:.2} s — {} connections/s (TCP + upgrade + auth + ready, {} at once)",
            fmt_rate(rate),
            args.concurrency.max(64)
        ),
    );
    report.row(
        "held",
        format!(
            "{:.1} s; {} still open at the end, {} dropped",
            hold.as_secs_f64(),
            thousands(alive),
            dropped
        ),
    );
    report.set("connections", ok);
    report.set("failed", failed);
    report.set("users", n_users);
    report.set("connect_secs", connect_secs);
    report.set("connects_per_sec", rate);
    report.set("alive_at_end", alive);
    report.set("dropped", dropped);
    match (before, after) {
        (Some((rss0, anon0)), Some((rss1, anon1))) => {
            let per = |a: u64, b: u64| (b as f64 - a as f64) * 1024.0 / ok.max(1) as f64;
            report.row(
                "server memory",
                format!(
                    "VmRSS {} → {} KiB ({:.0} B per connection); RssAnon {} → {} KiB ({:.0} B per connection)",
                    thousands(rss0),
                    thousands(rss1),
                    per(rss0, rss1),
                    thousands(anon0),
                    thousands(anon1),
                    per(anon0, anon1)
                ),
            );
            if let Some((rss2, _)) = after_hold {
                report.row(
                    "",
                    format!("VmRSS at the end of the hold: {} KiB", thousands(rss2)),
                );
            }
            report.set(
                "server_rss_kib",
                RssReport {
                    before: rss0,
                    after: rss1,
                    end_of_hold: after_hold.map(|r| r.0),
                    anon_before: anon0,
                    anon_after: anon1,
                },
            );
            report.set("server_bytes_per_connection", per(rss0, rss1));
            report.set("server_anon_bytes_per_connection", per(anon0, anon1));
        }
        _ => report.row(
            "server memory",
            "not measured (pass --spawn, or --server-pid for a local --url server)",
        ),
    }
    if server_died {
        report.row("server", "DIED during the hold (see its log)");
    }
    report.row("errors", errors.line());
    report.set("errors", &errors);
    report.set("error_count", errors.total());
    report.passed = failed == 0 && dropped == 0 && !server_died;
    Ok(report)
}

/// The hidden `parley bench worker`: holds its share of the sockets.
pub(crate) async fn worker() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin.next_line().await?.context("no job on stdin")?;
    let job: WorkerJob = serde_json::from_str(&line)?;
    let dial = Dial::new(&job.url)?;
    let n = job.tokens.len();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let gate = Arc::new(Semaphore::new(job.concurrency.max(1)));
    let alive = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let started_us = epoch_us();
    let mut holders = tokio::task::JoinSet::new();
    for (j, token) in job.tokens.into_iter().enumerate() {
        let (dial, gate, done_tx, stop_rx) =
            (dial.clone(), gate.clone(), done_tx.clone(), stop_rx.clone());
        let (alive, dropped) = (alive.clone(), dropped.clone());
        let source = wire::source_addr(job.first_socket + j, SOCKETS_PER_SOURCE_IP, FIRST_SOURCE);
        holders.spawn(async move {
            let permit = gate.acquire().await;
            let mut last_err = String::new();
            for attempt in 0..3 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                match wire::connect(&dial, Some(source), READ_BUFFER, &token, None).await {
                    Ok((ws, ready)) => {
                        drop(permit);
                        let _ = done_tx.send(Ok(()));
                        hold(ws, ready.heartbeat_ms, stop_rx, &alive, &dropped).await;
                        return;
                    }
                    Err(err) => last_err = short_error(&err),
                }
            }
            let _ = done_tx.send(Err(last_err));
        });
    }
    drop(done_tx);
    let mut event = WorkerEvent {
        event: "progress".into(),
        started_us,
        ..WorkerEvent::default()
    };
    let mut stdout = tokio::io::stdout();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while event.ok + event.failed < n as u64 {
        tokio::select! {
            result = done_rx.recv() => match result {
                Some(Ok(())) => event.ok += 1,
                Some(Err(err)) => {
                    event.failed += 1;
                    event.errors.add(err);
                }
                None => break,
            },
            _ = tick.tick() => emit(&mut stdout, &event).await?,
        }
    }
    event.event = "connected".into();
    event.finished_us = epoch_us();
    emit(&mut stdout, &event).await?;

    // Hold until told to close (or the parent goes away).
    while let Some(line) = stdin.next_line().await? {
        if line.trim() == "close" {
            break;
        }
    }
    alive.store(0, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while holders.join_next().await.is_some() {}
    })
    .await;
    event.event = "closed".into();
    event.alive = alive.load(Ordering::Relaxed);
    event.dropped = dropped.load(Ordering::Relaxed);
    emit(&mut stdout, &event).await?;
    Ok(())
}

async fn emit(stdout: &mut tokio::io::Stdout, event: &WorkerEvent) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(event)?;
    line.push('\n');
    stdout.write_all(line.as_bytes()).await?;
    stdout.flush().await?;
    Ok(())
}

/// Keeps one socket open, pinging at half the heartbeat, until stopped.
async fn hold(
    mut ws: Ws,
    heartbeat_ms: u64,
    mut stop: watch::Receiver<bool>,
    alive: &AtomicU64,
    dropped: &AtomicU64,
) {
    let every = Duration::from_millis((heartbeat_ms / 2).max(1000));
    loop {
        tokio::select! {
            _ = stop.changed() => {
                alive.fetch_add(1, Ordering::Relaxed);
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
            _ = tokio::time::sleep(every) => {
                if ws.send(wire::ping_frame()).await.is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            item = ws.next() => match item {
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// An error's first line, short enough to count by kind.
pub(crate) fn short_error(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    let mut short: String = text.lines().next().unwrap_or("").chars().take(80).collect();
    if short.is_empty() {
        short = "unknown".into();
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_round_trip() {
        let mut event = WorkerEvent {
            event: "connected".into(),
            ok: 3,
            ..WorkerEvent::default()
        };
        event.errors.add("refused");
        let line = serde_json::to_string(&event).unwrap();
        let back: WorkerEvent = serde_json::from_str(&line).unwrap();
        assert_eq!((back.event.as_str(), back.ok), ("connected", 3));
        assert_eq!(back.errors.total(), 1);
        let err = anyhow::anyhow!("first line\nsecond");
        assert_eq!(short_error(&err), "first line");
    }
}
