//! `parley bench soak`: hold a share of the measured capacity for a long
//! time and watch the server for leaks.
//!
//! `--connections` sockets (default: `--share` of the 19,500 idle
//! connections measured in BENCHMARKS.md) are the members of direct pairs
//! sending `--rate` msg/s in total (default: `--share` of the 3,000 msg/s
//! this traffic saturated the server at, measured there), open loop, each
//! message stamped with its intended send
//! time. On top of that steady load:
//! - **reconnects**: every socket drops (RST) and reconnects with its
//!   `since` cursor about every `--reconnect-every` seconds (jittered), and
//!   resends what was unanswered under the same `client_msg_id`;
//! - **receipts**: every socket sends a `read` receipt for what it received
//!   every `--receipt-every` seconds;
//! - **group churn**: `--churn-groups` groups, their admins adding and
//!   removing members over HTTP, `--churn-rate` changes a second.
//!
//! Every `--interval` seconds (default a minute) one row: the server's RSS,
//! open descriptors and CPU (from `/proc/PID`: `--spawn` or
//! `--server-pid`), p50/p99 send→deliver of the messages delivered in that
//! minute, msg/s acked, errors, reconnects. At the end, a verdict
//! ([`judge::Judgement`]): RSS growth after the `--warmup` rows under 5 %, the
//! server's socket descriptors once every bench socket is closed no more
//! than before the first one opened (other descriptors are reported, not
//! judged: SQLite's reader pool opens its files as reads need them, up to
//! its size), and the usual delivery checks ([`super::verify`]) clean over
//! every session of every socket.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parley_client::{Client, WsMessage};
use parley_proto::{ConversationId, ServerFrame, UserId};
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

mod judge;

use self::judge::{Row, judge, table};
use super::report::Report;
use super::stats::{Errors, Latency, Live};
use super::target::{self, CpuMeter, Fds};
use super::verify::{ConversationLog, Verdict, verify};
use super::wire::{self, Dial, Hot};
use super::{BenchArgs, fmt_rate, progress_bar, setup, thousands};

/// Idle connections one server process held (BENCHMARKS.md, summary).
pub(crate) const CAPACITY_CONNECTIONS: usize = 19_500;

/// Messages/s a server on the reference machine acked when offered more of
/// the soak's own traffic than it could take (9,750 sockets in pairs, a
/// receipt from each every 5 s, each reconnecting about every 2 minutes):
/// 2,708 to 3,088 msg/s a minute (BENCHMARKS.md, "Soak"). Not the 92,800
/// msg/s of `direct`: there 20 pairs keep 8 sends in flight each, so one
/// wakeup, one write and one commit carry many messages; here nearly every
/// message pays its own, and receipts and replays share the writer.
pub(crate) const CAPACITY_MSGS_PER_SEC: f64 = 3_000.0;

/// Most RSS growth after warm-up that passes, in percent.
pub(crate) const MAX_RSS_GROWTH_PCT: f64 = 5.0;

/// Sends in flight per socket before its sender waits: bounds the bench's
/// memory if the server stalls (the stall still shows as latency, since
/// every send carries its intended time).
const MAX_IN_FLIGHT: usize = 64;

/// How long the end of the run waits for every send to be answered and
/// every ack delivered.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// How long the end of the run waits for the server to close the sockets
/// the bench closed, before counting its descriptors.
const FD_SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// Options of `parley bench soak`.
#[derive(Debug, clap::Args)]
pub(crate) struct SoakArgs {
    /// soak: share of the measured capacity to hold when --connections or
    /// --rate is not given (0.5: half).
    #[arg(long, default_value_t = 0.5)]
    pub(crate) share: f64,
    /// soak: seconds between report rows.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) interval: f64,
    /// soak: the first rows are warm-up; RSS growth counts from the last
    /// of them. The default covers the store's fixed-size caches filling:
    /// SQLite's page caches (2 MiB per connection) reach their size about
    /// 13 minutes into the default load (BENCHMARKS.md, "Soak").
    #[arg(long, default_value_t = 15)]
    pub(crate) warmup: usize,
    /// soak: each socket drops and reconnects about this often (seconds,
    /// ±50 %).
    #[arg(long, default_value_t = 120.0)]
    pub(crate) reconnect_every: f64,
    /// soak: each socket sends a read receipt this often (seconds).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) receipt_every: f64,
    /// soak: groups whose membership churns.
    #[arg(long, default_value_t = 20)]
    pub(crate) churn_groups: usize,
    /// soak: members added or removed per second, over all groups.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) churn_rate: f64,
}

