//! The `search` and `events` scenarios.
//!
//! `search`: one busy user in `--conversations` direct conversations, each
//! partner sending `--messages / --conversations` varied messages
//! ([`super::fill`]); then the busy user runs `--queries` searches, one at
//! a time, in five classes: a common word, a rare word, a short (2
//! character) query that the trigram index cannot answer, a CJK phrase,
//! and a word that is nowhere. Latency is per HTTP request, end to end.
//!
//! `events`: `--pairs` pairs exchange `--messages` sends in total, of which
//! `--events-percent` are edits and reactions on recent messages: run it
//! with 0 and with 10 to see what events cost on the send path.

use std::time::Instant;

use parley_client::{Client, SearchRequest};

use super::fill::{self, CJK_PHRASES, FillPlan, Rng, Sender, VOCABULARY, word};
use super::report::Report;
use super::stats::{Errors, Latency};
use super::{BenchArgs, fmt_rate, log_line, per_sec, progress_bar, setup, thousands};

/// Sends in flight per sender while filling, when --window is not given.
const DEFAULT_FILL_WINDOW: usize = 16;

/// A kind of query, with how to make one.
#[derive(Debug, Clone, Copy)]
enum QueryClass {
    /// One of the 16 most frequent words: many matches, the newest page.
    Common,
    /// A word from the rarest half of the vocabulary.
    Rare,
    /// Two letters: below the trigram index's reach, a scan.
    Short,
    /// A CJK phrase of 3+ characters (in one message in twenty).
    Cjk,
    /// A six-letter word that no message holds.
    Missing,
}

impl QueryClass {
    const ALL: [QueryClass; 5] = [
        QueryClass::Common,
        QueryClass::Rare,
        QueryClass::Short,
        QueryClass::Cjk,
        QueryClass::Missing,
    ];

    fn label(self) -> &'static str {
        match self {
            QueryClass::Common => "common word",
            QueryClass::Rare => "rare word",
            QueryClass::Short => "2 letters (scan)",
            QueryClass::Cjk => "CJK phrase",
            QueryClass::Missing => "no match",
        }
    }

    fn key(self) -> &'static str {
        match self {
            QueryClass::Common => "search_common",
            QueryClass::Rare => "search_rare",
            QueryClass::Short => "search_short",
            QueryClass::Cjk => "search_cjk",
            QueryClass::Missing => "search_missing",
        }
    }

    fn query(self, rng: &mut Rng) -> String {
        match self {
            QueryClass::Common => word(rng.below(16)),
            QueryClass::Rare => word(VOCABULARY / 2 + rng.below(VOCABULARY / 2)),
            QueryClass::Short => word(rng.below(VOCABULARY))[..2].to_owned(),
            QueryClass::Cjk => {
                let phrase = CJK_PHRASES[rng.below(CJK_PHRASES.len())];
                phrase.chars().take(3).collect()
            }
            // 'x' is in no syllable.
            QueryClass::Missing => format!("{}x", &word(rng.below(VOCABULARY))[..5]),
        }
    }
}

