//! Reads on a large PostgreSQL database, for the figures and `EXPLAIN`
//! plans in `docs/storage.md`: one million messages in 10,000 direct
//! conversations of one busy user, whose inbox holds every one of them
//! (100,000 runs of ten). The database is filled with set-based SQL
//! (`generate_series`) in well under a minute, then history, the
//! conversation list and inbox replay are timed through the store and
//! their statements explained as prepared statements with a generic plan
//! (what a long-lived connection ends up running). Slow, so ignored:
//!
//! ```text
//! cargo test --release -p parley-store --test postgres_reads -- --ignored --nocapture
//! ```

mod support;

use std::time::{Duration, Instant};

use parley_proto::{ConversationId, UserId};
use parley_store::*;

const CONVERSATIONS: i64 = 10_000;
const PER_CONVERSATION: i64 = 100;
const RUN_LENGTH: i64 = 10;

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Fills the (migrated, empty) database: user 1 talks with users
/// 2..=10,001, one direct conversation each, 100 messages per conversation
/// (alternating senders), ten of them unread by user 1.
async fn fill(db: &tokio_postgres::Client) {
    let messages = CONVERSATIONS * PER_CONVERSATION;
    let runs = messages / RUN_LENGTH;
    let sql = format!(
        "BEGIN;
         INSERT INTO users(id, username, display_name, password_hash, created_at_ms, inbox_head,
                           inbox_tail_conversation, inbox_tail_seq)
         SELECT g, 'user' || g, 'user' || g, 'x', 0, CASE WHEN g = 1 THEN {messages} ELSE 0 END,
                CASE WHEN g = 1 THEN {CONVERSATIONS} END, CASE WHEN g = 1 THEN {PER_CONVERSATION} ELSE 0 END
         FROM generate_series(1, {CONVERSATIONS} + 1) g;
         INSERT INTO conversations(id, kind, direct_key, last_seq, last_activity_ms, created_at_ms)
         SELECT g, 'direct', '1:' || (g + 1), {PER_CONVERSATION}, 1000000 + g, 0
         FROM generate_series(1, {CONVERSATIONS}) g;
         INSERT INTO members(conversation_id, user_id, role, active, delivered_up_to, read_up_to, joined_seq, joined_at_ms)
         SELECT g, u, 'member', TRUE, {PER_CONVERSATION}, CASE WHEN u = 1 THEN {PER_CONVERSATION} - 10 ELSE {PER_CONVERSATION} END, 1, 0
         FROM generate_series(1, {CONVERSATIONS}) g, LATERAL (VALUES (1), (g + 1)) AS m(u);
         INSERT INTO member_periods(conversation_id, user_id, from_seq)
         SELECT g, u, 1 FROM generate_series(1, {CONVERSATIONS}) g, LATERAL (VALUES (1), (g + 1)) AS m(u);
         INSERT INTO messages(conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms, kind, text)
         SELECT c, s, CASE WHEN s % 2 = 0 THEN 1 ELSE c + 1 END, NULL, c || '-' || s, c * 1000 + s, 'text',
                'message ' || s || ' of conversation ' || c
         FROM generate_series(1, {CONVERSATIONS}) c, generate_series(1, {PER_CONVERSATION}) s;
         INSERT INTO inbox_runs(user_id, first_cursor, conversation_id, first_seq, created_at_ms)
         SELECT 1, r * {RUN_LENGTH} + 1, r % {CONVERSATIONS} + 1, (r / {CONVERSATIONS}) * {RUN_LENGTH} + 1, 0
         FROM generate_series(0, {runs} - 1) r;
         SELECT setval(pg_get_serial_sequence('users', 'id'), {CONVERSATIONS} + 1);
         SELECT setval(pg_get_serial_sequence('conversations', 'id'), {CONVERSATIONS});
         SELECT setval(pg_get_serial_sequence('messages', 'id'), {messages});
         COMMIT;"
    );
    db.batch_execute(&sql).await.expect("fill");
    db.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
}

