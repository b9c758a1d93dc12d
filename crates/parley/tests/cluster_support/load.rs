//! Clients that behave as real ones do when nodes, PostgreSQL or Redis
//! fail: a sender that keeps one message in flight and retries it with the
//! same `client_msg_id` until it is acknowledged, and a receiver that
//! checks cursors and reconnects with `since`. Both reconnect with full
//! jitter (`parley_client::reconnect::Backoff`) and honour `reconnect`
//! frames and 1013.
//!
//! Message texts start with the send time (ms since the epoch), so
//! receivers measure send→deliver latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parley_client::reconnect::{Backoff, TRY_AGAIN_LATER, delay_for_frame};
use parley_client::{Client, ClientError, Socket};
use parley_proto::{ConversationId, ErrorCode, ServerFrame};

/// Reconnect windows of the test clients: short, so tests stay short, but
/// the same full-jitter rule as real clients.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
}

/// Longest any one message may take to be acknowledged, across outages.
const SEND_DEADLINE: Duration = Duration::from_secs(60);

/// Milliseconds since the epoch: how message texts start.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Waits as a client must after its socket ended with `err`.
async fn back_off(backoff: &mut Backoff, err: &ClientError) {
    let mut delay = backoff.next_delay();
    if let ClientError::Closed { code, .. } = err
        && *code == TRY_AGAIN_LATER
    {
        // Overloaded: skip ahead in the schedule.
        delay = backoff.next_delay().max(backoff.next_delay());
    }
    tokio::time::sleep(delay).await;
}

/// What a sender saw.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Every `client_msg_id` acknowledged with `sent`, in order.
    pub acked: Vec<String>,
    /// `unavailable` answers (each followed by a retry of the same id).
    pub unavailable: usize,
    /// Sends repeated with the same id after an error or a lost socket.
    pub retries: usize,
    /// Sockets opened after the first.
    pub reconnects: usize,
}

impl SendReport {
    /// One line for the test's output.
    pub fn summary(&self) -> String {
        format!(
            "{} acknowledged, {} unavailable, {} retries, {} reconnects",
            self.acked.len(),
            self.unavailable,
            self.retries,
            self.reconnects
        )
    }
}

/// Sends `prefix0`, `prefix1`, ... to `conv` through `base`, one in
/// flight, every `pace`, until `max` were acknowledged or `stop` is set
/// (a message in flight is always finished). Panics when one is not
/// acknowledged within [`SEND_DEADLINE`] or is refused for good.
pub async fn send(
    base: String,
    token: String,
    conv: ConversationId,
    prefix: String,
    max: usize,
    pace: Duration,
    stop: Arc<AtomicBool>,
) -> SendReport {
    let client = Client::new(base).with_token(token);
    let mut report = SendReport::default();
    let mut backoff = backoff();
    let mut socket: Option<Socket> = None;
    let mut opened = 0usize;
    for i in 0..max {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = format!("{prefix}{i}");
        let deadline = Instant::now() + SEND_DEADLINE;
        let mut attempts = 0usize;
        'message: loop {
            assert!(Instant::now() < deadline, "{id} was never acknowledged");
            let mut open = match socket.take() {
                Some(open) => open,
                None => match client.connect(None).await {
                    Ok(open) => {
                        opened += 1;
                        open
                    }
                    Err(err) => {
                        back_off(&mut backoff, &err).await;
                        continue;
                    }
                },
            };
            attempts += 1;
            if let Err(err) = open.send_text(conv, &id, &now_ms().to_string()).await {
                back_off(&mut backoff, &err).await;
                continue;
            }
            loop {
                match open.recv_within(Duration::from_secs(15)).await {
                    Ok(ServerFrame::Sent { client_msg_id, .. }) if client_msg_id == id => {
                        report.acked.push(id);
                        backoff.reset();
                        socket = Some(open);
                        break 'message;
                    }
                    Ok(ServerFrame::Error {
                        code,
                        reference,
                        retry_after_ms,
                        message,
                    }) if reference.as_deref() == Some(&id) => {
                        match code {
                            ErrorCode::Unavailable => report.unavailable += 1,
                            ErrorCode::RateLimited => {}
                            other => panic!("{id} refused: {other:?} {message}"),
                        }
                        let pause = retry_after_ms
                            .map(Duration::from_millis)
                            .unwrap_or_else(|| backoff.next_delay());
                        tokio::time::sleep(pause).await;
                        socket = Some(open);
                        continue 'message;
                    }
                    Ok(frame) => {
                        if let Some(after) = delay_for_frame(&frame) {
                            // The node drains: leave, come back later.
                            open.close().await;
                            tokio::time::sleep(after).await;
                            continue 'message;
                        }
                    }
                    Err(err) => {
                        back_off(&mut backoff, &err).await;
                        continue 'message;
                    }
                }
            }
        }
        report.retries += attempts.saturating_sub(1);
        tokio::time::sleep(pace).await;
    }
    report.reconnects = opened.saturating_sub(1);
    if let Some(open) = socket {
        open.close().await;
    }
    report
}

