//! SQLite's search index (`sqlite::search_index`): it lives in a file of
//! its own (`parley.db.search`), kept by a thread of its own behind a
//! watermark and a change mark, yet a search finds every acknowledged
//! message, with its current text, whatever was indexed when (before or
//! after an edit or delete, in steps of any size, after a delay, a
//! restart, a crash that left sends unindexed, or an index that no longer
//! fits the database). The message writer never waits for the index. The
//! property test runs random sends, edits, deletes, searches and restarts
//! against a model.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parley_proto::{ConversationId, DeviceId, MessageKind, UserId};
use parley_store::*;
use proptest::prelude::*;
use support::fixtures::{device, group_of, user};

/// Never by time: only searches (and the store's close) index.
const NEVER: Duration = Duration::from_secs(3600);

fn config(dir: &Path, batch: usize, delay: Duration) -> StoreConfig {
    StoreConfig::Sqlite {
        path: dir.join("parley.db"),
        options: sqlite::SqliteOptions {
            search_index_batch: batch,
            search_index_delay: delay,
            ..sqlite::SqliteOptions::default()
        },
    }
}

async fn open(dir: &Path, batch: usize, delay: Duration) -> Arc<dyn Store> {
    parley_store::open(&config(dir, batch, delay))
        .await
        .expect("open store")
        .0
}

fn index_file(dir: &Path) -> PathBuf {
    dir.join("parley.db.search")
}

/// A second connection to the message database, as committed.
fn peek(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("parley.db")).unwrap()
}

/// A second connection to the index file: its marks and entries as
/// committed.
fn peek_index(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(index_file(dir)).unwrap()
}

fn watermark(dir: &Path) -> i64 {
    watermark_in(&peek_index(dir))
}