/// Counters the sockets share with the reporter.
#[derive(Default)]
struct Shared {
    live: Live,
    /// send→deliver of the current interval (swapped out by the reporter).
    deliver: Mutex<Latency>,
    reconnects: AtomicU64,
    receipts: AtomicU64,
    churn: AtomicU64,
    /// Sockets done sending with nothing unanswered.
    done: AtomicUsize,
}

/// One socket's view of the run, over all its sessions.
#[derive(Default)]
struct SocketOut {
    /// Seqs of this user's acked sends.
    acked: Vec<u64>,
    /// Seqs of the partner's messages, in arrival order.
    received: Vec<u64>,
    /// Sends unanswered at the end.
    unanswered: u64,
    errors: Errors,
}

/// One user of a pair: sends on a schedule, reads, sends receipts and
/// reconnects now and then.
struct SocketTask {
    index: usize,
    me: i64,
    token: String,
    conversation: i64,
    dial: Dial,
    per_sec: f64,
    text: Arc<str>,
    t0: Instant,
    end: Instant,
    reconnect_every: Duration,
    receipt_every: Duration,
    shared: Arc<Shared>,
    quit: watch::Receiver<bool>,
}

impl SocketTask {
    fn jittered(&self, every: Duration) -> Duration {
        every.mul_f64(rand::rng().random_range(0.5..1.5))
    }

