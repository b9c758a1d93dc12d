//! `parley bench reconnect`: K clients go offline, miss messages, then all
//! reconnect at once with their `since` cursors.
//!
//! The missed messages come from groups (one admin sender per group of
//! `--members`), which puts the same inbox entries in every member's inbox
//! as direct messages would, with far less setup. Phase 1 connects every
//! client (its `ready` cursor is its `since`) and closes it; phase 2 sends
//! `--missed` messages per group and waits for their acks; phase 3 starts
//! every client at the same instant, without a concurrency limit, and
//! measures until each has its `synced` frame and all missed messages.
//! The two phases use different source addresses, so TIME_WAIT leftovers
//! of phase 1 cannot collide with phase 3.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use parley_client::WsMessage;
use parley_proto::ServerFrame;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::connections::short_error;
use super::report::Report;
use super::stats::{Errors, Latency};
use super::target::CpuMeter;
use super::wire::{self, Dial, Hot, Ws};
use super::{BenchArgs, SOCKETS_PER_SOURCE_IP, progress_bar, setup, thousands};

/// Phase 3 gives up on a client after this long.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);

/// Per-socket read buffer.
const READ_BUFFER: usize = 8192;

/// What one reconnecting client saw.
#[derive(Debug, Default)]
struct CatchUp {
    /// From the common start to `synced` plus every missed message.
    done_after: Option<Duration>,
    /// From the common start to `ready`.
    ready_after: Option<Duration>,
    /// Missed messages received (replay or live).
    received: u64,
    /// Seqs received twice.
    duplicates: u64,
    /// Connection attempts that failed before one worked.
    retries: u64,
    /// Why it never caught up, if it did not.
    error: Option<String>,
    /// Why connection attempts failed.
    retry_reasons: Errors,
}