/// The median and worst of `times` runs of `read`.
async fn time<T, F: Future<Output = T>>(
    times: usize,
    mut read: impl FnMut() -> F,
) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        read().await;
        took.push(started.elapsed());
    }
    took.sort();
    (took[times / 2], took[times - 1])
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of `sql` run as a prepared statement with
/// a generic plan.
async fn explain(db: &tokio_postgres::Client, label: &str, sql: &str, args: &str) {
    db.batch_execute("SET plan_cache_mode = force_generic_plan; DEALLOCATE ALL")
        .await
        .unwrap();
    db.batch_execute(&format!("PREPARE q AS {sql}"))
        .await
        .unwrap();
    let rows = db
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE q({args})"),
            &[],
        )
        .await
        .unwrap();
    eprintln!("--- {label}");
    for row in rows {
        eprintln!("{}", row.get::<_, String>(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement on a 1M-message database, not a check"]
async fn reads_on_a_million_messages() {
    let db = match support::TestDatabase::create().await {
        Ok(db) => db,
        Err(why) => return support::skip_or_fail(&why),
    };
    let (store, _events) = open(&db.config()).await.expect("open");
    store.shutdown().await;
    drop(store);
    let admin = client(&db.url).await;
    let started = Instant::now();
    fill(&admin).await;
    let size: String = admin
        .query_one(
            "SELECT pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "filled {} messages, {CONVERSATIONS} conversations in {:.1?} ({size})",
        CONVERSATIONS * PER_CONVERSATION,
        started.elapsed()
    );
    let (store, _events) = open(&db.config()).await.expect("reopen");
    let busy = UserId(1);
    let middle = ConversationId(CONVERSATIONS / 2);
    let latest = |before_seq| HistoryQuery {
        conversation: middle,
        viewer: busy,
        before_seq,
        after_seq: None,
        limit: 50,
    };
    let (p50, max) = time(50, || store.history(latest(None))).await;
    eprintln!("history, newest 50 of a conversation: median {p50:.2?}, max {max:.2?}");
    let (p50, max) = time(50, || store.history(latest(Some(40)))).await;
    eprintln!("history, 39 before seq 40: median {p50:.2?}, max {max:.2?}");
    let list = store.conversations_for(busy).await.unwrap();
    assert_eq!(list.len() as i64, CONVERSATIONS);
    assert_eq!(list[0].unread_count, 5);
    let (p50, max) = time(10, || store.conversations_for(busy)).await;
    eprintln!(
        "conversation list of the busy user ({} conversations, last message and unread count each): median {p50:.2?}, max {max:.2?}",
        list.len()
    );
    let head = store.inbox_head(busy).await.unwrap();
    for since in [0, head / 2, head - 100] {
        let page = store.inbox_since(busy, since, 100).await.unwrap();
        assert_eq!(page.len(), 100);
        assert_eq!(page[0].cursor, since + 1);
        let (p50, max) = time(50, || store.inbox_since(busy, since, 100)).await;
        eprintln!(
            "inbox replay, 100 entries after cursor {since} of {head}: median {p50:.2?}, max {max:.2?}"
        );
    }
    store.shutdown().await;

    explain(
        &admin,
        "history (newest page)",
        "SELECT m.id FROM messages m WHERE m.conversation_id=$1 AND m.seq > $3 AND m.seq < $4
         AND EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=$2
                    AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))
         ORDER BY m.seq DESC LIMIT $5",
        &format!("{}, 1, 0, 9223372036854775807, 51", middle.0),
    )
    .await;
    explain(
        &admin,
        "conversation list",
        "SELECT c.id, c.kind, c.name, c.last_seq, c.summary_delivered, c.summary_read,
                (SELECT COUNT(*) FROM messages u WHERE u.conversation_id = c.id AND u.seq > me.read_up_to
                 AND u.sender_id <> $1), l.id, l.text
         FROM members me JOIN conversations c ON c.id = me.conversation_id
         LEFT JOIN messages l ON l.conversation_id = c.id AND l.seq = c.last_seq
         WHERE me.user_id = $1 AND me.active
         ORDER BY c.last_activity_ms DESC, c.id DESC",
        "1",
    )
    .await;
    explain(
        &admin,
        "conversation list: members",
        "SELECT m.conversation_id, m.user_id, m.role, m.delivered_up_to, m.read_up_to, m.joined_seq
         FROM members me JOIN members m ON m.conversation_id = me.conversation_id AND m.active
         WHERE me.user_id = $1 AND me.active
         ORDER BY m.conversation_id, m.joined_at_ms, m.user_id",
        "1",
    )
    .await;
    explain(
        &admin,
        "inbox replay: runs",
        "SELECT conversation_id, first_cursor, first_seq FROM inbox_runs
         WHERE user_id=$1 AND first_cursor >= COALESCE(
             (SELECT first_cursor FROM inbox_runs WHERE user_id=$1 AND first_cursor <= $2
              ORDER BY first_cursor DESC LIMIT 1), 0)
         ORDER BY first_cursor LIMIT $3",
        &format!("1, {}, 101", head / 2 + 1),
    )
    .await;
    let runs = admin
        .query(
            "SELECT conversation_id, first_seq, first_seq + 9 FROM inbox_runs WHERE user_id = 1
             AND first_cursor > $1 ORDER BY first_cursor LIMIT 10",
            &[&((head / 2) as i64)],
        )
        .await
        .unwrap();
    let column = |i: usize| {
        runs.iter()
            .map(|r| r.get::<_, i64>(i).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    explain(
        &admin,
        "inbox replay: messages of the runs",
        "SELECT s.span, m.id FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) WITH ORDINALITY
              AS s(conversation_id, first_seq, last_seq, span)
         JOIN LATERAL (SELECT * FROM messages m WHERE m.conversation_id = s.conversation_id
                       AND m.seq BETWEEN s.first_seq AND s.last_seq ORDER BY m.seq) m ON TRUE
         ORDER BY s.span, m.seq",
        &format!(
            "'{{{}}}', '{{{}}}', '{{{}}}'",
            column(0),
            column(1),
            column(2)
        ),
    )
    .await;
    explain(
        &admin,
        "append: dedup lookup (100 keys)",
        "SELECT id FROM messages WHERE client_msg_id IS NOT NULL
           AND (sender_id, client_msg_id) IN (SELECT * FROM unnest($1::BIGINT[], $2::TEXT[]))",
        &format!(
            "'{{{}}}', '{{{}}}'",
            (0..100)
                .map(|i| (i + 2).to_string())
                .collect::<Vec<_>>()
                .join(","),
            (0..100)
                .map(|i| format!("{}-{}", i + 1, 2 * i + 1))
                .collect::<Vec<_>>()
                .join(",")
        ),
    )
    .await;
}