/// One message as a receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub cursor: u64,
    pub id: String,
    /// Send → deliver, from the time in the text.
    pub latency_ms: i64,
    /// When it arrived.
    pub at: Instant,
}

/// What a receiver saw.
#[derive(Debug, Default)]
pub struct ReceiveReport {
    /// Every message, in arrival order (cursors consecutive: checked).
    pub got: Vec<Received>,
    /// Sockets opened after the first.
    pub reconnects: usize,
    /// When its first socket ended, if it did.
    pub first_lost: Option<Instant>,
}

/// Receives through `base` until `want` messages arrived (`want` may be
/// raised later; it starts at `usize::MAX` when unknown) or `deadline`
/// passed. The user must be new (its first socket replays from cursor 0,
/// so a message committed before that socket was ready is not missed);
/// reconnects with `since` = its last cursor; panics on a cursor that is
/// not the next one (a gap or a duplicate).
pub async fn receive(
    base: String,
    token: String,
    want: Arc<AtomicUsize>,
    deadline: Duration,
) -> ReceiveReport {
    let client = Client::new(base).with_token(token);
    let deadline = Instant::now() + deadline;
    let mut report = ReceiveReport::default();
    let mut backoff = backoff();
    let mut last = 0u64;
    let mut opened = 0usize;
    'connect: while report.got.len() < want.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut socket = match client.connect(Some(last)).await {
            Ok(socket) => socket,
            Err(err) => {
                back_off(&mut backoff, &err).await;
                continue;
            }
        };
        opened += 1;
        while report.got.len() < want.load(Ordering::Relaxed) && Instant::now() < deadline {
            match socket.recv_within(Duration::from_millis(250)).await {
                Ok(ServerFrame::Message { cursor, message }) => {
                    let id = message.client_msg_id.unwrap_or_default();
                    assert_eq!(
                        cursor,
                        last + 1,
                        "cursor after {last} (message {id}): no gap, no duplicate"
                    );
                    last = cursor;
                    backoff.reset();
                    let text = message.text.as_deref().unwrap_or("");
                    let sent_ms: i64 = text.split(' ').next().unwrap_or("").parse().unwrap_or(0);
                    report.got.push(Received {
                        cursor,
                        id,
                        latency_ms: now_ms() - sent_ms,
                        at: Instant::now(),
                    });
                }
                Ok(frame) => {
                    if let Some(after) = delay_for_frame(&frame) {
                        report.first_lost.get_or_insert_with(Instant::now);
                        socket.close().await;
                        tokio::time::sleep(after).await;
                        continue 'connect;
                    }
                }
                Err(ClientError::Timeout) => {}
                Err(err) => {
                    report.first_lost.get_or_insert_with(Instant::now);
                    back_off(&mut backoff, &err).await;
                    continue 'connect;
                }
            }
        }
        socket.close().await;
    }
    report.reconnects = opened.saturating_sub(1);
    report
}

/// Latency percentiles (ms) of `samples`: (p50, p99, max), or zeros.
pub fn percentiles(samples: &mut [i64]) -> (i64, i64, i64) {
    if samples.is_empty() {
        return (0, 0, 0);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), samples[samples.len() - 1])
}