/// `parley bench search`.
pub(crate) async fn search(args: &BenchArgs) -> anyhow::Result<Report> {
    let target = args.target()?;
    let mut report = Report::new("search");
    report.row("server", target.describe());
    report.set("server", target.describe());
    let conversations = args.conversations.max(1);
    let per_sender = (args.messages / conversations).max(1);
    let started = Instant::now();
    let progress = progress_bar("setup");
    progress.set_length(2 * conversations as u64 + 1);
    let tag = setup::run_tag();
    let users = setup::users(
        &target.base,
        &tag,
        conversations + 1,
        args.concurrency,
        &progress,
    )
    .await?;
    let busy = users[0].clone();
    let pairs = users[1..]
        .iter()
        .map(|partner| (partner.clone(), busy.clone()))
        .collect();
    let directs = setup::directs(&target.base, pairs, args.concurrency, &progress).await?;
    progress.finish_and_clear();
    let setup_secs = started.elapsed().as_secs_f64();
    report.row(
        "setup",
        format!(
            "{} users and {conversations} direct conversations in {setup_secs:.1} s",
            conversations + 1
        ),
    );
    log_line(format_args!("search: setup done in {setup_secs:.1} s"));

    let plan = FillPlan {
        senders: users[1..]
            .iter()
            .zip(&directs)
            .map(|(partner, (conversation, _))| Sender {
                token: partner.token.clone(),
                conversation: *conversation,
            })
            .collect(),
        per_sender,
        window: args.window.unwrap_or(DEFAULT_FILL_WINDOW),
        events_percent: 0,
        seed: 1,
    };
    let progress = progress_bar("fill");
    let filled = fill::run(&target.base, &plan, &progress).await?;
    progress.finish_and_clear();
    report.row(
        "filled",
        format!(
            "{} messages in {conversations} conversations of one user, {:.1} s ({} msg/s)",
            thousands(filled.messages),
            filled.secs,
            fmt_rate(per_sec(filled.messages, filled.secs))
        ),
    );
    report.set("messages", filled.messages);
    report.set("conversations", conversations);
    if filled.errors.total() > 0 {
        report.row("fill errors", filled.errors.line());
    }
    log_line(format_args!(
        "search: filled {} messages in {:.1} s",
        filled.messages, filled.secs
    ));
    let searching = Instant::now();

    let progress = progress_bar("search");
    let queries = args.queries.max(QueryClass::ALL.len());
    progress.set_length(queries as u64);
    let client = Client::new(&target.base).with_token(busy.token.clone());
    let mut rng = Rng::new(2);
    let mut latencies = vec![Latency::default(); QueryClass::ALL.len()];
    let mut found = vec![0u64; QueryClass::ALL.len()];
    let mut errors = Errors::default();
    for i in 0..queries {
        let class = i % QueryClass::ALL.len();
        let q = QueryClass::ALL[class].query(&mut rng);
        let t0 = Instant::now();
        let result = client
            .search(&SearchRequest {
                q: &q,
                ..SearchRequest::default()
            })
            .await;
        latencies[class].record(t0.elapsed());
        match result {
            Ok(page) => found[class] += page.results.len() as u64,
            Err(err) => errors.add(format!("{err}")),
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let search_secs = searching.elapsed().as_secs_f64();
    report.row(
        "searched",
        format!("{queries} queries one at a time in {search_secs:.1} s"),
    );
    log_line(format_args!(
        "search: {queries} queries in {search_secs:.1} s"
    ));
    let per_class = (queries / QueryClass::ALL.len()).max(1) as u64;
    for (i, class) in QueryClass::ALL.iter().enumerate() {
        report.latency(class.key(), class.label(), &latencies[i]);
        report.row(
            format!("  results per {}", class.label()),
            format!(
                "{:.1} (a page is at most 20)",
                found[i] as f64 / per_class as f64
            ),
        );
    }
    if errors.total() > 0 {
        report.row("search errors", errors.line());
        report.passed = false;
    }
    report.subtitle = format!(
        "{} searches over {} messages",
        thousands(queries as u64),
        thousands(filled.messages)
    );
    Ok(report)
}

/// `parley bench events`.
pub(crate) async fn events(args: &BenchArgs) -> anyhow::Result<Report> {
    let target = args.target()?;
    let mut report = Report::new("events");
    report.row("server", target.describe());
    report.set("server", target.describe());
    let pairs = args.pairs.max(1);
    let progress = progress_bar("setup");
    progress.set_length(3 * pairs as u64);
    let tag = setup::run_tag();
    let (users, directs) =
        setup::pairs(&target.base, &tag, pairs, args.concurrency, &progress).await?;
    progress.finish_and_clear();
    // Both members send, so every socket also receives its peer's sends.
    let senders = users
        .iter()
        .enumerate()
        .map(|(i, user)| Sender {
            token: user.token.clone(),
            conversation: directs[i / 2].0,
        })
        .collect::<Vec<_>>();
    let per_sender = (args.messages / senders.len()).max(1);
    let plan = FillPlan {
        senders,
        per_sender,
        window: args.window.unwrap_or(DEFAULT_FILL_WINDOW),
        events_percent: args.events_percent,
        seed: 3,
    };
    let progress = progress_bar("events");
    let outcome = fill::run(&target.base, &plan, &progress).await?;
    progress.finish_and_clear();
    let total = outcome.messages + outcome.events;
    report.row(
        "load",
        format!(
            "closed loop: {} in flight per sender ({pairs} pairs, both send), {}% events (edits and reactions)",
            plan.window, plan.events_percent
        ),
    );
    report.row(
        "acknowledged",
        format!(
            "{} sends ({} messages, {} events) in {:.1} s: {} sends/s",
            thousands(total),
            thousands(outcome.messages),
            thousands(outcome.events),
            outcome.secs,
            fmt_rate(per_sec(total, outcome.secs))
        ),
    );
    report.set("sends_per_sec", per_sec(total, outcome.secs));
    report.set("events", outcome.events);
    report.set("messages", outcome.messages);
    report.latency("ack", "send → sent", &outcome.ack);
    if outcome.errors.total() > 0 {
        report.row("errors", outcome.errors.line());
        report.passed = false;
    }
    report.subtitle = format!("{}% events", plan.events_percent);
    Ok(report)
}
