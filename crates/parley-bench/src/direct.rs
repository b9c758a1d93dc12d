//! The `direct` and `group` scenarios: users and conversations are set up
//! over HTTP, then [`super::traffic`] runs the load and the checks.

use std::sync::Arc;

use super::report::Report;
use super::stats::Live;
use super::traffic::{self, Load, Outcome, Participant, Plan};
use super::verify::ConversationLog;
use super::{BenchArgs, fmt_rate, progress_bar, setup, thousands};

/// Share of a --url server's per-user limit the bench plans to use.
const LIMIT_HEADROOM: f64 = 0.8;

/// Offered msg/s of `direct` when neither --rate nor --window is given.
const DEFAULT_DIRECT_RATE: f64 = 5000.0;

/// Offered msg/s per group of `group` when neither is given.
const DEFAULT_GROUP_RATE: f64 = 50.0;

/// `parley bench direct`.
pub(crate) async fn direct(args: &BenchArgs) -> anyhow::Result<Report> {
    let target = args.target()?;
    let mut report = Report::new("direct");
    report.row("server", target.describe());
    report.set("server", target.describe());
    let mut pairs = args.pairs.max(1);
    let load = match (args.rate, args.window) {
        (_, Some(window)) => {
            if target.spawned.is_none() {
                report.row(
                    "note",
                    "closed loop against --url: sends over the server's per-user limit are refused (counted as rate_limited)",
                );
            }
            Load::Closed {
                window: window.max(1),
            }
        }
        (rate, None) => {
            let rate = rate.unwrap_or(DEFAULT_DIRECT_RATE).max(0.1);
            let needed = (rate / (2.0 * LIMIT_HEADROOM * target.user_rate)).ceil() as usize;
            if needed > pairs {
                report.row(
                    "note",
                    format!(
                        "{pairs} pairs would exceed the server's {}/s per-user limit; using {needed} pairs",
                        target.user_rate
                    ),
                );
                pairs = needed;
            }
            Load::Open {
                per_sender: rate / (2 * pairs) as f64,
            }
        }
    };
    let progress = progress_bar("setup");
    progress.set_length(3 * pairs as u64);
    let tag = setup::run_tag();
    let (users, conversations) =
        setup::pairs(&target.base, &tag, pairs, args.concurrency, &progress).await?;
    let (participants, logs) = pair_participants(&users, &conversations, |_| None);
    let plan = Plan {
        participants,
        conversations: logs,
        load,
        duration: args.duration(),
        text: args.text(),
        fanout: 1,
        lean_parse: args.lean_parse,
        connect_concurrency: args.concurrency.max(64),
        server_pid: target.pid,
    };
    let live = Arc::new(Live::default());
    let progress = progress_bar("direct");
    let outcome = traffic::run(&target.dial, plan, live, &progress).await?;
    progress.finish_and_clear();
    let load_line = match load {
        Load::Open { per_sender } => format!(
            "open loop: {} msg/s offered ({pairs} pairs, both members send {per_sender:.1}/s)",
            fmt_rate(per_sender * 2.0 * pairs as f64)
        ),
        Load::Closed { window } => {
            format!("closed loop: {window} in flight per sender ({pairs} pairs, both send)")
        }
    };
    report.set("pairs", pairs);
    report.set("load", load_json(load));
    describe(&mut report, &load_line, args, &outcome, "msg/s");
    Ok(report)
}

/// The sockets of pairs in direct conversations: users `2i` and `2i + 1`
/// share `conversations[i]` and both send; `dial(user)` says where a user's
/// socket connects (`None`: the run's target).
pub(crate) fn pair_participants(
    users: &[setup::User],
    conversations: &[(parley_proto::ConversationId, u64)],
    dial: impl Fn(usize) -> Option<super::wire::Dial>,
) -> (Vec<Participant>, Vec<ConversationLog>) {
    let mut participants = Vec::with_capacity(2 * conversations.len());
    let mut logs = Vec::with_capacity(conversations.len());
    for (i, (conversation, base)) in conversations.iter().enumerate() {
        for user in [2 * i, 2 * i + 1] {
            participants.push(Participant {
                user: user as u32,
                token: users[user].token.clone(),
                conversation: i,
                conversation_id: conversation.0,
                sends: true,
                dial: dial(user),
            });
        }
        logs.push(ConversationLog {
            base: *base,
            members: vec![2 * i as u32, 2 * i as u32 + 1],
            ..ConversationLog::default()
        });
    }
    (participants, logs)
}

