//! `parley bench chaos`: `kill -9` a spawned server under load, restart it
//! on the same data dir, and check the protocol's durability promises.
//!
//! P pairs send to each other closed loop (`--window` in flight each) for
//! `--duration`; the server is killed `--kills` times at random points and
//! restarted at once. Clients reconnect with their `since` cursor and
//! resend every unacknowledged message under its original `client_msg_id`
//! (an idempotent repeat gets the original seq). At the end, each
//! conversation's stored history is read back over HTTP and checked:
//! every acked message is stored under its acked seq (zero acked loss),
//! no (sender, client_msg_id) is stored twice (zero duplicates), seqs run
//! 1..=N (zero gaps), and every member received each of the other's
//! messages exactly once across all its sessions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use parley_client::Client;
use parley_client::WsMessage;
use parley_proto::ServerFrame;
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use super::report::Report;
use super::stats::{Errors, Live};
use super::target::{Spawned, Target};
use super::verify::{HistoryVerdict, Stored, verify_history};
use super::wire::{self, Dial, Hot};
use super::{BenchArgs, progress_bar, setup, thousands};

/// Sends in flight per sender when --window is not given.
const DEFAULT_WINDOW: usize = 8;

/// How long the end of the run waits for every send to be answered.
const FINISH_LIMIT: Duration = Duration::from_secs(30);

/// One kill as the `--json` report gives it.
#[derive(serde::Serialize)]
struct KillReport {
    at_secs: f64,
    restart_secs: f64,
    acked_before: u64,
}

/// One user's view of the run.
#[derive(Default)]
struct UserOut {
    /// (client_msg_id, seq) of every ack.
    acked: Vec<(String, u64)>,
    /// Seqs of the partner's messages, over all sessions.
    received: Vec<u64>,
    /// Sends still unanswered at the end.
    unanswered: u64,
    /// Sessions opened.
    sessions: u64,
    errors: Errors,
}

