//! A pipelined sender with varied text: fills a server with searchable
//! messages (`search`) and mixes edits and reactions into the send stream
//! (`events`).
//!
//! The `direct` engine ([`super::traffic`]) sends one filler text and runs
//! for a time; these scenarios need the opposite: a fixed number of
//! messages whose words follow a skewed (log-uniform, roughly Zipf)
//! distribution over a generated vocabulary, so that some query words
//! are common and others rare, with a little CJK text mixed in.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::Context;
use indicatif::ProgressBar;
use parley_client::Client;
use parley_proto::api::SendRequest;
use parley_proto::{ConversationId, ServerFrame};
use tokio::time::Instant;

use super::stats::{Errors, Latency};

/// Syllables of the generated vocabulary: 16³ = 4,096 six-letter words.
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fi", "go", "hu", "je", "pa", "zo",
];

/// Words in the vocabulary.
pub(crate) const VOCABULARY: usize = SYLLABLES.len().pow(3);

/// CJK phrases, one of which goes into one message in twenty.
pub(crate) const CJK_PHRASES: [&str; 5] = [
    "咖啡店见",
    "明天下午",
    "会议取消",
    "東京タワー",
    "생일 축하해",
];

/// Emoji the `events` scenario reacts with.
const EMOJI: [&str; 4] = ["👍", "❤️", "😂", "🙏"];

/// Own recent messages an event may target.
const RECENT_TARGETS: usize = 64;

/// How often a fill without a progress bar logs how far it is.
const LOG_EVERY: Duration = Duration::from_secs(15);

/// How long one socket may wait for its next frame before the run fails.
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// The vocabulary's `rank`-th word (0 is the most frequent).
pub(crate) fn word(rank: usize) -> String {
    let rank = rank % VOCABULARY;
    [rank / 256, (rank / 16) % 16, rank % 16]
        .iter()
        .map(|&i| SYLLABLES[i])
        .collect()
}

/// A small deterministic generator (xorshift64*): the same seed makes the
/// same messages, so runs are comparable.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A word rank drawn log-uniformly from the vocabulary: rank r is
    /// about 1/(r+1) as likely, so a few words are everywhere and most
    /// are rare.
    pub(crate) fn word_rank(&mut self) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (((VOCABULARY as f64 + 1.0).powf(u)) as usize)
            .saturating_sub(1)
            .min(VOCABULARY - 1)
    }

    /// A message text: 6–12 words, and a CJK phrase in one of twenty.
    pub(crate) fn message(&mut self) -> String {
        let words = 6 + self.below(7);
        let mut text = (0..words)
            .map(|_| word(self.word_rank()))
            .collect::<Vec<_>>()
            .join(" ");
        if self.below(20) == 0 {
            text.push(' ');
            text.push_str(CJK_PHRASES[self.below(CJK_PHRASES.len())]);
        }
        text
    }
}

/// One sending socket.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    /// Its bearer token.
    pub(crate) token: String,
    /// Where it sends.
    pub(crate) conversation: ConversationId,
}

/// What to send.
#[derive(Debug, Clone)]
pub(crate) struct FillPlan {
    /// The sockets, one task each.
    pub(crate) senders: Vec<Sender>,
    /// Sends (messages and events) per sender.
    pub(crate) per_sender: usize,
    /// Sends in flight per sender.
    pub(crate) window: usize,
    /// Percent of sends that are events (half edits of one's own recent
    /// messages, half reactions to them) once there is a target.
    pub(crate) events_percent: u32,
    /// Seed of the text generator.
    pub(crate) seed: u64,
}

/// What the senders saw.
#[derive(Default)]
pub(crate) struct FillOutcome {
    /// Messages acknowledged.
    pub(crate) messages: u64,
    /// Events (edits and reactions) acknowledged.
    pub(crate) events: u64,
    /// Send → `sent` latency of every acknowledged send.
    pub(crate) ack: Latency,
    /// Refused sends by error code.
    pub(crate) errors: Errors,
    /// Wall time from the first send to the last ack.
    pub(crate) secs: f64,
}