fn watermark_in(conn: &rusqlite::Connection) -> i64 {
    conn.query_row(
        "SELECT indexed_up_to FROM search_state WHERE id=1",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Waits until the indexer, with no search asking, has indexed every
/// message committed so far. Polled, not timed: the machine may be slow,
/// the outcome may not.
async fn indexed_by_itself(dir: &Path) {
    let newest = newest_id(dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while watermark(dir) < newest {
        assert!(std::time::Instant::now() < deadline, "never indexed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn newest_id(dir: &Path) -> i64 {
    peek(dir)
        .query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// Rows of the index matching `term` (the index itself, not a search).
fn indexed(dir: &Path, term: &str) -> i64 {
    peek_index(dir)
        .query_row(
            "SELECT COUNT(*) FROM message_fts WHERE message_fts MATCH ?1",
            [format!("\"{term}\"")],
            |r| r.get(0),
        )
        .unwrap()
}

/// Change rows (edits, deletes) the message database still keeps.
fn change_rows(dir: &Path) -> i64 {
    peek(dir)
        .query_row("SELECT COUNT(*) FROM search_changes", [], |r| r.get(0))
        .unwrap()
}

struct Room {
    conversation: ConversationId,
    sender: (UserId, DeviceId),
    keys: u64,
}

impl Room {
    async fn new(store: &dyn Store) -> Room {
        let alice = user(store, "alice").await;
        let sender = (alice, device(store, alice).await);
        let bob = user(store, "bob").await;
        let bob = (bob, device(store, bob).await);
        let conversation = group_of(store, "room", &[sender, bob]).await;
        Room {
            conversation,
            sender,
            keys: 0,
        }
    }

    /// Sends `kind` and returns its seq.
    async fn send(
        &mut self,
        store: &dyn Store,
        kind: MessageKind,
        text: &str,
        target: Option<u64>,
    ) -> u64 {
        self.keys += 1;
        store
            .append_message(NewMessage {
                conversation_id: self.conversation,
                sender_id: self.sender.0,
                sender_device_id: self.sender.1,
                client_msg_id: format!("k{}", self.keys),
                kind,
                text: text.into(),
                target_seq: target,
                ..NewMessage::default()
            })
            .await
            .expect("send")
            .message
            .seq
    }

    async fn text(&mut self, store: &dyn Store, text: &str) -> u64 {
        self.send(store, MessageKind::Text, text, None).await
    }

    async fn edit(&mut self, store: &dyn Store, target: u64, text: &str) {
        self.send(store, MessageKind::Edit, text, Some(target))
            .await;
    }

    async fn delete(&mut self, store: &dyn Store, target: u64) {
        self.send(store, MessageKind::Delete, "", Some(target))
            .await;
    }

    /// The seqs `term` finds, newest first.
    async fn search(&self, store: &dyn Store, term: &str) -> Vec<u64> {
        store
            .search(SearchQuery {
                viewer: self.sender.0,
                text: term.into(),
                conversation: None,
                before_seq: None,
                before_id: None,
                limit: 50,
            })
            .await
            .expect("search")
            .0
            .iter()
            .map(|m| m.seq)
            .collect()
    }
}

/// With nothing indexed yet (no batch full, no idle time), a search finds
/// an acknowledged send, an edit's new text and not its old one, and not
/// a deleted message: it indexes first, and edits and deletes of
/// unindexed messages index them before changing their entries.
#[tokio::test]
async fn search_finds_what_was_not_indexed_yet() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000, NEVER).await;
    let store = &*store;
    let mut room = Room::new(store).await;
    let first = room.text(store, "the harbour at dawn").await;
    assert_eq!(watermark(dir.path()), 0, "a send alone indexes nothing");
    assert_eq!(room.search(store, "harbour").await, [first]);
    assert_eq!(watermark(dir.path()), newest_id(dir.path()));

    let second = room.text(store, "lanterns by the river").await;
    room.edit(store, second, "lanterns by the canal").await;
    let third = room.text(store, "the river is high").await;
    room.delete(store, third).await;
    let fourth = room.text(store, "another river picture").await;
    room.edit(store, fourth, "another picture").await;
    assert!(room.search(store, "river").await.is_empty());
    assert_eq!(room.search(store, "canal").await, [second]);
    assert_eq!(room.search(store, "picture").await, [fourth]);
    assert_eq!(
        indexed(dir.path(), "river"),
        0,
        "old and deleted text left the index"
    );
    store.shutdown().await;
}

/// The message writer never touches the index file: with the index
/// locked by another connection (the indexer cannot write), sends are
/// still acknowledged, and once the lock is gone a search finds them.
#[tokio::test]
async fn sends_are_acknowledged_while_the_index_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000, Duration::from_millis(1)).await;
    let store = &*store;
    let mut room = Room::new(store).await;
    let before = room.text(store, "pier before the lock").await;
    assert_eq!(room.search(store, "pier").await, [before]);
    let lock = peek_index(dir.path());
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut seqs = vec![before];
    for n in 0..20 {
        seqs.push(room.text(store, &format!("pier number {n}")).await);
    }
    let edited = seqs[3];
    room.edit(store, edited, "jetty instead").await;
    assert!(
        watermark_in(&lock) < newest_id(dir.path()),
        "nothing indexed under the lock"
    );
    lock.execute_batch("COMMIT").unwrap();
    seqs.retain(|&s| s != edited);
    seqs.reverse();
    assert_eq!(room.search(store, "pier").await, seqs);
    assert_eq!(room.search(store, "jetty").await, [edited]);
    store.shutdown().await;
}

/// After a commit the indexer catches up by itself after
/// `search_index_delay`, with no search asking.
#[tokio::test]
async fn the_indexer_catches_up_after_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000, Duration::from_millis(20)).await;
    let store = &*store;
    let mut room = Room::new(store).await;
    room.text(store, "a quiet evening").await;
    indexed_by_itself(dir.path()).await;
    assert_eq!(indexed(dir.path(), "quiet"), 1);
    store.shutdown().await;
}