    async fn run(mut self) -> SocketOut {
        let mut out = SocketOut::default();
        let live = &self.shared.live;
        // n -> client_msg_id of sends not yet answered, in send order.
        let mut unacked: BTreeMap<u64, String> = BTreeMap::new();
        let interval = Duration::from_secs_f64(1.0 / self.per_sec.max(1e-3));
        let mut next_send = self.t0 + interval.mul_f64(rand::rng().random::<f64>());
        let mut n = 0u64;
        // Fresh users: replay everything on the first connect too, so a
        // message sent before this socket was registered is not missed.
        let mut cursor = 0u64;
        let (mut received_up_to, mut receipted_up_to) = (0u64, 0u64);
        let mut counted_done = false;
        let source = wire::source_addr(self.index, super::SOCKETS_PER_SOURCE_IP, 2);
        let mut sessions = 0u64;
        'sessions: loop {
            if *self.quit.borrow() {
                break;
            }
            let connected = wire::connect(
                &self.dial,
                Some(source),
                16 * 1024,
                &self.token,
                Some(cursor),
            );
            let mut ws = tokio::select! {
                connected = connected => match connected {
                    Ok((ws, _)) => ws,
                    Err(_) => {
                        out.errors.add("connect");
                        Live::add(&live.errors, 1);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = self.quit.changed() => break,
            };
            sessions += 1;
            if sessions > 1 {
                self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            for key in unacked.values() {
                if ws
                    .feed(wire::send_frame(key.clone(), self.conversation, &self.text))
                    .await
                    .is_err()
                {
                    continue 'sessions;
                }
            }
            if ws.flush().await.is_err() {
                continue 'sessions;
            }
            let drop_at = Instant::now() + self.jittered(self.reconnect_every);
            let mut receipt_at = Instant::now() + self.jittered(self.receipt_every);
            loop {
                let now = Instant::now();
                let sending = now < self.end;
                if !sending && unacked.is_empty() && !counted_done {
                    counted_done = true;
                    self.shared.done.fetch_add(1, Ordering::Relaxed);
                }
                let can_send = sending && unacked.len() < MAX_IN_FLIGHT;
                tokio::select! {
                    _ = tokio::time::sleep_until(next_send), if can_send => {
                        let now = Instant::now();
                        let mut fed = 0;
                        while next_send <= now && next_send < self.end && unacked.len() < MAX_IN_FLIGHT {
                            n += 1;
                            let intended = (next_send - self.t0).as_micros() as u64;
                            let key = wire::client_msg_id(n, intended);
                            unacked.insert(n, key.clone());
                            next_send += interval;
                            fed += 1;
                            if ws.feed(wire::send_frame(key, self.conversation, &self.text)).await.is_err() {
                                continue 'sessions;
                            }
                        }
                        Live::add(&live.sent, fed);
                        if ws.flush().await.is_err() {
                            continue 'sessions;
                        }
                    }
                    _ = tokio::time::sleep_until(self.end), if sending => {}
                    _ = tokio::time::sleep_until(drop_at), if sending => {
                        // Dropping the stream closes with RST; the next
                        // session resends what is unanswered.
                        continue 'sessions;
                    }
                    _ = tokio::time::sleep_until(receipt_at) => {
                        receipt_at += self.receipt_every;
                        if received_up_to > receipted_up_to {
                            receipted_up_to = received_up_to;
                            let frame = wire::read_receipt_frame(self.conversation, received_up_to);
                            if ws.send(frame).await.is_err() {
                                continue 'sessions;
                            }
                            self.shared.receipts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ = self.quit.changed() => break 'sessions,
                    item = ws.next() => {
                        let text = match item {
                            Some(Ok(WsMessage::Text(text))) => text,
                            Some(Ok(_)) => continue,
                            Some(Err(_)) | None => {
                                out.errors.add("socket_closed_by_server");
                                Live::add(&live.errors, 1);
                                continue 'sessions;
                            }
                        };
                        self.handle(text.as_str(), &mut unacked, &mut out, &mut cursor, &mut received_up_to);
                    }
                }
            }
        }
        out.unanswered = unacked.len() as u64;
        out
    }

    fn handle(
        &self,
        text: &str,
        unacked: &mut BTreeMap<u64, String>,
        out: &mut SocketOut,
        cursor: &mut u64,
        received_up_to: &mut u64,
    ) {
        let live = &self.shared.live;
        match wire::decode(text, false) {
            Hot::Sent {
                key: Some((n, _)),
                seq,
            } => match unacked.remove(&n) {
                Some(_) => {
                    out.acked.push(seq);
                    Live::add(&live.acked, 1);
                }
                None => out.errors.add("ack_for_unknown_send"),
            },
            Hot::Message {
                conversation,
                seq,
                cursor: c,
                sender,
                key,
            } => {
                // Group churn events move the cursor too.
                *cursor = (*cursor).max(c);
                if conversation == self.conversation && sender != self.me {
                    out.received.push(seq);
                    *received_up_to = (*received_up_to).max(seq);
                    Live::add(&live.delivered, 1);
                    if let Some((_, intended)) = key {
                        let now = Instant::now().saturating_duration_since(self.t0);
                        let us = (now.as_micros() as u64).saturating_sub(intended);
                        if let Ok(mut deliver) = self.shared.deliver.lock() {
                            deliver.record_us(us);
                        }
                    }
                }
            }
            Hot::Sent { key: None, .. } => out.errors.add("ack_without_key"),
            Hot::Other => {
                if let Ok(ServerFrame::Error {
                    code, reference, ..
                }) = ServerFrame::parse(text)
                {
                    out.errors.add(code.to_string());
                    Live::add(&live.errors, 1);
                    let refused = reference
                        .as_deref()
                        .and_then(wire::parse_client_msg_id)
                        .map(|(n, _)| n);
                    if let Some(n) = refused
                        && unacked.remove(&n).is_some()
                    {
                        Live::add(&live.failed, 1);
                    }
                }
            }
        }
    }
}

/// Group churn: admins add and remove members over HTTP at `rate` a
/// second until `end`.
async fn churn(
    base: String,
    groups: Vec<(ConversationId, setup::User, Vec<UserId>)>,
    candidates: Vec<UserId>,
    rate: f64,
    end: Instant,
    shared: Arc<Shared>,
) -> Errors {
    let mut errors = Errors::default();
    if groups.is_empty() || candidates.is_empty() || rate <= 0.0 {
        return errors;
    }
    let client = Client::new(base);
    let mut members: Vec<HashSet<UserId>> = groups
        .iter()
        .map(|(_, _, m)| m.iter().copied().collect())
        .collect();
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    while next < end {
        tokio::time::sleep_until(next).await;
        next += every;
        let (g, user) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..groups.len()),
                candidates[rng.random_range(0..candidates.len())],
            )
        };
        let (id, admin, _) = &groups[g];
        if user == admin.id {
            continue;
        }
        let admin = client.with_token(admin.token.clone());
        let result = if members[g].contains(&user) {
            admin.remove_member(*id, user).await.map(|_| {
                members[g].remove(&user);
            })
        } else {
            admin.add_members(*id, &[user]).await.map(|_| {
                members[g].insert(user);
            })
        };
        match result {
            Ok(()) => {
                shared.churn.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                errors.add(format!("churn: {err}"));
                Live::add(&shared.live.errors, 1);
            }
        }
    }
    errors
}

/// Reads the server's RSS and descriptors, when its pid is known.
fn sample(pid: Option<u32>) -> (Option<u64>, Option<Fds>) {
    let rss = pid.and_then(target::rss_kib).map(|(rss, _)| rss);
    let fds = pid.and_then(target::open_fds);
    (rss, fds)
}

/// `parley bench soak`.
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let target = args.target()?;
    let soak = &args.soak;
    let mut report = Report::new("soak");
    report.row("server", target.describe());
    report.set("server", target.describe());
    let share = soak.share.clamp(0.0, 1.0);
    let connections = args
        .connections
        .unwrap_or((CAPACITY_CONNECTIONS as f64 * share) as usize)
        .max(2);
    let pairs = connections / 2;
    let rate = args.rate.unwrap_or(CAPACITY_MSGS_PER_SEC * share).max(0.1);
    let per_sec = rate / (2 * pairs) as f64;
    if per_sec > 0.8 * target.user_rate {
        report.row(
            "note",
            format!(
                "{per_sec:.1} msg/s per user is over 80 % of the server's {}/s per-user limit: expect rate_limited errors (pass more --connections)",
                target.user_rate
            ),
        );
    }
    let duration = args.soak_duration();
    let interval = Duration::from_secs_f64(soak.interval.clamp(0.5, 3600.0));