/// Runs every sender to completion.
pub(crate) async fn run(
    base: &str,
    plan: &FillPlan,
    progress: &ProgressBar,
) -> anyhow::Result<FillOutcome> {
    progress.set_length((plan.senders.len() * plan.per_sender) as u64);
    progress.set_position(0);
    // Connect everyone first, so the timed part is sending only.
    let mut sockets = Vec::with_capacity(plan.senders.len());
    for sender in &plan.senders {
        let client = Client::new(base).with_token(sender.token.clone());
        sockets.push(client.connect(None).await.context("connect a sender")?);
    }
    let t0 = Instant::now();
    // Without a progress bar, a line now and then.
    let logger = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(t0 + LOG_EVERY, LOG_EVERY);
            loop {
                tick.tick().await;
                let done = progress.position();
                let secs = t0.elapsed().as_secs_f64();
                super::log_line(format_args!(
                    "fill: {done}/{} sends after {secs:.0} s ({:.0}/s)",
                    progress.length().unwrap_or(0),
                    done as f64 / secs
                ));
            }
        })
    };
    let mut handles = Vec::with_capacity(sockets.len());
    for (i, socket) in sockets.into_iter().enumerate() {
        let sender = plan.senders[i].clone();
        let job = SenderJob {
            index: i,
            conversation: sender.conversation,
            count: plan.per_sender,
            window: plan.window.max(1),
            events_percent: plan.events_percent.min(100),
            rng: Rng::new(plan.seed ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)),
        };
        let progress = progress.clone();
        handles.push(tokio::spawn(job.run(socket, progress)));
    }
    let mut outcome = FillOutcome::default();
    for handle in handles {
        let one = handle.await??;
        outcome.messages += one.messages;
        outcome.events += one.events;
        outcome.ack.merge(&one.ack);
        outcome.errors.merge(&one.errors);
    }
    outcome.secs = t0.elapsed().as_secs_f64();
    logger.abort();
    Ok(outcome)
}

/// One sender's work.
struct SenderJob {
    index: usize,
    conversation: ConversationId,
    count: usize,
    window: usize,
    events_percent: u32,
    rng: Rng,
}

/// What is in flight under one `client_msg_id`.
struct InFlight {
    at: Instant,
    is_event: bool,
}

impl SenderJob {
    async fn run(
        mut self,
        mut socket: parley_client::Socket,
        progress: ProgressBar,
    ) -> anyhow::Result<FillOutcome> {
        let mut outcome = FillOutcome::default();
        let mut in_flight: HashMap<String, InFlight> = HashMap::new();
        let mut recent: VecDeque<u64> = VecDeque::with_capacity(RECENT_TARGETS);
        let mut next = 0;
        while next < self.count || !in_flight.is_empty() {
            while next < self.count && in_flight.len() < self.window {
                let id = format!("f{}-{next}", self.index);
                let (body, is_event) = self.body(&id, &recent);
                in_flight.insert(
                    id,
                    InFlight {
                        at: Instant::now(),
                        is_event,
                    },
                );
                socket.send_message(self.conversation, body).await?;
                next += 1;
            }
            let frame = socket
                .recv_within(FRAME_TIMEOUT)
                .await
                .context("waiting for an ack")?;
            match frame {
                ServerFrame::Sent {
                    client_msg_id, seq, ..
                } => {
                    let Some(sent) = in_flight.remove(&client_msg_id) else {
                        continue;
                    };
                    outcome.ack.record(sent.at.elapsed());
                    if sent.is_event {
                        outcome.events += 1;
                    } else {
                        outcome.messages += 1;
                        if recent.len() == RECENT_TARGETS {
                            recent.pop_front();
                        }
                        recent.push_back(seq);
                    }
                    progress.inc(1);
                }
                ServerFrame::Error {
                    code, reference, ..
                } => {
                    if let Some(id) = reference
                        && in_flight.remove(&id).is_some()
                    {
                        outcome.errors.add(format!("{code:?}"));
                        progress.inc(1);
                    }
                }
                _ => {}
            }
        }
        socket.close().await;
        Ok(outcome)
    }

    /// The next send: an event on one of `recent` (own messages) with the
    /// configured probability, else a new message.
    fn body(&mut self, id: &str, recent: &VecDeque<u64>) -> (SendRequest, bool) {
        let event = !recent.is_empty() && (self.rng.below(100) as u32) < self.events_percent;
        if !event {
            return (SendRequest::text(id, &self.rng.message()), false);
        }
        let target = recent[self.rng.below(recent.len())];
        if self.rng.below(2) == 0 {
            (SendRequest::edit(id, target, &self.rng.message()), true)
        } else {
            let emoji = EMOJI[self.rng.below(EMOJI.len())];
            (SendRequest::reaction(id, target, emoji), true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct_and_six_letters() {
        let words: std::collections::HashSet<_> = (0..VOCABULARY).map(word).collect();
        assert_eq!(words.len(), VOCABULARY);
        assert!(words.iter().all(|w| w.len() == 6));
    }

    #[test]
    fn ranks_are_skewed_towards_the_top() {
        let mut rng = Rng::new(7);
        let draws: Vec<usize> = (0..100_000).map(|_| rng.word_rank()).collect();
        assert!(draws.iter().all(|&r| r < VOCABULARY));
        let top = draws.iter().filter(|&&r| r < 16).count();
        let tail = draws.iter().filter(|&&r| r >= VOCABULARY - 16).count();
        assert!(top > 20 * tail.max(1), "top {top}, tail {tail}");
    }

    #[test]
    fn the_same_seed_makes_the_same_messages() {
        let (mut a, mut b) = (Rng::new(1), Rng::new(1));
        for _ in 0..100 {
            assert_eq!(a.message(), b.message());
        }
        let text = Rng::new(2).message();
        assert!(text.split(' ').count() >= 6);
    }
}