/// Edits and deletes leave a change row each in the message database;
/// once the index has applied them, the writer's next commit drops them.
#[tokio::test]
async fn applied_changes_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000, NEVER).await;
    let store = &*store;
    let mut room = Room::new(store).await;
    let first = room.text(store, "a red kite").await;
    let second = room.text(store, "a blue kite").await;
    assert_eq!(room.search(store, "kite").await, [second, first]);
    room.edit(store, first, "a red balloon").await;
    room.delete(store, second).await;
    assert_eq!(change_rows(dir.path()), 2);
    assert!(room.search(store, "kite").await.is_empty());
    assert_eq!(room.search(store, "balloon").await, [first]);
    // The next commit after the catch-up prunes.
    room.text(store, "something else").await;
    assert_eq!(change_rows(dir.path()), 0);
    assert_eq!(indexed(dir.path(), "kite"), 0);
    store.shutdown().await;
}

/// An index that does not fit the database (its marks beyond the newest
/// message: a backup restored under it) or that is missing is built anew.
#[tokio::test]
async fn an_index_that_does_not_fit_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000, NEVER).await;
    let mut room = Room::new(&*store).await;
    let seq = room.text(&*store, "the lighthouse keeper").await;
    assert_eq!(room.search(&*store, "lighthouse").await, [seq]);
    store.shutdown().await;
    drop(store);
    // Entries of messages this database never had, seen by an index
    // that saw further than this database reaches.
    peek_index(dir.path())
        .execute_batch(
            "INSERT INTO message_fts(rowid, text) VALUES(1000000, 'lighthouse ghost');
             UPDATE search_state SET indexed_up_to=1000000, seen_id=1000000;",
        )
        .unwrap();
    let store = open(dir.path(), 1000, NEVER).await;
    assert_eq!(room.search(&*store, "lighthouse").await, [seq]);
    assert_eq!(indexed(dir.path(), "lighthouse"), 1);
    store.shutdown().await;
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = index_file(dir.path()).into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    let store = open(dir.path(), 1000, NEVER).await;
    assert_eq!(room.search(&*store, "keeper").await, [seq]);
    store.shutdown().await;
}

/// A crash can leave committed sends above the watermark (they are
/// indexed in a later transaction of another file). Reopened, the store
/// finds them.
#[tokio::test]
async fn sends_left_unindexed_by_a_crash_are_found_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000, NEVER).await;
    let mut room = Room::new(&*store).await;
    let seqs = [
        room.text(&*store, "postcard from lisbon").await,
        room.text(&*store, "postcard from porto").await,
    ];
    assert_eq!(room.search(&*store, "postcard").await, [seqs[1], seqs[0]]);
    store.shutdown().await;
    drop(store);
    // What a crash between the sends' commit and their indexing leaves.
    peek_index(dir.path())
        .execute_batch(
            "INSERT INTO message_fts(message_fts) VALUES('delete-all');
             UPDATE search_state SET indexed_up_to=0, changes_up_to=0;",
        )
        .unwrap();
    assert_eq!(indexed(dir.path(), "postcard"), 0);
    let store = open(dir.path(), 1000, NEVER).await;
    assert_eq!(room.search(&*store, "postcard").await, [seqs[1], seqs[0]]);
    assert_eq!(room.search(&*store, "lisbon").await, [seqs[0]]);
    store.shutdown().await;
}

/// Closing the store does not wait for the index (it stops between
/// steps); what was pending is indexed once the store is opened again.
#[tokio::test]
async fn what_a_stop_left_unindexed_is_indexed_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1000, NEVER).await;
    let mut room = Room::new(&*store).await;
    room.text(&*store, "last words").await;
    store.shutdown().await;
    drop(store);
    assert!(watermark(dir.path()) < newest_id(dir.path()));
    let store = open(dir.path(), 1000, Duration::from_millis(1)).await;
    indexed_by_itself(dir.path()).await;
    assert_eq!(indexed(dir.path(), "words"), 1);
    store.shutdown().await;
}