/// `parley bench reconnect`.
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let target = args.target()?;
    let mut report = Report::new("reconnect");
    report.row("server", target.describe());
    report.set("server", target.describe());
    let k = args.clients.max(1);
    let missed = args.missed.max(1) as u64;
    let per_group = args.members.clamp(2, 1024) - 1;
    let n_groups = k.div_ceil(per_group);

    let progress = progress_bar("setup");
    progress.set_length((n_groups + k + n_groups) as u64);
    let users = setup::users(
        &target.base,
        &setup::run_tag(),
        n_groups + k,
        args.concurrency,
        &progress,
    )
    .await?;
    let (admins, clients) = users.split_at(n_groups);
    let group_of = |i: usize| i / per_group;
    let specs = admins
        .iter()
        .enumerate()
        .map(|(g, admin)| {
            let members = clients[g * per_group..((g + 1) * per_group).min(k)]
                .iter()
                .map(|u| u.id)
                .collect();
            (admin.clone(), members)
        })
        .collect();
    let groups = setup::groups(&target.base, specs, args.concurrency, &progress).await?;
    progress.finish_and_clear();

    // Phase 1: everyone online once, to learn its cursor; then offline.
    let progress = progress_bar("online");
    progress.set_length(k as u64);
    let gate = Arc::new(Semaphore::new(args.concurrency.max(64)));
    let mut handles = Vec::with_capacity(k);
    for (i, client) in clients.iter().enumerate() {
        let (dial, token, gate, progress) = (
            target.dial.clone(),
            client.token.clone(),
            gate.clone(),
            progress.clone(),
        );
        handles.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            let source = wire::source_addr(i, SOCKETS_PER_SOURCE_IP, 2);
            let connected = wire::connect(&dial, Some(source), READ_BUFFER, &token, None).await;
            progress.inc(1);
            connected
        }));
    }
    let mut cursors = Vec::with_capacity(k);
    let mut sockets = Vec::with_capacity(k);
    for handle in handles {
        let (ws, ready) = handle.await?.context("phase 1: connecting a client")?;
        cursors.push(ready.cursor);
        sockets.push(ws);
    }
    let mut closing = tokio::task::JoinSet::new();
    for mut ws in sockets {
        closing.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
        });
    }
    while closing.join_next().await.is_some() {}
    progress.finish_and_clear();
    // Let the server notice every close before the messages go out.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Phase 2: every group's admin sends the messages its members miss.
    let mut senders = tokio::task::JoinSet::new();
    for (g, admin) in admins.iter().enumerate() {
        let (dial, token, conversation) = (target.dial.clone(), admin.token.clone(), groups[g].0);
        senders.spawn(async move {
            let (mut ws, _) = wire::connect(&dial, None, READ_BUFFER, &token, None).await?;
            for n in 0..missed {
                ws.feed(wire::send_frame(
                    wire::client_msg_id(n + 1, 0),
                    conversation.0,
                    "missed",
                ))
                .await?;
            }
            ws.flush().await?;
            let mut acked = 0;
            while acked < missed {
                let item = tokio::time::timeout(Duration::from_secs(30), ws.next())
                    .await
                    .context("no ack within 30 s")?;
                match item {
                    Some(Ok(WsMessage::Text(text))) => match wire::decode(text.as_str(), false) {
                        Hot::Sent { .. } => acked += 1,
                        Hot::Message { .. } => {}
                        Hot::Other => {
                            if let Ok(ServerFrame::Error { code, message, .. }) =
                                ServerFrame::parse(text.as_str())
                            {
                                anyhow::bail!("send refused: {code}: {message}");
                            }
                        }
                    },
                    Some(Ok(_)) => {}
                    _ => anyhow::bail!("sender socket closed"),
                }
            }
            let _ = ws.close(None).await;
            anyhow::Ok(())
        });
    }
    while let Some(done) = senders.join_next().await {
        done?.context("phase 2: sending the missed messages")?;
    }

    // Phase 3: everyone at once.
    let progress = progress_bar("catching up");
    progress.set_length(k as u64);
    let first_ip = 2 + k.div_ceil(SOCKETS_PER_SOURCE_IP) as u8;
    let (stop_tx, stop_rx) = watch::channel(false);
    let finished = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let cpu = CpuMeter::start(target.pid);
    let deadline = t0 + CATCH_UP_LIMIT;
    let mut handles = Vec::with_capacity(k);
    for (i, client) in clients.iter().enumerate() {
        let (dial, token, progress, mut stop) = (
            target.dial.clone(),
            client.token.clone(),
            progress.clone(),
            stop_rx.clone(),
        );
        let (since, conversation) = (cursors[i], groups[group_of(i)].0.0);
        let finished = finished.clone();
        handles.push(tokio::spawn(async move {
            let client = Client {
                source: wire::source_addr(i, SOCKETS_PER_SOURCE_IP, first_ip),
                token,
                since,
                conversation,
            };
            let (result, ws) = client.catch_up(&dial, missed, t0, deadline).await;
            finished.fetch_add(1, Ordering::Relaxed);
            if let Some(mut ws) = ws {
                progress.inc(1);
                // Stay online until everyone is done, as real clients would.
                let _ = stop.changed().await;
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            }
            result
        }));
    }
    // Wait for everyone to be done (or give up), then release them.
    while finished.load(Ordering::Relaxed) < k && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu.cores();
    let _ = stop_tx.send(true);
    let mut per_client = Latency::default();
    let mut per_client_ready = Latency::default();
    let mut retry_reasons = Errors::default();
    let mut errors = Errors::default();
    let (mut caught_up, mut retries, mut duplicates, mut short) = (0u64, 0u64, 0u64, 0u64);
    let mut all_done = Duration::ZERO;
    for handle in handles {
        let result = handle.await?;
        retries += result.retries;
        duplicates += result.duplicates;
        retry_reasons.merge(&result.retry_reasons);
        if let Some(after) = result.ready_after {
            per_client_ready.record(after);
        }
        if result.received < missed {
            short += 1;
        }
        if let Some(err) = &result.error {
            errors.add(err.clone());
        }
        if let Some(after) = result.done_after {
            caught_up += 1;
            per_client.record(after);
            all_done = all_done.max(after);
        }
    }
    progress.finish_and_clear();

    let all = caught_up == k as u64;
    report.subtitle = format!(
        "{} clients reconnecting at once, {missed} missed messages each",
        thousands(k as u64)
    );
    report.row(
        "clients",
        format!(
            "{} reconnecting at once with since, {} missed messages each ({} groups of ≤ {})",
            thousands(k as u64),
            missed,
            n_groups,
            per_group + 1
        ),
    );
    report.row(
        "all caught up",
        if all {
            format!(
                "{:.3} s (synced + every missed message)",
                all_done.as_secs_f64()
            )
        } else {
            format!(
                "NO — {} of {} within {} s",
                thousands(caught_up),
                thousands(k as u64),
                CATCH_UP_LIMIT.as_secs()
            )
        },
    );
    report.latency("client_ready", "ready after", &per_client_ready);
    report.latency("client_catch_up", "caught up after", &per_client);
    report.row("cpu", format!("{} (while catching up)", cpu.line()));
    report.set("cpu_cores", cpu);
    report.row(
        "verification",
        format!("{short} clients missing messages, {duplicates} duplicate deliveries"),
    );
    report.row(
        "connect retries",
        format!("{} ({})", thousands(retries), retry_reasons.line()),
    );
    report.set("retry_reasons", &retry_reasons);
    report.row("errors", errors.line());
    report.set("clients", k);
    report.set("missed_each", missed);
    report.set("caught_up", caught_up);
    report.set("all_caught_up_secs", all.then_some(all_done.as_secs_f64()));
    report.set("clients_missing_messages", short);
    report.set("duplicate_deliveries", duplicates);
    report.set("connect_retries", retries);
    report.set("errors", &errors);
    report.passed = all && short == 0 && duplicates == 0;
    Ok(report)
}

