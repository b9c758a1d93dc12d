//! The traffic engine behind `direct` and `group`.
//!
//! Every participant has one socket, split into a writer task and a reader
//! task. Writers send either open loop (a fixed schedule: message `n` of a
//! sender is *intended* at `t0 + phase + n / rate`, and its latency is
//! measured from that intended time, so a stalled server cannot hide its
//! stall by slowing the generator down — no coordinated omission) or closed
//! loop (`window` sends in flight per sender; a permit comes back with each
//! `sent` or refusal). The intended time travels inside the
//! `client_msg_id`, so the reader of an ack or a delivery needs no shared
//! map. Readers log every ack and delivery for [`super::verify`].
//!
//! After the sending window the engine drains (waits, bounded, until every
//! send is acked or refused and every ack delivered), then stops readers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use indicatif::ProgressBar;
use parley_client::WsMessage;
use parley_proto::ServerFrame;
use rand::Rng;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::stats::{Errors, Latency, Live};
use super::target::{CpuMeter, CpuUse};
use super::verify::{ConversationLog, Verdict, verify};
use super::wire::{self, Dial, Hot, Ws};

/// How long the engine waits for stragglers after the sending window: as
/// long as the window itself, between 10 and 30 s.
fn drain_limit(duration: Duration) -> Duration {
    duration.clamp(Duration::from_secs(10), Duration::from_secs(30))
}

/// Receive-only sockets ping this often so the server keeps them.
const PING_EVERY: Duration = Duration::from_secs(10);

/// One socket's role.
#[derive(Debug, Clone)]
pub(crate) struct Participant {
    /// Index in the run's user list (for verification).
    pub(crate) user: u32,
    /// Its token.
    pub(crate) token: String,
    /// Index of its conversation in [`Plan::conversations`].
    pub(crate) conversation: usize,
    /// The conversation's numeric id.
    pub(crate) conversation_id: i64,
    /// Whether it sends.
    pub(crate) sends: bool,
    /// Where its socket connects when not the run's own target (`cluster`
    /// puts the members of a pair on given nodes).
    pub(crate) dial: Option<Dial>,
}

/// How senders pace themselves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Load {
    /// A fixed schedule of this many messages per second per sender.
    Open {
        /// Messages per second per sender.
        per_sender: f64,
    },
    /// This many sends in flight per sender, as fast as acks return.
    Closed {
        /// Sends in flight per sender.
        window: usize,
    },
}

/// A run of the engine.
pub(crate) struct Plan {
    /// Sockets.
    pub(crate) participants: Vec<Participant>,
    /// Conversations, with base seq and members filled in.
    pub(crate) conversations: Vec<ConversationLog>,
    /// Pacing.
    pub(crate) load: Load,
    /// The sending window.
    pub(crate) duration: Duration,
    /// Message text.
    pub(crate) text: String,
    /// Deliveries each ack calls for (members online minus the sender).
    pub(crate) fanout: u64,
    /// Decode hot frames with the bench's scanner instead of `parley-proto`.
    pub(crate) lean_parse: bool,
    /// Sockets connecting at once.
    pub(crate) connect_concurrency: usize,
    /// The server's pid, to measure its CPU use.
    pub(crate) server_pid: Option<u32>,
}

/// What a run measured.
pub(crate) struct Outcome {
    /// send → `sent`.
    pub(crate) ack: Latency,
    /// send → `message` at the recipient.
    pub(crate) deliver: Latency,
    /// Loss / duplicate / gap checks.
    pub(crate) verdict: Verdict,
    /// Errors by kind.
    pub(crate) errors: Errors,
    /// Sends written.
    pub(crate) sent: u64,
    /// Seconds from the first intended send to the last ack.
    pub(crate) ack_secs: f64,
    /// Seconds from the first intended send to the last delivery.
    pub(crate) deliver_secs: f64,
    /// Sends neither acked nor refused when the drain gave up.
    pub(crate) unanswered: u64,
    /// Whether everything was answered and delivered before the drain
    /// limit; if not, missing deliveries may be late rather than lost.
    pub(crate) drained: bool,
    /// Seconds to connect every socket.
    pub(crate) connect_secs: f64,
    /// CPU use from the first send to the end of the drain.
    pub(crate) cpu: CpuUse,
}

struct ReaderOut {
    user: u32,
    conversation: usize,
    ack: Latency,
    deliver: Latency,
    acked: Vec<u64>,
    delivered: Vec<u64>,
    errors: Errors,
    last_ack: Option<Instant>,
    last_delivery: Option<Instant>,
}

