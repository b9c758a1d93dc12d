//! PostgreSQL going away and coming back, against a private server the
//! test starts and stops itself (never the machine's own instance).
//!
//! The promises checked: while the database is down every call fails with
//! `Unavailable` within the store's timeouts (no hang, no panic, no false
//! ack); once it is back the same store works again by itself; and a crash
//! under load loses no acknowledged write and duplicates none.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parley_proto::{ConversationId, DeviceId, MessageId, ReceiptStatus, UserId};
use parley_store::postgres::{PostgresOptions, PostgresStore};
use parley_store::*;
use support::{PrivateServer, fixtures};

async fn start_server() -> Option<PrivateServer> {
    match tokio::task::spawn_blocking(PrivateServer::start)
        .await
        .unwrap()
    {
        Ok(server) => Some(server),
        Err(why) => {
            support::skip_or_fail(&why);
            None
        }
    }
}

async fn stop(server: &Arc<PrivateServer>, mode: &'static str) {
    let server = server.clone();
    tokio::task::spawn_blocking(move || server.stop(mode))
        .await
        .unwrap()
        .expect("stop the private server");
}

async fn start_again(server: &Arc<PrivateServer>) {
    let server = server.clone();
    tokio::task::spawn_blocking(move || server.start_again())
        .await
        .unwrap()
        .expect("restart the private server");
}

fn options() -> PostgresOptions {
    PostgresOptions {
        pool_size: 4,
        connect_timeout: Duration::from_secs(2),
        op_timeout: Duration::from_secs(5),
        ..PostgresOptions::default()
    }
}

struct Chat {
    store: Arc<dyn Store>,
    events: CommitReceiver,
    users: Vec<(UserId, DeviceId)>,
    group: ConversationId,
}

async fn chat(url: &str, n_users: usize) -> Chat {
    let (store, events) = PostgresStore::open(url, options()).await.expect("open");
    let store: Arc<dyn Store> = Arc::new(store);
    let users = fixtures::users_with_devices(&*store, "user", n_users).await;
    let group = fixtures::group_of(&*store, "outage", &users).await;
    Chat {
        store,
        events,
        users,
        group,
    }
}

fn text(group: ConversationId, (sender, device): (UserId, DeviceId), key: &str) -> NewMessage {
    NewMessage {
        conversation_id: group,
        sender_id: sender,
        sender_device_id: device,
        client_msg_id: key.into(),
        text: key.into(),
        reply_to_seq: None,
        now_ms: 1,
        ..NewMessage::default()
    }
}

fn is_unavailable<T: std::fmt::Debug>(result: &StoreResult<T>) -> bool {
    matches!(result, Err(StoreError::Unavailable(_)))
}

/// Every message of the group, ascending, read in pages.
async fn whole_history(
    store: &dyn Store,
    group: ConversationId,
    viewer: UserId,
) -> Vec<parley_proto::Message> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (page, more) = store
            .history(HistoryQuery {
                conversation: group,
                viewer,
                before_seq: None,
                after_seq: Some(after),
                limit: 100,
            })
            .await
            .expect("history");
        if let Some(last) = page.last() {
            after = last.seq;
        }
        out.extend(page);
        if !more {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_cleanly_and_recovers() {
    let Some(server) = start_server().await else {
        return;
    };
    let server = Arc::new(server);
    let Chat {
        store,
        mut events,
        users,
        group,
    } = chat(&server.url(), 2).await;
    let alice = users[0];
    for i in 0..5 {
        store
            .append_message(text(group, alice, &format!("before-{i}")))
            .await
            .unwrap();
    }

    stop(&server, "fast").await;
    let started = Instant::now();
    let write = store.append_message(text(group, alice, "during")).await;
    assert!(is_unavailable(&write), "{write:?}");
    let read = store.history(HistoryQuery {
        conversation: group,
        viewer: alice.0,
        before_seq: None,
        after_seq: None,
        limit: 10,
    });
    let read = read.await;
    assert!(is_unavailable(&read), "{read:?}");
    assert!(is_unavailable(&store.user_by_id(alice.0).await));
    assert!(is_unavailable(&store.inbox_head(alice.0).await));
    assert!(is_unavailable(&store.conversation(group).await));
    assert!(is_unavailable(
        &store
            .advance_receipt(group, users[1].0, None, ReceiptStatus::Read, 3)
            .await
    ));
    // Many writes in flight at once all fail, none hangs.
    let pending: Vec<PendingAppend> = (0..50)
        .map(|i| store.append_message(text(group, alice, &format!("burst-{i}"))))
        .collect();
    for append in pending {
        let result = append.await;
        assert!(is_unavailable(&result), "{result:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failing took {:?}",
        started.elapsed()
    );

    start_again(&server).await;
    // The same store recovers by itself: no reopen.
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        match store.append_message(text(group, alice, "after")).await {
            Ok(appended) => break appended,
            Err(StoreError::Unavailable(why)) if Instant::now() < deadline => {
                eprintln!("still unavailable: {why}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("did not recover: {err}"),
        }
    };
    assert_eq!(
        recovered.message.seq, 7,
        "nothing was stored during the outage"
    );
    let seqs: Vec<u64> = whole_history(&*store, group, alice.0)
        .await
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    let head = store.inbox_head(users[1].0).await.unwrap();
    assert_eq!(head, 7);

    // Only committed messages were announced.
    let mut announced = Vec::new();
    while announced.len() < 7 {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(Committed::Message { message, .. })) => announced.push(message.seq),
            Ok(Some(Committed::Receipt(_))) => {}
            _ => break,
        }
    }
    assert_eq!(announced, (1..=7).collect::<Vec<_>>());
    assert!(
        events.try_recv().is_err(),
        "no announcement for a failed write"
    );
    store.shutdown().await;
}

/// Senders keep sending (each retries a key until it is acknowledged)
/// while the server crashes (`pg_ctl stop -m immediate`) and restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_under_load_loses_no_acknowledged_write() {
    const SENDERS: usize = 4;
    const KEYS: usize = 60;
    let Some(server) = start_server().await else {
        return;
    };
    let server = Arc::new(server);
    let Chat {
        store,
        users,
        group,
        ..
    } = chat(&server.url(), SENDERS).await;

    let restarted = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for &sender in &users {
        let store = store.clone();
        let restarted = restarted.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked: HashMap<String, (u64, MessageId)> = HashMap::new();
            let mut failures = 0u32;
            let deadline = Instant::now() + Duration::from_secs(90);
            // At least KEYS each, and on until the server is back, so the
            // crash lands mid-stream whatever the machine's speed.
            let mut n = 0;
            while n < KEYS || !restarted.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("{}-{n}", sender.0);
                loop {
                    match store.append_message(text(group, sender, &key)).await {
                        Ok(appended) => {
                            acked.insert(
                                key.clone(),
                                (appended.message.seq, appended.message.message_id),
                            );
                            break;
                        }
                        Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                            failures += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(err) => panic!("send {key} failed for good: {err}"),
                    }
                }
            }
            (acked, failures)
        }));
    }
    // Let the senders get going, then crash the server under them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let crash = {
        let server = server.clone();
        tokio::spawn(async move {
            stop(&server, "immediate").await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            start_again(&server).await;
            restarted.store(true, Ordering::Relaxed);
        })
    };
    let mut acked = HashMap::new();
    let mut failures = 0;
    for task in tasks {
        let (mine, failed) = task.await.unwrap();
        acked.extend(mine);
        failures += failed;
    }
    crash.await.unwrap();
    assert!(acked.len() >= SENDERS * KEYS);
    assert!(failures > 0, "the crash was felt");
    eprintln!(
        "{} sends acknowledged; {failures} attempts failed with Unavailable and were retried",
        acked.len()
    );

    let history = whole_history(&*store, group, users[0].0).await;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gapless after a crash"
    );
    let mut stored: HashMap<String, (u64, MessageId)> = HashMap::new();
    for message in &history[1..] {
        let key = message.client_msg_id.clone().expect("a text message");
        let previous = stored.insert(key.clone(), (message.seq, message.message_id));
        assert!(previous.is_none(), "{key} stored twice");
    }
    assert_eq!(
        stored, acked,
        "every ack is stored as acknowledged, nothing else"
    );
    store.shutdown().await;
}