/// One reconnecting client.
struct Client {
    source: SocketAddrV4,
    token: String,
    since: u64,
    conversation: i64,
}

impl Client {
    /// Connects (retrying until `deadline`) with `since`, and reads until
    /// `synced` and `missed` messages arrived. Returns the socket when it
    /// caught up, so the client can stay online.
    async fn catch_up(
        self,
        dial: &Dial,
        missed: u64,
        t0: Instant,
        deadline: Instant,
    ) -> (CatchUp, Option<Ws>) {
        let mut result = CatchUp::default();
        let mut seen = std::collections::HashSet::new();
        let mut ws = loop {
            let attempt = tokio::time::timeout_at(
                deadline,
                wire::connect(
                    dial,
                    Some(self.source),
                    READ_BUFFER,
                    &self.token,
                    Some(self.since),
                ),
            )
            .await;
            match attempt {
                Ok(Ok((ws, _))) => {
                    result.ready_after = Some(t0.elapsed());
                    break ws;
                }
                Ok(Err(err)) => {
                    result.retries += 1;
                    result.retry_reasons.add(short_error(&err));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => {
                    result.error = Some("no connection before the deadline".into());
                    return (result, None);
                }
            }
        };
        let mut synced = false;
        while !(synced && result.received >= missed) {
            let text = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => {
                    result.error = Some("not caught up before the deadline".into());
                    return (result, None);
                }
                Ok(Some(Ok(WsMessage::Text(text)))) => text,
                Ok(Some(Ok(_))) => continue,
                Ok(_) => {
                    result.error = Some("socket closed while catching up".into());
                    return (result, None);
                }
            };
            match wire::decode(text.as_str(), false) {
                Hot::Message {
                    conversation, seq, ..
                } if conversation == self.conversation => {
                    if seen.insert(seq) {
                        result.received += 1;
                    } else {
                        result.duplicates += 1;
                    }
                }
                Hot::Other => match ServerFrame::parse(text.as_str()) {
                    Ok(ServerFrame::Synced { .. }) => synced = true,
                    Ok(ServerFrame::Error { code, .. }) => result.error = Some(code.to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
        result.done_after = Some(t0.elapsed());
        (result, Some(ws))
    }
}