/// Connects every participant, runs the load, drains, and verifies.
pub(crate) async fn run(
    dial: &Dial,
    plan: Plan,
    live: Arc<Live>,
    progress: &ProgressBar,
) -> anyhow::Result<Outcome> {
    let connect_started = Instant::now();
    let sockets = connect_all(dial, &plan.participants, plan.connect_concurrency, progress)
        .await
        .context("connecting the participants")?;
    let connect_secs = connect_started.elapsed().as_secs_f64();

    // Everyone starts together, shortly after the last socket is ready.
    let t0 = Instant::now() + Duration::from_millis(200);
    let end = t0 + plan.duration;
    let (stop_tx, stop_rx) = watch::channel(false);
    let text: Arc<str> = plan.text.clone().into();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (p, ws) in plan.participants.iter().zip(sockets) {
        let (sink, stream) = ws.split();
        let window = match plan.load {
            Load::Closed { window } if p.sends => Some(Arc::new(Semaphore::new(window))),
            _ => None,
        };
        readers.push(tokio::spawn(reader(
            stream,
            p.clone(),
            t0,
            window.clone(),
            plan.lean_parse,
            live.clone(),
            stop_rx.clone(),
        )));
        let job = Writer {
            conversation_id: p.conversation_id,
            text: text.clone(),
            t0,
            end,
            live: live.clone(),
        };
        writers.push(tokio::spawn(match (p.sends, plan.load) {
            (true, Load::Open { per_sender }) => job.open_loop(sink, per_sender).boxed_send(),
            (true, Load::Closed { .. }) => job
                .closed_loop(sink, window.expect("closed loop has a window"))
                .boxed_send(),
            (false, _) => job.pinger(sink).boxed_send(),
        }));
    }

    let ticker = super::tick_progress(progress.clone(), live.clone(), t0, plan.duration);
    tokio::time::sleep_until(t0).await;
    let cpu = CpuMeter::start(plan.server_pid);
    let mut errors = Errors::default();
    let mut sent = 0;
    for writer in writers {
        match writer.await? {
            Ok(n) => sent += n,
            Err(err) => errors.add(format!("write: {err}")),
        }
    }
    // Drain: every send answered, every ack delivered.
    let drain_start = Instant::now();
    let mut drained = true;
    loop {
        let acked = Live::get(&live.acked);
        let answered = acked + Live::get(&live.failed);
        let delivered = Live::get(&live.delivered);
        if answered >= Live::get(&live.sent) && delivered >= acked * plan.fanout {
            break;
        }
        if drain_start.elapsed() > drain_limit(plan.duration) {
            drained = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unanswered =
        Live::get(&live.sent).saturating_sub(Live::get(&live.acked) + Live::get(&live.failed));
    let cpu = cpu.cores();
    let _ = stop_tx.send(true);
    ticker.abort();

    let mut conversations = plan.conversations;
    let mut ack = Latency::default();
    let mut deliver = Latency::default();
    let (mut last_ack, mut last_delivery) = (t0, t0);
    for reader in readers {
        let out = reader.await?;
        ack.merge(&out.ack);
        deliver.merge(&out.deliver);
        errors.merge(&out.errors);
        last_ack = last_ack.max(out.last_ack.unwrap_or(t0));
        last_delivery = last_delivery.max(out.last_delivery.unwrap_or(t0));
        let log = &mut conversations[out.conversation];
        log.acked
            .extend(out.acked.iter().map(|&seq| (seq, out.user)));
        log.delivered.insert(out.user, out.delivered);
    }
    let mut verdict = Verdict::default();
    for log in &conversations {
        verdict.merge(&verify(log));
    }
    Ok(Outcome {
        ack,
        deliver,
        verdict,
        errors,
        sent,
        ack_secs: (last_ack - t0).as_secs_f64(),
        deliver_secs: (last_delivery - t0).as_secs_f64(),
        unanswered,
        drained,
        connect_secs,
        cpu,
    })
}

/// Connects and authenticates every participant, `concurrency` at a time.
async fn connect_all(
    dial: &Dial,
    participants: &[Participant],
    concurrency: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Ws>> {
    progress.set_length(participants.len() as u64);
    progress.set_position(0);
    progress.set_message("connecting");
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let n = participants.len();
    let mut handles = Vec::new();
    for (i, p) in participants.iter().enumerate() {
        let (dial, token, gate, progress) = (
            p.dial.clone().unwrap_or_else(|| dial.clone()),
            p.token.clone(),
            gate.clone(),
            progress.clone(),
        );
        handles.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            // Only spread over source addresses when one would run short.
            let source = (n > super::SOCKETS_PER_SOURCE_IP)
                .then(|| wire::source_addr(i, super::SOCKETS_PER_SOURCE_IP, 2));
            let (ws, _) = wire::connect(&dial, source, 64 * 1024, &token, None).await?;
            progress.inc(1);
            anyhow::Ok(ws)
        }));
    }
    let mut sockets = Vec::with_capacity(handles.len());
    for handle in handles {
        sockets.push(handle.await??);
    }
    Ok(sockets)
}

type Sink = SplitSink<Ws, WsMessage>;

struct Writer {
    conversation_id: i64,
    text: Arc<str>,
    t0: Instant,
    end: Instant,
    live: Arc<Live>,
}

trait BoxedSend: std::future::Future<Output = anyhow::Result<u64>> + Send + Sized + 'static {
    fn boxed_send(
        self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<u64>> + Send>> {
        Box::pin(self)
    }
}