/// Two stores on one database (SQLite allows two processes on a file):
/// both indexers write the one index file, and each step lands once, so
/// searches through either find every message exactly once and the index
/// holds one entry per message.
#[tokio::test]
async fn two_stores_on_one_file_index_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 3, Duration::from_millis(1)).await;
    let mut room = Room::new(&*first).await;
    let second = open(dir.path(), 2, Duration::from_millis(1)).await;
    let mut seqs = Vec::new();
    for n in 0..40 {
        let store = if n % 2 == 0 { &*first } else { &*second };
        seqs.push(room.text(store, &format!("gull {n}")).await);
        if n % 7 == 0 {
            let (a, b) = (room.search(&*first, "gull"), room.search(&*second, "gull"));
            let (a, b) = tokio::join!(a, b);
            assert_eq!(a.len(), seqs.len());
            assert_eq!(b.len(), seqs.len());
        }
    }
    seqs.reverse();
    assert_eq!(room.search(&*second, "gull").await, seqs);
    assert_eq!(room.search(&*first, "gull").await, seqs);
    assert_eq!(indexed(dir.path(), "gull"), 40);
    first.shutdown().await;
    second.shutdown().await;
}

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    Edit(usize, usize),
    Delete(usize),
    Search(usize),
    Restart,
}

/// Texts made of the words searched for, so that matches overlap.
const WORDS: [&str; 4] = ["amber", "birch", "cedar", "delta"];

fn text_of(mask: usize) -> String {
    let words: Vec<&str> = WORDS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, w)| *w)
        .collect();
    if words.is_empty() {
        "nothing here".into()
    } else {
        words.join(" ")
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..16).prop_map(Op::Send),
        2 => (0usize..64, 0usize..16).prop_map(|(i, m)| Op::Edit(i, m)),
        1 => (0usize..64).prop_map(Op::Delete),
        2 => (0usize..WORDS.len()).prop_map(Op::Search),
        1 => Just(Op::Restart),
    ]
}

/// Runs `ops` on a store whose indexer works in steps of `batch` and
/// checks every search, and at the end every word, against the model:
/// the seqs whose current text holds the word, newest first.
async fn run(batch: usize, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), batch, NEVER).await;
    let mut room = Room::new(&*store).await;
    // (seq, current text) of every message sent; None once deleted.
    let mut model: Vec<(u64, Option<String>)> = Vec::new();
    let expected = |model: &[(u64, Option<String>)], word: &str| -> Vec<u64> {
        let mut seqs: Vec<u64> = model
            .iter()
            .filter(|(_, text)| text.as_deref().is_some_and(|t| t.contains(word)))
            .map(|(seq, _)| *seq)
            .collect();
        seqs.reverse();
        seqs
    };
    for op in ops {
        match op {
            Op::Send(mask) => {
                let text = text_of(mask);
                let seq = room.text(&*store, &text).await;
                model.push((seq, Some(text)));
            }
            Op::Edit(i, mask) if !model.is_empty() => {
                let i = i % model.len();
                if model[i].1.is_some() {
                    let text = text_of(mask);
                    room.edit(&*store, model[i].0, &text).await;
                    model[i].1 = Some(text);
                }
            }
            Op::Delete(i) if !model.is_empty() => {
                let i = i % model.len();
                if model[i].1.is_some() {
                    room.delete(&*store, model[i].0).await;
                    model[i].1 = None;
                }
            }
            Op::Search(w) => {
                assert_eq!(
                    room.search(&*store, WORDS[w]).await,
                    expected(&model, WORDS[w]),
                    "search for {}",
                    WORDS[w]
                );
            }
            Op::Restart => {
                store.shutdown().await;
                store = open(dir.path(), batch, NEVER).await;
            }
            Op::Edit(..) | Op::Delete(_) => {}
        }
    }
    for word in WORDS {
        assert_eq!(room.search(&*store, word).await, expected(&model, word));
        // After a search the index alone holds exactly the model.
        assert_eq!(
            indexed(dir.path(), word),
            expected(&model, word).len() as i64,
            "index rows for {word}"
        );
    }
    store.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn search_matches_the_model_whenever_indexing_happens(
        batch in 1usize..6,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(batch, ops));
    }
}