    let progress = progress_bar("setup");
    progress.set_length((3 * pairs + soak.churn_groups) as u64);
    let tag = setup::run_tag();
    let (users, conversations) =
        setup::pairs(&target.base, &tag, pairs, args.concurrency, &progress).await?;
    // Churn groups: admin and a few first members from the bench users.
    let churn_groups = soak.churn_groups.min(users.len() / 2);
    let specs: Vec<(setup::User, Vec<UserId>)> = (0..churn_groups)
        .map(|g| {
            let admin = users[g].clone();
            let first: HashSet<UserId> = (1..=3)
                .map(|k| users[(g + k * churn_groups + 1) % users.len()].id)
                .filter(|id| *id != admin.id)
                .collect();
            let first = first.into_iter().collect();
            (admin, first)
        })
        .collect();
    let groups = setup::groups(&target.base, specs.clone(), args.concurrency, &progress).await?;
    progress.finish_and_clear();
    let groups: Vec<_> = groups
        .into_iter()
        .zip(specs)
        .map(|((id, _), (admin, first))| (id, admin, first))
        .collect();

    // The setup's HTTP connections are gone; let the server notice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, fds_before) = sample(target.pid);

    let shared = Arc::new(Shared::default());
    let (quit_tx, quit_rx) = watch::channel(false);
    let text: Arc<str> = args.text().into();
    let t0 = Instant::now() + Duration::from_millis(500);
    let end = t0 + duration;
    let mut tasks = Vec::with_capacity(users.len());
    for (i, user) in users.iter().enumerate() {
        let task = SocketTask {
            index: i,
            me: user.id.0,
            token: user.token.clone(),
            conversation: conversations[i / 2].0.0,
            dial: target.dial.clone(),
            per_sec,
            text: text.clone(),
            t0,
            end,
            reconnect_every: Duration::from_secs_f64(soak.reconnect_every.max(1.0)),
            receipt_every: Duration::from_secs_f64(soak.receipt_every.max(0.1)),
            shared: shared.clone(),
            quit: quit_rx.clone(),
        };
        tasks.push(tokio::spawn(task.run()));
    }
    let churner = tokio::spawn(churn(
        target.base.clone(),
        groups,
        users.iter().map(|u| u.id).collect(),
        soak.churn_rate,
        end,
        shared.clone(),
    ));

    // One row per interval until the end of the load.
    tokio::time::sleep_until(t0).await;
    let mut rows = Vec::new();
    let mut previous = (0u64, 0u64, 0u64, 0u64);
    let mut cpu = CpuMeter::start(target.pid);
    let mut next_row = t0 + interval;
    eprintln!("{}", Row::HEADER);
    while next_row <= end + Duration::from_millis(1) {
        tokio::time::sleep_until(next_row).await;
        let secs = interval.as_secs_f64();
        let deliver = std::mem::take(&mut *shared.deliver.lock().expect("not poisoned"));
        let counters = (
            Live::get(&shared.live.acked),
            Live::get(&shared.live.errors),
            shared.reconnects.load(Ordering::Relaxed),
            shared.churn.load(Ordering::Relaxed),
        );
        let (rss_kib, fds) = sample(target.pid);
        let latency = deliver.summary();
        let row = Row {
            at_secs: (next_row - t0).as_secs_f64(),
            rss_kib,
            fds,
            cpu_cores: cpu.cores().server,
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            msgs_per_sec: super::per_sec(counters.0 - previous.0, secs),
            errors: counters.1 - previous.1,
            reconnects: counters.2 - previous.2,
            churn: counters.3 - previous.3,
        };
        eprintln!("{}", row.line());
        rows.push(row);
        previous = counters;
        cpu = CpuMeter::start(target.pid);
        next_row += interval;
    }