/// `parley bench group`.
pub(crate) async fn group(args: &BenchArgs) -> anyhow::Result<Report> {
    let target = args.target()?;
    let mut report = Report::new("group");
    report.row("server", target.describe());
    report.set("server", target.describe());
    let groups = args.groups.max(1);
    let members = args.members.max(2);
    let (load, senders) = match (args.rate, args.window) {
        (_, Some(window)) => (
            Load::Closed {
                window: window.max(1),
            },
            1,
        ),
        (rate, None) => {
            let rate = rate.unwrap_or(DEFAULT_GROUP_RATE).max(0.1);
            let senders =
                ((rate / (LIMIT_HEADROOM * target.user_rate)).ceil() as usize).clamp(1, members);
            if senders > 1 {
                report.row(
                    "note",
                    format!(
                        "{rate} msg/s per group exceeds the server's {}/s per-user limit; {senders} senders per group share it",
                        target.user_rate
                    ),
                );
            }
            (
                Load::Open {
                    per_sender: rate / senders as f64,
                },
                senders,
            )
        }
    };
    let progress = progress_bar("setup");
    progress.set_length((groups * members + groups) as u64);
    let tag = setup::run_tag();
    let users = setup::users(
        &target.base,
        &tag,
        groups * members,
        args.concurrency,
        &progress,
    )
    .await?;
    let specs = (0..groups)
        .map(|g| {
            let first = g * members;
            let others = users[first + 1..first + members]
                .iter()
                .map(|u| u.id)
                .collect();
            (users[first].clone(), others)
        })
        .collect();
    let conversations = setup::groups(&target.base, specs, args.concurrency, &progress).await?;
    let mut participants = Vec::with_capacity(groups * members);
    let mut logs = Vec::with_capacity(groups);
    for (g, (conversation, base)) in conversations.iter().enumerate() {
        let first = g * members;
        for m in 0..members {
            participants.push(Participant {
                user: (first + m) as u32,
                token: users[first + m].token.clone(),
                conversation: g,
                conversation_id: conversation.0,
                sends: m < senders,
                dial: None,
            });
        }
        logs.push(ConversationLog {
            base: *base,
            members: (first as u32..(first + members) as u32).collect(),
            ..ConversationLog::default()
        });
    }
    let plan = Plan {
        participants,
        conversations: logs,
        load,
        duration: args.duration(),
        text: args.text(),
        fanout: members as u64 - 1,
        lean_parse: args.lean_parse,
        connect_concurrency: args.concurrency.max(64),
        server_pid: target.pid,
    };
    let live = Arc::new(Live::default());
    let progress = progress_bar("group");
    let outcome = traffic::run(&target.dial, plan, live, &progress).await?;
    progress.finish_and_clear();
    let load_line = match load {
        Load::Open { per_sender } => format!(
            "open loop: {groups} groups × {members} members, {} msg/s per group ({senders} sender(s)), {} deliveries/s offered",
            fmt_rate(per_sender * senders as f64),
            fmt_rate(per_sender * senders as f64 * groups as f64 * (members - 1) as f64)
        ),
        Load::Closed { window } => format!(
            "closed loop: {groups} groups × {members} members, one sender each with {window} in flight"
        ),
    };
    report.set("groups", groups);
    report.set("members", members);
    report.set("senders_per_group", senders);
    report.set("load", load_json(load));
    describe(&mut report, &load_line, args, &outcome, "deliveries/s");
    Ok(report)
}

/// The load as the `--json` report gives it.
#[derive(serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum LoadReport {
    Open { per_sender_per_sec: f64 },
    Closed { window: usize },
}

fn load_json(load: Load) -> LoadReport {
    match load {
        Load::Open { per_sender } => LoadReport::Open {
            per_sender_per_sec: per_sender,
        },
        Load::Closed { window } => LoadReport::Closed { window },
    }
}

/// The rows and fields both scenarios share.
fn describe(report: &mut Report, load_line: &str, args: &BenchArgs, o: &Outcome, unit: &str) {
    let delivered = o.verdict.delivered;
    let delivered_rate = super::per_sec(delivered, o.deliver_secs);
    let acked_rate = super::per_sec(o.verdict.acked, o.ack_secs);
    report.row("load", load_line);
    report.subtitle = load_line.to_owned();
    report.row(
        "duration",
        format!(
            "{:.1} s of sending; sockets connected in {:.2} s",
            args.duration().as_secs_f64(),
            o.connect_secs
        ),
    );
    report.row(
        "messages",
        format!(
            "{} sent, {} acked ({}/s), {} unanswered",
            thousands(o.sent),
            thousands(o.verdict.acked),
            fmt_rate(acked_rate),
            o.unanswered
        ),
    );
    report.row(
        "delivered",
        format!(
            "{} ({} {unit}, first send to last delivery)",
            thousands(delivered),
            fmt_rate(delivered_rate)
        ),
    );
    report.latency("send_to_ack", "send→ack", &o.ack);
    report.latency("send_to_deliver", "send→deliver", &o.deliver);
    report.row(
        "cpu",
        format!("{} (first send to end of drain)", o.cpu.line()),
    );
    report.set("cpu_cores", o.cpu);
    report.row("errors", o.errors.line());
    if o.drained {
        report.row("verification", o.verdict.line());
    } else {
        report.row(
            "verification",
            format!(
                "INCOMPLETE — the server had not answered {} sends and delivered {} acked messages when the drain gave up (overload: late, not necessarily lost); {}",
                o.unanswered,
                o.verdict.lost,
                o.verdict.line()
            ),
        );
    }
    report.set("drained", o.drained);
    report.row(
        "frames",
        if args.lean_parse {
            "hot frames decoded by the bench's scanner (--lean-parse)"
        } else {
            "decoded with parley-proto"
        },
    );
    report.set("duration_secs", args.duration().as_secs_f64());
    report.set("connect_secs", o.connect_secs);
    report.set("sent", o.sent);
    report.set("acked", o.verdict.acked);
    report.set("acked_per_sec", acked_rate);
    report.set("delivered", delivered);
    report.set("delivered_per_sec", delivered_rate);
    report.set("unanswered", o.unanswered);
    report.set("errors", &o.errors);
    report.set("verification", o.verdict);
    report.set("lean_parse", args.lean_parse);
    report.passed = o.verdict.clean() && o.unanswered == 0;
}
