//! SQLite's WAL checkpoints run beside the writer (`sqlite::checkpointer`):
//! the writer's commits never checkpoint, yet what it commits reaches the
//! database file, and the WAL stays bounded even while the writer never
//! pauses (where a checkpointer alone lets it grow without end).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parley_proto::{ConversationId, DeviceId, MessageKind, UserId};
use parley_store::*;
use support::fixtures::{device, group_of, user};

async fn open(dir: &Path, interval: Duration, restart_pages: u32) -> Arc<dyn Store> {
    let config = StoreConfig::Sqlite {
        path: dir.join("parley.db"),
        options: sqlite::SqliteOptions {
            checkpoint_interval: interval,
            wal_restart_pages: restart_pages,
            ..sqlite::SqliteOptions::default()
        },
    };
    parley_store::open(&config).await.expect("open store").0
}

/// A group of two and its sender.
async fn room(store: &dyn Store) -> (ConversationId, UserId, DeviceId) {
    let alice = user(store, "alice").await;
    let alice_device = device(store, alice).await;
    let bob = user(store, "bob").await;
    let bob_device = device(store, bob).await;
    let conversation = group_of(store, "room", &[(alice, alice_device), (bob, bob_device)]).await;
    (conversation, alice, alice_device)
}

async fn send(store: &dyn Store, room: (ConversationId, UserId, DeviceId), key: String) {
    store
        .append_message(NewMessage {
            conversation_id: room.0,
            sender_id: room.1,
            sender_device_id: room.2,
            client_msg_id: key,
            kind: MessageKind::Text,
            text: "a line long enough to fill a few pages of the write-ahead log".into(),
            ..NewMessage::default()
        })
        .await
        .expect("send");
}

fn wal_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("parley.db-wal")).map_or(0, |m| m.len())
}

/// Sends committed while nobody else touches the file end up in the
/// database file itself: a copy of `parley.db` without its WAL holds them.
/// The writer never checkpoints (`wal_autocheckpoint=0`), so only the
/// checkpoint thread can have put them there.
#[tokio::test]
async fn commits_reach_the_database_file_without_the_writer_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Duration::from_millis(5), 4096).await;
    let room = room(&*store).await;
    for i in 0..200 {
        send(&*store, room, format!("k{i}")).await;
    }
    let copy = dir.path().join("copy.db");
    let mut in_file = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::fs::copy(dir.path().join("parley.db"), &copy).unwrap();
        let _ = std::fs::remove_file(dir.path().join("copy.db-wal"));
        in_file = rusqlite::Connection::open(&copy)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM messages WHERE kind='text'", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap();
        if in_file == 200 {
            break;
        }
    }
    assert_eq!(in_file, 200, "the database file alone holds every commit");
    store.shutdown().await;
}

/// Fifty senders keep the writer busy without a pause for thousands of
/// sends. A passive checkpoint then never finds the WAL fully copied
/// when the writer begins its next transaction, so SQLite never starts
/// the WAL over; the writer copying the remainder itself past
/// `wal_restart_pages` is what keeps it bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_while_the_writer_never_pauses() {
    const SENDERS: usize = 50;
    const SENDS_EACH: usize = 120;
    const RESTART_PAGES: u32 = 64;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Duration::from_millis(2), RESTART_PAGES).await;
    let room = room(&*store).await;

    let done = Arc::new(AtomicBool::new(false));
    let largest = Arc::new(AtomicU64::new(0));
    let watcher = tokio::spawn({
        let (done, largest, dir) = (done.clone(), largest.clone(), dir.path().to_owned());
        async move {
            while !done.load(Ordering::Relaxed) {
                largest.fetch_max(wal_bytes(&dir), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..SENDS_EACH {
                    send(&*store, room, format!("s{s}-{i}")).await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    // Every send was committed (nothing was lost to a restart of the WAL).
    let count: i64 = rusqlite::Connection::open(dir.path().join("parley.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM messages WHERE kind='text'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(count, (SENDERS * SENDS_EACH) as i64);
    // 64 pages are 256 KiB; a restart happens within a commit or two of
    // passing them. Without it this run's WAL passes 20 MiB.
    let largest = largest.load(Ordering::Relaxed);
    assert!(
        largest < 8 << 20,
        "the WAL grew to {largest} bytes with wal_restart_pages = {RESTART_PAGES}"
    );
    store.shutdown().await;
}

/// Shutdown does not wait out the pause between checkpoints: with an
/// hour-long interval it still returns, and nothing committed is lost.
/// The 60 s bound only makes a hang fail the test instead of stalling the
/// suite for an hour (it failed so with the old plain sleep).
#[tokio::test]
async fn shutdown_does_not_wait_for_the_checkpoint_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Duration::from_secs(3600), 4096).await;
    let room = room(&*store).await;
    // The setup's first commit woke the checkpoint thread; after its one
    // checkpoint it pauses for the hour, so these sends commit during
    // the pause.
    send(&*store, room, "before".into()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&*store, room, "during the pause".into()).await;
    // On a thread of its own with its own runtime: a hung shutdown then
    // fails this test instead of holding the test runtime's exit.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(store.shutdown());
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("shutdown returned while the checkpoint thread was pausing");
    let copy = dir.path().join("copy.db");
    std::fs::copy(dir.path().join("parley.db"), &copy).unwrap();
    let in_file: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM messages WHERE kind='text'", [], |r| {
            r.get(0)
        })
        .unwrap();
    // Whichever copied them (the thread's last checkpoint, or SQLite's
    // own when connections close), the file holds both after shutdown.
    assert_eq!(in_file, 2, "shutdown left every send in the database file");
}