    // Drain: every socket done sending, every ack delivered.
    let drain_start = Instant::now();
    let mut drained = true;
    loop {
        let done = shared.done.load(Ordering::Relaxed) >= users.len();
        if done && Live::get(&shared.live.delivered) >= Live::get(&shared.live.acked) {
            break;
        }
        if drain_start.elapsed() > DRAIN_LIMIT {
            drained = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = quit_tx.send(true);
    let mut errors = churner.await?;
    let mut outs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outs.push(task.await?);
    }

    // Every socket is closed now: the server's descriptors should come
    // back to where they were before the first one opened.
    let settle = Instant::now();
    let fds_after = loop {
        let (_, fds) = sample(target.pid);
        let settled = matches!((fds, fds_before), (Some(a), Some(b)) if a.sockets <= b.sockets);
        if fds.is_none() || settled || settle.elapsed() > FD_SETTLE_LIMIT {
            break fds;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let mut verdict = Verdict::default();
    let mut unanswered = 0;
    for out in &outs {
        errors.merge(&out.errors);
        unanswered += out.unanswered;
    }
    for (i, (_, base)) in conversations.iter().enumerate() {
        let (a, b) = (2 * i, 2 * i + 1);
        let log = ConversationLog {
            base: *base,
            members: vec![a as u32, b as u32],
            acked: outs[a]
                .acked
                .iter()
                .map(|&s| (s, a as u32))
                .chain(outs[b].acked.iter().map(|&s| (s, b as u32)))
                .collect(),
            delivered: [
                (a as u32, std::mem::take(&mut outs[a].received)),
                (b as u32, std::mem::take(&mut outs[b].received)),
            ]
            .into_iter()
            .collect(),
        };
        verdict.merge(&verify(&log));
    }
    let judgement = judge(
        &rows,
        soak.warmup,
        fds_before,
        fds_after,
        verdict.clean() && unanswered == 0 && drained,
    );

    let load_line = format!(
        "{} sockets ({pairs} pairs, both send), {} msg/s offered open loop ({per_sec:.2}/s per socket); reconnect every ~{} s, read receipts every {} s, {churn_groups} groups churning {}/s",
        thousands(2 * pairs as u64),
        fmt_rate(rate),
        soak.reconnect_every,
        soak.receipt_every,
        soak.churn_rate
    );
    report.row("load", &load_line);
    report.subtitle = load_line.clone();
    report.row(
        "duration",
        format!(
            "{:.0} s, a row every {:.0} s, first {} row(s) warm-up",
            duration.as_secs_f64(),
            interval.as_secs_f64(),
            soak.warmup
        ),
    );
    report.row("per interval", table(&rows));
    report.row(
        "totals",
        format!(
            "{} sent, {} acked, {} delivered, {} unanswered, {} reconnects, {} receipts, {} membership changes",
            thousands(Live::get(&shared.live.sent)),
            thousands(verdict.acked),
            thousands(verdict.delivered),
            unanswered,
            thousands(shared.reconnects.load(Ordering::Relaxed)),
            thousands(shared.receipts.load(Ordering::Relaxed)),
            thousands(shared.churn.load(Ordering::Relaxed)),
        ),
    );
    report.row("errors", errors.line());
    report.row(
        "verification",
        if drained {
            verdict.line()
        } else {
            format!("INCOMPLETE — the drain gave up; {}", verdict.line())
        },
    );
    for (label, value) in judgement.rows() {
        report.row(label, value);
    }
    report.set("connections", 2 * pairs);
    report.set("rate", rate);
    report.set("duration_secs", duration.as_secs_f64());
    report.set("interval_secs", interval.as_secs_f64());
    report.set("rows", &rows);
    report.set("verification", verdict);
    report.set("drained", drained);
    report.set("unanswered", unanswered);
    report.set("errors", &errors);
    report.set("reconnects", shared.reconnects.load(Ordering::Relaxed));
    report.set("receipts", shared.receipts.load(Ordering::Relaxed));
    report.set("churn", shared.churn.load(Ordering::Relaxed));
    report.set("judgement", judgement);
    report.passed = judgement.passed;
    Ok(report)
}