/// `parley bench chaos`.
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    if args.url.is_some() {
        bail!("chaos kills the server, so it only runs on a server of its own (--spawn)");
    }
    let mut target = Target::spawn(args.data_parent.as_deref())?;
    let data_dir = target
        .data_dir
        .as_ref()
        .context("a spawned target has a data dir")?
        .path()
        .join("data");
    let mut report = Report::new("chaos");
    report.row("server", target.describe());
    report.set("server", target.describe());
    let pairs = args.pairs.max(1);
    let window = args.window.unwrap_or(DEFAULT_WINDOW).max(1);
    let duration = args.duration();

    let progress = progress_bar("setup");
    progress.set_length(3 * pairs as u64);
    let users = setup::users(
        &target.base,
        &setup::run_tag(),
        2 * pairs,
        args.concurrency,
        &progress,
    )
    .await?;
    let pair_list = (0..pairs)
        .map(|i| (users[2 * i].clone(), users[2 * i + 1].clone()))
        .collect();
    let conversations =
        setup::directs(&target.base, pair_list, args.concurrency, &progress).await?;
    progress.finish_and_clear();

    let (url_tx, url_rx) = watch::channel(Some(target.dial.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (quit_tx, quit_rx) = watch::channel(false);
    let done_sending = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(Live::default());
    let text: Arc<str> = args.text().into();
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let task = UserTask {
            me: user.id.0,
            token: user.token.clone(),
            conversation: conversations[i / 2].0.0,
            window,
            text: text.clone(),
            url: url_rx.clone(),
            stop: stop_rx.clone(),
            quit: quit_rx.clone(),
            done_sending: done_sending.clone(),
            live: live.clone(),
        };
        tasks.push(tokio::spawn(task.run()));
    }

    // Kill at random points of the run, restarting at once each time.
    let t0 = Instant::now();
    let mut kill_at: Vec<f64> = {
        let mut rng = rand::rng();
        (0..args.kills)
            .map(|_| rng.random_range(0.15..0.85))
            .collect()
    };
    kill_at.sort_by(f64::total_cmp);
    let progress = progress_bar("chaos");
    let ticker = super::tick_progress(progress.clone(), live.clone(), t0, duration);
    let mut kills = Vec::new();
    for fraction in kill_at {
        tokio::time::sleep_until(t0 + duration.mul_f64(fraction)).await;
        let acked_at_kill = Live::get(&live.acked);
        if let Some(mut old) = target.spawned.take() {
            old.kill9();
        }
        let _ = url_tx.send(None);
        let killed = Instant::now();
        let spawned = tokio::task::spawn_blocking({
            let data_dir = data_dir.clone();
            move || Spawned::start(&data_dir)
        })
        .await??;
        let restart = killed.elapsed();
        target.dial = Dial::new(&spawned.base)?;
        target.base = spawned.base.clone();
        target.pid = Some(spawned.pid());
        target.spawned = Some(spawned);
        let _ = url_tx.send(Some(target.dial.clone()));
        kills.push((
            (killed - t0).as_secs_f64(),
            restart.as_secs_f64(),
            acked_at_kill,
        ));
    }
    tokio::time::sleep_until(t0 + duration).await;
    let _ = stop_tx.send(true);
    let finish = Instant::now();
    while done_sending.load(Ordering::Relaxed) < users.len() && finish.elapsed() < FINISH_LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Deliveries of the last acks are already queued; give them a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = quit_tx.send(true);
    ticker.abort();
    let mut outs = Vec::new();
    for task in tasks {
        outs.push(task.await?);
    }
    progress.finish_and_clear();

    // Read every conversation back from the last server.
    let progress = progress_bar("verifying");
    progress.set_length(pairs as u64);
    let mut history = HistoryVerdict::default();
    let (mut missing_deliveries, mut duplicate_deliveries) = (0u64, 0u64);
    let mut errors = Errors::default();
    let (mut unanswered, mut sessions) = (0u64, 0u64);
    for out in &outs {
        errors.merge(&out.errors);
        unanswered += out.unanswered;
        sessions += out.sessions;
    }
    for (i, (conversation, _)) in conversations.iter().enumerate() {
        let (a, b) = (2 * i, 2 * i + 1);
        let client = Client::new(target.base.clone()).with_token(users[a].token.clone());
        let sender_index: HashMap<_, _> = [(users[a].id, a as u32), (users[b].id, b as u32)]
            .into_iter()
            .collect();
        let mut stored = Vec::new();
        let mut after = 0;
        loop {
            let page = client
                .history(*conversation, None, Some(after), Some(100))
                .await
                .context("reading history back")?;
            after = page.messages.last().map(|m| m.seq).unwrap_or(after);
            for message in page.messages {
                stored.push(Stored {
                    seq: message.seq,
                    sender: sender_index
                        .get(&message.sender_id)
                        .copied()
                        .unwrap_or(u32::MAX),
                    client_msg_id: message.client_msg_id.unwrap_or_default(),
                });
            }
            if !page.has_more {
                break;
            }
        }
        let mut acked = HashMap::new();
        for user in [a, b] {
            for (key, seq) in &outs[user].acked {
                acked.insert((user as u32, key.clone()), *seq);
            }
        }
        history.merge(&verify_history(&stored, &acked));
        for (me, partner) in [(a, b), (b, a)] {
            let expected: HashSet<u64> = stored
                .iter()
                .filter(|m| m.sender == partner as u32)
                .map(|m| m.seq)
                .collect();
            let received = &outs[me].received;
            let unique: HashSet<u64> = received.iter().copied().collect();
            duplicate_deliveries += (received.len() - unique.len()) as u64;
            missing_deliveries += expected.difference(&unique).count() as u64;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();

    report.row(
        "load",
        format!(
            "{pairs} pairs, both send, closed loop {window} in flight each, {:.1} s",
            duration.as_secs_f64()
        ),
    );
    for (n, (at, restart, acked)) in kills.iter().enumerate() {
        report.row(
            format!("kill -9 #{}", n + 1),
            format!(
                "at {at:.2} s ({} acks so far); restarted and listening in {:.0} ms",
                thousands(*acked),
                restart * 1000.0
            ),
        );
    }
    report.row(
        "messages",
        format!(
            "{} acked, {} stored, {} unanswered at the end, {} sessions",
            thousands(history.acked),
            thousands(history.stored),
            unanswered,
            thousands(sessions)
        ),
    );
    report.row(
        "acked loss",
        format!(
            "{} (plus {} stored under another seq than acked)",
            history.acked_lost, history.seq_mismatch
        ),
    );
    report.row("duplicates", history.duplicates.to_string());
    report.row("seq gaps", history.seq_gaps.to_string());
    report.row(
        "deliveries",
        format!(
            "{missing_deliveries} missing, {duplicate_deliveries} duplicated (across all sessions)"
        ),
    );
    report.row("errors", errors.line());
    report.set("pairs", pairs);
    report.set("window", window);
    report.set("duration_secs", duration.as_secs_f64());
    report.set(
        "kills",
        kills
            .iter()
            .map(|&(at_secs, restart_secs, acked_before)| KillReport {
                at_secs,
                restart_secs,
                acked_before,
            })
            .collect::<Vec<_>>(),
    );
    report.set("history", history);
    report.set("missing_deliveries", missing_deliveries);
    report.set("duplicate_deliveries", duplicate_deliveries);
    report.set("unanswered", unanswered);
    report.set("sessions", sessions);
    report.set("errors", &errors);
    report.passed =
        history.clean() && missing_deliveries == 0 && duplicate_deliveries == 0 && unanswered == 0;
    Ok(report)
}

/// One user: sends to its partner and reads, across server restarts.
struct UserTask {
    /// Numeric user id (own messages come back in replays).
    me: i64,
    token: String,
    conversation: i64,
    window: usize,
    text: Arc<str>,
    /// The current server; `None` while it is down.
    url: watch::Receiver<Option<Dial>>,
    stop: watch::Receiver<bool>,
    quit: watch::Receiver<bool>,
    done_sending: Arc<AtomicUsize>,
    live: Arc<Live>,
}

impl UserTask {
    async fn run(mut self) -> UserOut {
        let mut out = UserOut::default();
        // n -> client_msg_id of sends not yet answered, in send order.
        let mut unacked: BTreeMap<u64, String> = BTreeMap::new();
        let mut next_n = 0u64;
        // Replay from the very start on the first connect too: the partner
        // may send before this user's first socket is registered, and
        // nothing older than this run is in a fresh user's inbox.
        let mut cursor: Option<u64> = Some(0);
        let mut counted_done = false;
        let started = Instant::now();
        'sessions: loop {
            if *self.quit.borrow() {
                break;
            }
            let dial = self.url.borrow_and_update().clone();
            let Some(dial) = dial else {
                tokio::select! {
                    _ = self.url.changed() => {}
                    _ = self.quit.changed() => {}
                }
                continue;
            };
            let (mut ws, _) = match wire::connect(&dial, None, 16 * 1024, &self.token, cursor).await
            {
                Ok(connected) => connected,
                Err(_) => {
                    // The server is going down or just restarted.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            out.sessions += 1;
            // Resend everything unanswered, under the same keys.
            for key in unacked.values() {
                if ws
                    .feed(wire::send_frame(key.clone(), self.conversation, &self.text))
                    .await
                    .is_err()
                {
                    continue 'sessions;
                }
            }
            loop {
                let stopping = *self.stop.borrow();
                let mut fed = 0;
                while !stopping && unacked.len() < self.window {
                    next_n += 1;
                    let key = wire::client_msg_id(next_n, started.elapsed().as_micros() as u64);
                    unacked.insert(next_n, key.clone());
                    fed += 1;
                    if ws
                        .feed(wire::send_frame(key, self.conversation, &self.text))
                        .await
                        .is_err()
                    {
                        continue 'sessions;
                    }
                }
                Live::add(&self.live.sent, fed);
                if ws.flush().await.is_err() {
                    continue 'sessions;
                }
                if stopping && unacked.is_empty() && !counted_done {
                    counted_done = true;
                    self.done_sending.fetch_add(1, Ordering::Relaxed);
                }
                let item = tokio::select! {
                    _ = self.quit.changed() => break 'sessions,
                    _ = self.url.changed() => continue 'sessions,
                    item = tokio::time::timeout(Duration::from_millis(100), ws.next()) => item,
                };
                let text = match item {
                    Err(_) => continue,
                    Ok(Some(Ok(WsMessage::Text(text)))) => text,
                    Ok(Some(Ok(_))) => continue,
                    Ok(_) => {
                        // Killed: wait for the restart.
                        continue 'sessions;
                    }
                };
                match wire::decode(text.as_str(), false) {
                    Hot::Sent {
                        key: Some((n, _)),
                        seq,
                    } => match unacked.remove(&n) {
                        Some(key) => {
                            out.acked.push((key, seq));
                            Live::add(&self.live.acked, 1);
                        }
                        None => out.errors.add("ack_for_unknown_send"),
                    },
                    Hot::Message {
                        conversation,
                        seq,
                        cursor: c,
                        sender,
                        ..
                    } if conversation == self.conversation => {
                        cursor = Some(cursor.map_or(c, |old| old.max(c)));
                        if sender != self.me {
                            out.received.push(seq);
                            Live::add(&self.live.delivered, 1);
                        }
                    }
                    Hot::Other => {
                        if let Ok(ServerFrame::Error {
                            code, reference, ..
                        }) = ServerFrame::parse(text.as_str())
                        {
                            out.errors.add(code.to_string());
                            Live::add(&self.live.errors, 1);
                            let refused = reference
                                .as_deref()
                                .and_then(wire::parse_client_msg_id)
                                .map(|(n, _)| n);
                            if let Some(n) = refused {
                                unacked.remove(&n);
                            }
                        }
                    }
                    _ => out.errors.add("unexpected_frame"),
                }
            }
        }
        out.unanswered = unacked.len() as u64;
        out
    }
}