impl<F> BoxedSend for F where F: std::future::Future<Output = anyhow::Result<u64>> + Send + 'static {}

/// Most frames fed before one flush.
const BATCH: usize = 256;

impl Writer {
    fn frame(&self, n: u64, intended: Instant) -> WsMessage {
        let intended_us = (intended - self.t0).as_micros() as u64;
        wire::send_frame(
            wire::client_msg_id(n, intended_us),
            self.conversation_id,
            &self.text,
        )
    }

    /// Sends on a fixed schedule; late sends go out at once, still stamped
    /// with their intended time.
    async fn open_loop(self, mut sink: Sink, per_sender: f64) -> anyhow::Result<u64> {
        let interval = Duration::from_secs_f64(1.0 / per_sender);
        let mut next = self.t0 + interval.mul_f64(rand::rng().random::<f64>());
        let mut n = 0u64;
        while next < self.end {
            tokio::time::sleep_until(next).await;
            let now = Instant::now();
            let mut batch = 0;
            while next <= now && next < self.end && batch < BATCH {
                n += 1;
                sink.feed(self.frame(n, next)).await?;
                next += interval;
                batch += 1;
            }
            sink.flush().await?;
            Live::add(&self.live.sent, batch as u64);
        }
        Ok(n)
    }

    /// Keeps `window` sends in flight until the end of the run.
    async fn closed_loop(self, mut sink: Sink, window: Arc<Semaphore>) -> anyhow::Result<u64> {
        let mut n = 0u64;
        loop {
            let permit = tokio::select! {
                permit = window.acquire() => permit?,
                _ = tokio::time::sleep_until(self.end) => break,
            };
            permit.forget();
            let mut batch = 1;
            n += 1;
            sink.feed(self.frame(n, Instant::now())).await?;
            while batch < BATCH {
                let Ok(permit) = window.try_acquire() else {
                    break;
                };
                permit.forget();
                n += 1;
                batch += 1;
                sink.feed(self.frame(n, Instant::now())).await?;
            }
            sink.flush().await?;
            Live::add(&self.live.sent, batch as u64);
            if Instant::now() >= self.end {
                break;
            }
        }
        Ok(n)
    }

    /// A receive-only socket: pings so the server keeps it open.
    async fn pinger(self, mut sink: Sink) -> anyhow::Result<u64> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PING_EVERY) => sink.send(wire::ping_frame()).await?,
                _ = tokio::time::sleep_until(self.end) => return Ok(0),
            }
        }
    }
}

async fn reader(
    mut stream: SplitStream<Ws>,
    p: Participant,
    t0: Instant,
    window: Option<Arc<Semaphore>>,
    lean_parse: bool,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> ReaderOut {
    let mut out = ReaderOut {
        user: p.user,
        conversation: p.conversation,
        ack: Latency::default(),
        deliver: Latency::default(),
        acked: Vec::new(),
        delivered: Vec::new(),
        errors: Errors::default(),
        last_ack: None,
        last_delivery: None,
    };
    let since_t0 = |now: Instant| now.saturating_duration_since(t0).as_micros() as u64;
    loop {
        let item = tokio::select! {
            _ = stop.changed() => break,
            item = stream.next() => item,
        };
        let text = match item {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Close(_))) | None => {
                out.errors.add("socket_closed");
                Live::add(&live.errors, 1);
                break;
            }
            Some(Err(_)) => {
                out.errors.add("socket_error");
                Live::add(&live.errors, 1);
                break;
            }
            Some(Ok(_)) => continue,
        };
        let now = Instant::now();
        match wire::decode(text.as_str(), lean_parse) {
            Hot::Sent { key, seq } => {
                out.acked.push(seq);
                out.last_ack = Some(now);
                Live::add(&live.acked, 1);
                if let Some((_, intended)) = key {
                    out.ack.record_us(since_t0(now).saturating_sub(intended));
                }
                if let Some(window) = &window {
                    window.add_permits(1);
                }
            }
            Hot::Message {
                conversation,
                seq,
                key,
                ..
            } => {
                if conversation != p.conversation_id {
                    out.errors.add("message_from_another_conversation");
                    continue;
                }
                out.delivered.push(seq);
                out.last_delivery = Some(now);
                Live::add(&live.delivered, 1);
                if let Some((_, intended)) = key {
                    out.deliver
                        .record_us(since_t0(now).saturating_sub(intended));
                }
            }
            Hot::Other => match ServerFrame::parse(text.as_str()) {
                Ok(ServerFrame::Error {
                    code, reference, ..
                }) => {
                    out.errors.add(code.to_string());
                    Live::add(&live.errors, 1);
                    let was_send = reference
                        .as_deref()
                        .and_then(wire::parse_client_msg_id)
                        .is_some();
                    if was_send {
                        Live::add(&live.failed, 1);
                        if let Some(window) = &window {
                            window.add_permits(1);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => out.errors.add("unparsable_frame"),
            },
        }
    }
    out
}