/// The database hangs instead of refusing (every server process frozen, as
/// behind a network partition): calls give up with `Unavailable` after the
/// store's timeouts instead of waiting forever, and the store recovers once
/// the server runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_database_times_out_and_recovers() {
    let Some(server) = start_server().await else {
        return;
    };
    let server = Arc::new(server);
    let url = server.url();
    let short = PostgresOptions {
        connect_timeout: Duration::from_secs(1),
        op_timeout: Duration::from_secs(2),
        ..options()
    };
    let (store, mut events) = PostgresStore::open(&url, short).await.expect("open");
    let store: Arc<dyn Store> = Arc::new(store);
    let alice = fixtures::user(&*store, "alice").await;
    let bob = fixtures::user(&*store, "bob").await;
    let device = store
        .create_device(alice, "phone".into(), 1)
        .await
        .unwrap()
        .id;
    let (direct, _) = store.get_or_create_direct(alice, bob, 1).await.unwrap();
    store
        .append_message(text(direct.id, (alice, device), "before"))
        .await
        .unwrap();

    let frozen = server.clone();
    tokio::task::spawn_blocking(move || frozen.signal_all("STOP"))
        .await
        .unwrap()
        .expect("freeze the server");
    let started = Instant::now();
    let write = store.append_message(text(direct.id, (alice, device), "frozen"));
    let read = store.inbox_head(bob);
    let (write, read) = (write.await, read.await);
    let waited = started.elapsed();
    assert!(is_unavailable(&write), "{write:?}");
    assert!(is_unavailable(&read), "{read:?}");
    assert!(waited < Duration::from_secs(15), "gave up after {waited:?}");

    let thawed = server.clone();
    tokio::task::spawn_blocking(move || thawed.signal_all("CONT"))
        .await
        .unwrap()
        .expect("thaw the server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        match store
            .append_message(text(direct.id, (alice, device), "after"))
            .await
        {
            Ok(appended) => break appended,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("did not recover: {err}"),
        }
    };
    // The frozen send was refused, but its COMMIT may have been waiting in
    // the socket when the server thawed: then it is stored, and a retry of
    // it is a repeat. Either way the seqs are gapless and nothing is lost.
    let retry = store
        .append_message(text(direct.id, (alice, device), "frozen"))
        .await
        .unwrap();
    let seqs: Vec<u64> = whole_history(&*store, direct.id, alice)
        .await
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, (1..=3).collect::<Vec<_>>());
    assert!(after.message.seq <= 3 && retry.message.seq <= 3);
    // Every announced message is stored.
    while let Ok(event) = events.try_recv() {
        if let Committed::Message { message, .. } = event {
            assert!(seqs.contains(&message.seq));
        }
    }
    store.shutdown().await;
}
