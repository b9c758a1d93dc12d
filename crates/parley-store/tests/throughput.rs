//! Append throughput of each backend, for the numbers in
//! `docs/storage.md`. Slow and machine-dependent, so ignored by default:
//!
//! ```text
//! cargo test --release -p parley-store --test throughput -- --ignored --nocapture
//! ```

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_proto::{ConversationId, DeviceId, UserId};
use parley_store::*;
use support::fixtures;

const TASKS: usize = 64;
const PER_TASK: usize = 100;

async fn setup(store: &dyn Store) -> (ConversationId, Vec<(UserId, DeviceId)>) {
    let users = fixtures::users_with_devices(store, "bench", 8).await;
    let group = fixtures::group_of(store, "bench", &users).await;
    (group, users)
}

/// `TASKS` senders, one append in flight each, spread over `stores` (one
/// per simulated process), all into one 8-member group.
async fn run(label: &str, stores: Vec<Arc<dyn Store>>) {
    let (group, users) = setup(&*stores[0]).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = stores[t % stores.len()].clone();
        let (sender, device) = users[t % users.len()];
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(PER_TASK);
            for n in 0..PER_TASK {
                let sent = Instant::now();
                store
                    .append_message(NewMessage {
                        conversation_id: group,
                        sender_id: sender,
                        sender_device_id: device,
                        client_msg_id: format!("{t}-{n}"),
                        text: "hello there".into(),
                        reply_to_seq: None,
                        now_ms: 1,
                        ..NewMessage::default()
                    })
                    .await
                    .unwrap();
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let total = TASKS * PER_TASK;
    eprintln!(
        "{label}: {total} appends to one 8-member group in {:.2?}: {:.0}/s; latency p50 {:.1?}, p99 {:.1?}",
        elapsed,
        total as f64 / elapsed.as_secs_f64(),
        latencies[total / 2],
        latencies[total * 99 / 100],
    );
    for store in stores {
        store.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn append_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixtures::sqlite_config(dir.path());
    let (store, _events) = open(&config).await.unwrap();
    run("sqlite, 1 process", vec![store]).await;

    let Ok(db) = support::TestDatabase::create().await else {
        support::skip_or_fail("no PostgreSQL for the measurement");
        return;
    };
    let config = db.config();
    let (store, _events) = open(&config).await.unwrap();
    run("postgres, 1 process", vec![store]).await;

    let db = support::TestDatabase::create().await.unwrap();
    let config = db.config();
    let (first, _first_events) = open(&config).await.unwrap();
    let (second, _second_events) = open(&config).await.unwrap();
    run("postgres, 2 processes", vec![first, second]).await;
}

/// The SQLite writer alone on the 1:1 hot path: 50 direct conversations,
/// every sender with all its appends enqueued at once (as a pipelining
/// socket does), so group commit batches are as full as they get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn sqlite_direct_pipelined_throughput() {
    const PAIRS: usize = 50;
    const PER_SENDER: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let config = fixtures::sqlite_config(dir.path());
    let (store, mut events) = open(&config).await.unwrap();
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let mut senders = Vec::new();
    for p in 0..PAIRS {
        let ids = [
            fixtures::user(&*store, &format!("p{p}s0")).await,
            fixtures::user(&*store, &format!("p{p}s1")).await,
        ];
        let device = store.create_device(ids[0], "d".into(), 1).await.unwrap().id;
        let (conversation, _) = store.get_or_create_direct(ids[0], ids[1], 1).await.unwrap();
        senders.push((conversation.id, ids[0], device));
    }
    let started = Instant::now();
    let mut pending = Vec::with_capacity(PAIRS * PER_SENDER);
    for n in 0..PER_SENDER {
        for (p, &(conversation, sender, device)) in senders.iter().enumerate() {
            pending.push(store.append_message(NewMessage {
                conversation_id: conversation,
                sender_id: sender,
                sender_device_id: device,
                client_msg_id: format!("{p}-{n}"),
                text: "hello there".into(),
                reply_to_seq: None,
                now_ms: 1,
                ..NewMessage::default()
            }));
        }
    }
    for append in pending {
        append.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = PAIRS * PER_SENDER;
    eprintln!(
        "sqlite direct pipelined: {total} appends in {elapsed:.2?}: {:.0}/s",
        total as f64 / elapsed.as_secs_f64()
    );
    store.shutdown().await;
    drop(store);
    drain.abort();
}
