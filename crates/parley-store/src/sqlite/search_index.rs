//! The search index in a database file of its own, kept by a thread of
//! its own (SQLite).
//!
//! Why not in the message database: FTS5 merges its segments as the index
//! grows, and a merge of a grown level takes hundreds of milliseconds
//! (up to ~0.5 s measured at 5,000 msg/s after a few minutes). Inside the
//! message database that merge held the one writer, and every send queued
//! behind it: indexed in each send's commit, in batches, or in slices of
//! its own, p99 per minute grew from 6 to 100-500 ms over a 5-minute run
//! (BENCHMARKS.md, "Session 10" and "Session 11"). SQLite has one writer
//! per database file, so the index lives in another file,
//! `<database>.search`, written only by the indexer thread here: a merge of
//! any length holds no lock the message writer takes, and writes no page
//! to its WAL.
//!
//! What the message database keeps for the index (schema v11): nothing on
//! a send (a new message is found by its id, and ids only grow), and one
//! `search_changes` row (autoincrement `seq`, `message_id`) for every
//! write that changes the searchable text of an existing message (an edit,
//! a delete, an erasure), in that write's own transaction.
//!
//! The index file holds `message_fts` (contentless FTS5, trigram, secure
//! delete) and `search_state`: every message with `id <= indexed_up_to`
//! is in the index exactly as its row read when the index last looked,
//! and every change with `seq <= changes_up_to` has been applied; so the
//! index is exactly the messages' current text once both have reached
//! the message database's newest id and change. The thread catches up
//! ([`catch_up`]) in steps of at most `batch` messages and changes: it
//! reads what is new in one short read transaction on the message database
//! (no snapshot held while FTS5 merges), then writes it and moves both
//! marks in one transaction on the index file (`synchronous=FULL` always:
//! the writer prunes `search_changes` up to the durable mark).
//!
//! When: after commits, at most once per `delay` (sends gather into
//! larger, fewer segments), at start (what a crash, a stop or an older
//! version left), and at once when a search asks: a search using the
//! index first checks whether it is behind the message database
//! ([`is_behind`]) and if so waits for a round that catches up with what
//! was committed when it began, so every acknowledged message is found
//! with its current text. A stop ends the thread between steps, with no
//! last catch-up, so it never waits for a backlog.
//!
//! The index is derived data. A missing file, an unknown version, or an
//! index that saw more than the message database holds (a backup restored
//! under it, commits lost at `synchronous=NORMAL`) is emptied and built
//! anew from the messages, checked and reset in one write transaction of
//! the file ([`open_index`]; never unlinked: another process may have it
//! open). A backup (`VACUUM INTO`) copies only the message database. After
//! the upgrade to schema v11 the first searches wait for the index to be
//! built.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::SqliteOptions;
use super::connection::{index_path, open_connection};
use super::doorbell::{Doorbell, wait_for_commit};
use crate::domain::search::SEARCHED_KINDS_SQL;
use crate::error::{StoreError, StoreResult};

/// The index file's schema version (`PRAGMA user_version`).
const INDEX_VERSION: i64 = 2;

/// The index file's schema; its marks start at nothing indexed. Besides
/// the marks, `search_state` keeps the newest message id and change seq
/// the last step's snapshot saw (`seen_id`, `seen_change`): a step may
/// read past its marks (its changes cut at `batch`), and an index that saw
/// more than the message database now holds (it lost commits to a power
/// loss at `synchronous=NORMAL`, or was replaced by a backup) may hold
/// entries the database no longer has, so it is rebuilt (`beyond`).
const INDEX_SCHEMA: &str = "
DROP TABLE IF EXISTS message_fts;
DROP TABLE IF EXISTS search_state;
CREATE TABLE search_state(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_up_to INTEGER NOT NULL,
    changes_up_to INTEGER NOT NULL,
    seen_id INTEGER NOT NULL,
    seen_change INTEGER NOT NULL
);
INSERT INTO search_state(id, indexed_up_to, changes_up_to, seen_id, seen_change)
    VALUES(1, 0, 0, 0, 0);
CREATE VIRTUAL TABLE message_fts USING fts5(text, content='', contentless_delete=1, tokenize='trigram');
INSERT INTO message_fts(message_fts, rank) VALUES('secure-delete', 1);
PRAGMA user_version = 2;
";

/// Records, in the caller's (writer) transaction, that the searchable
/// text of message `id` changed: the indexer applies it later.
pub(super) fn changed(conn: &Connection, id: i64) -> StoreResult<()> {
    conn.prepare_cached("INSERT INTO search_changes(message_id) VALUES(?1)")?
        .execute([id])?;
    Ok(())
}

/// Records that every searchable, not yet deleted message of `sender`
/// changes (erasure), before the caller blanks them.
pub(super) fn sender_changed(conn: &Connection, sender: i64) -> StoreResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO search_changes(message_id)
         SELECT id FROM messages WHERE sender_id=?1 AND kind IN ({SEARCHED_KINDS_SQL}) AND deleted=0"
    ))?
    .execute([sender])?;
    Ok(())
}

/// Drops the change rows the index has durably applied (the writer calls
/// it in one of its transactions).
pub(super) fn prune_changes(conn: &Connection, applied: i64) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM search_changes WHERE seq <= ?1")?
        .execute([applied])?;
    Ok(())
}

/// Whether the index (attached as `search`) is behind the message
/// database: a message above its watermark or a change not applied. One
/// statement, so one snapshot of both.
pub(super) fn is_behind(conn: &Connection) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM main.messages) > s.indexed_up_to
                 OR (SELECT COALESCE(MAX(seq), 0) FROM main.search_changes) > s.changes_up_to
             FROM search.search_state s WHERE s.id=1",
        )?
        .query_row([], |r| r.get(0))?)
}

/// Opens the index file for `database` (whose schema `messages` has
/// migrated), creating it, or building it anew (empty: the indexer then
/// indexes every message) when it does not fit this message database.
pub(super) fn open_index(
    database: &Path,
    options: &SqliteOptions,
    messages: &Connection,
) -> StoreResult<Connection> {
    let path = index_path(database);
    // The writer prunes change rows up to the durable mark: the mark must
    // survive a power loss, whatever the message database's setting.
    let options = SqliteOptions {
        synchronous_full: true,
        ..options.clone()
    };
    let conn = open_connection(&path, &options)?;
    // Checked and (re)built inside one write transaction of the file
    // itself, never by unlinking it: another process may have it open,
    // and two may open it at once.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let built = build_if_unfit(&conn, messages);
    match built {
        Ok(rebuilt) => {
            conn.execute_batch("COMMIT")?;
            if let Some(reason) = rebuilt {
                tracing::warn!(%reason, path = %path.display(), "rebuilt the search index");
            }
            Ok(conn)
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// Empties the index (its schema anew, nothing indexed) when it is new or
/// does not fit `messages`; returns why it was not new, if it was unfit.
fn build_if_unfit(index: &Connection, messages: &Connection) -> StoreResult<Option<String>> {
    let version: i64 = index.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let unfit = if version == 0 {
        None
    } else if version != INDEX_VERSION {
        Some(format!(
            "index version {version}, this binary knows {INDEX_VERSION}"
        ))
    } else {
        beyond(index, messages)?
    };
    if version == 0 || unfit.is_some() {
        index.execute_batch(INDEX_SCHEMA)?;
    }
    Ok(unfit)
}

/// Why the index cannot belong to `messages` (its last step saw a newer
/// message or change than the database holds: the database lost commits,
/// or was replaced, say by a restored backup), or `None`.
fn beyond(index: &Connection, messages: &Connection) -> StoreResult<Option<String>> {
    let (seen_id, seen_change): (i64, i64) = index.query_row(
        "SELECT seen_id, seen_change FROM search_state WHERE id=1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (newest_id, newest_change) = newest(messages)?;
    Ok(
        (seen_id > newest_id || seen_change > newest_change).then(|| {
            format!(
                "the index saw message {seen_id} and change {seen_change}, \
                 the database holds only {newest_id} and {newest_change}"
            )
        }),
    )
}

/// The newest message id and the highest change seq ever given
/// (AUTOINCREMENT keeps it, pruned or not), as `messages` reads now.
fn newest(messages: &Connection) -> StoreResult<(i64, i64)> {
    Ok(messages
        .prepare_cached(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages),
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name='search_changes'), 0)",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// The index's watermark and applied-change mark.
fn marks(index: &Connection) -> StoreResult<(i64, i64)> {
    Ok(index
        .prepare_cached("SELECT indexed_up_to, changes_up_to FROM search_state WHERE id=1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// One step of catching up, read from the message database.
#[derive(Debug)]
struct Step {
    /// Messages above the old watermark, up to `indexed_up_to`, that are
    /// searchable: (id, text).
    new: Vec<(i64, String)>,
    /// Messages at or below the old watermark whose text changed: (id,
    /// current text if still searchable).
    changed: Vec<(i64, Option<String>)>,
    /// The marks this step starts from ...
    from: (i64, i64),
    /// ... and moves them to.
    indexed_up_to: i64,
    changes_up_to: i64,
    /// The newest message id and change seq its snapshot saw.
    seen: (i64, i64),
}

/// Reads the next step in one read transaction of `messages`, or `None`
/// when the index is caught up.
fn read_step(index: &Connection, messages: &Connection, batch: i64) -> StoreResult<Option<Step>> {
    let (watermark, applied) = marks(index)?;
    messages.execute_batch("BEGIN")?;
    let step = read_step_in(messages, watermark, applied, batch);
    // A read transaction: nothing to keep or undo.
    messages.execute_batch("COMMIT")?;
    let step = step?;
    Ok((step.indexed_up_to > watermark || step.changes_up_to > applied).then_some(step))
}

fn read_step_in(
    messages: &Connection,
    watermark: i64,
    applied: i64,
    batch: i64,
) -> StoreResult<Step> {
    let seen = newest(messages)?;
    let indexed_up_to = seen.0.min(watermark.saturating_add(batch)).max(watermark);
    let new = messages
        .prepare_cached(&format!(
            "SELECT id, text FROM messages
             WHERE id > ?1 AND id <= ?2 AND kind IN ({SEARCHED_KINDS_SQL})
               AND deleted=0 AND text IS NOT NULL ORDER BY id"
        ))?
        .query_map([watermark, indexed_up_to], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(i64, String)>>>()?;
    let changes = messages
        .prepare_cached(
            "SELECT seq, message_id FROM search_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?
        .query_map([applied, batch], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
    let changes_up_to = changes.last().map_or(applied, |&(seq, _)| seq);
    // Changes of messages above the old watermark need nothing: they are
    // indexed (now or in a later step) as their row then reads.
    let changed_ids: BTreeSet<i64> = changes
        .into_iter()
        .map(|(_, id)| id)
        .filter(|&id| id <= watermark)
        .collect();
    let mut current = messages.prepare_cached(&format!(
        "SELECT text FROM messages WHERE id=?1 AND kind IN ({SEARCHED_KINDS_SQL}) AND deleted=0"
    ))?;
    let mut changed = Vec::with_capacity(changed_ids.len());
    for id in changed_ids {
        let text: Option<String> = current.query_row([id], |r| r.get(0)).optional()?.flatten();
        changed.push((id, text));
    }
    Ok(Step {
        new,
        changed,
        from: (watermark, applied),
        indexed_up_to,
        changes_up_to,
        seen,
    })
}

/// Writes `step` to the index and moves both marks, in one transaction.
/// Returns false, writing nothing, when the marks moved since the step
/// was read: another process's indexer (two processes may open one
/// database) wrote it first, and the step is read again.
fn write_step(index: &Connection, step: &Step) -> StoreResult<bool> {
    index.execute_batch("BEGIN IMMEDIATE")?;
    let written = match marks(index) {
        Ok(marks) if marks == step.from => write_step_in(index, step).map(|()| true),
        Ok(_) => Ok(false),
        Err(err) => Err(err),
    };
    let ended = match written {
        Ok(true) => index.execute_batch("COMMIT"),
        Ok(false) => index.execute_batch("ROLLBACK"),
        Err(err) => {
            let _ = index.execute_batch("ROLLBACK");
            return Err(err);
        }
    };
    if let Err(err) = ended {
        // A failed COMMIT (disk full, I/O) can leave the transaction
        // open; every later BEGIN would fail with it.
        if !index.is_autocommit() {
            let _ = index.execute_batch("ROLLBACK");
        }
        return Err(err.into());
    }
    written
}

fn write_step_in(index: &Connection, step: &Step) -> StoreResult<()> {
    let mut present =
        index.prepare_cached("SELECT EXISTS(SELECT 1 FROM message_fts_docsize WHERE id=?1)")?;
    let mut remove = index.prepare_cached("DELETE FROM message_fts WHERE rowid=?1")?;
    let mut insert = index.prepare_cached("INSERT INTO message_fts(rowid, text) VALUES(?1, ?2)")?;
    for (id, text) in &step.changed {
        // Only entries that exist are deleted: a contentless-delete table
        // would otherwise count a row it never held out of its totals.
        if present.query_row([id], |r| r.get::<_, bool>(0))? {
            remove.execute([id])?;
        }
        if let Some(text) = text {
            insert.execute(params![id, text])?;
        }
    }
    for (id, text) in &step.new {
        insert.execute(params![id, text])?;
    }
    index
        .prepare_cached(
            "UPDATE search_state SET indexed_up_to=?1, changes_up_to=?2, seen_id=?3, seen_change=?4
             WHERE id=1",
        )?
        .execute([
            step.indexed_up_to,
            step.changes_up_to,
            step.seen.0,
            step.seen.1,
        ])?;
    Ok(())
}

/// How a catch-up ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Round {
    /// The index holds everything committed when the round began.
    Reached,
    /// The store is closing; the round stopped between steps (the next
    /// open goes on from the marks).
    Stopped,
}

/// Catches the index up with the message database as committed when the
/// round begins (not with what is committed meanwhile: a search waits for
/// the backlog it found, not for every send after it), in steps of at
/// most `batch` messages and changes, checking `stop` between steps.
/// Publishes the durable change mark to `applied`.
fn catch_up(
    index: &Connection,
    messages: &Connection,
    batch: i64,
    applied: &AtomicI64,
    stop: impl Fn() -> bool,
) -> StoreResult<Round> {
    let (target_id, target_change) = newest(messages)?;
    loop {
        let (watermark, changes) = marks(index)?;
        if watermark >= target_id && changes >= target_change {
            return Ok(Round::Reached);
        }
        if stop() {
            return Ok(Round::Stopped);
        }
        let Some(step) = read_step(index, messages, batch)? else {
            // Nothing left (the change rows above the mark were pruned
            // or never written).
            return Ok(Round::Reached);
        };
        if write_step(index, &step)? {
            applied.store(step.changes_up_to, Ordering::Release);
        }
    }
}

/// How the indexer paces itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct IndexTuning {
    /// At most this many messages (and changes) per index transaction.
    pub(super) batch: usize,
    /// After a commit, wait this long before catching up (unless a search
    /// asks), so sends gather into one transaction.
    pub(super) delay: Duration,
}

/// What the store, the writer and the indexer thread share.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// `changes_up_to` as last committed to the index file: the writer
    /// prunes `search_changes` up to it.
    applied: AtomicI64,
}

#[derive(Default)]
struct State {
    /// Commits since the last catch-up began.
    doorbell: Doorbell,
    /// Searches waiting for a catch-up to finish.
    searches: Vec<oneshot::Sender<StoreResult<()>>>,
    /// The store is closing (or the thread ended): exit between steps.
    stopping: bool,
}

impl Shared {
    /// The state, also after a panic elsewhere poisoned the lock.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer's handle on the indexer.
#[derive(Clone)]
pub(super) struct IndexerHandle {
    shared: Arc<Shared>,
}

impl IndexerHandle {
    /// Tells the indexer the writer committed. Wakes it only if it is
    /// waiting for exactly that (one uncontended lock per commit).
    pub(super) fn committed(&self) {
        self.shared.lock().doorbell.ring(&self.shared.wake);
    }

    /// The change mark the index has durably applied.
    pub(super) fn applied(&self) -> i64 {
        self.shared.applied.load(Ordering::Acquire)
    }
}

/// The store's handle on the indexer thread: [`SearchIndexer::stop`]
/// stops it and joins it.
pub(super) struct SearchIndexer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl SearchIndexer {
    /// Starts the thread on `index` (from [`open_index`]) with a read
    /// connection of its own to `database`. Its first catch-up indexes
    /// what an earlier run left.
    pub(super) fn start(
        database: &Path,
        options: &SqliteOptions,
        index: Connection,
        tuning: IndexTuning,
    ) -> StoreResult<SearchIndexer> {
        let messages = open_connection(database, options)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                doorbell: Doorbell::rung(),
                ..State::default()
            }),
            wake: Condvar::new(),
            applied: AtomicI64::new(marks(&index)?.1),
        });
        let thread = std::thread::Builder::new()
            .name("parley-sqlite-search".into())
            .spawn({
                let shared = shared.clone();
                move || index_loop(&index, &messages, &shared, tuning)
            })
            .map_err(|e| StoreError::Internal(format!("cannot start search indexer: {e}")))?;
        Ok(SearchIndexer {
            shared,
            thread: Some(thread),
        })
    }

    /// The writer's handle.
    pub(super) fn handle(&self) -> IndexerHandle {
        IndexerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Asks for a catch-up now; resolves when one that began after this
    /// call has finished.
    pub(super) fn catch_up_now(
        &self,
    ) -> impl std::future::Future<Output = StoreResult<()>> + Send + 'static {
        let (reply, done) = oneshot::channel();
        let queued = {
            let mut state = self.shared.lock();
            if state.stopping {
                Err(StoreError::Unavailable("store is shutting down".into()))
            } else {
                state.searches.push(reply);
                self.shared.wake.notify_one();
                Ok(())
            }
        };
        async move {
            queued?;
            done.await.map_err(|_| stopped())?
        }
    }
}

impl SearchIndexer {
    /// Stops the thread (between steps: no last catch-up) and waits for
    /// it (blocking: the store calls it on the blocking pool).
    pub(super) fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn signal_stop(&self) {
        let mut state = self.shared.lock();
        state.stopping = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for SearchIndexer {
    /// A store dropped without `shutdown` still stops the thread, but does
    /// not wait for it: the drop may run on the async runtime.
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// The thread: wait for a commit or a search, let sends gather for
/// `delay` (unless a search waits), catch up, answer the searches. A stop
/// ends it between steps, with no last catch-up: a stop never waits for a
/// backlog (after an upgrade, the whole index), and the next open goes on
/// from the marks.
fn index_loop(index: &Connection, messages: &Connection, shared: &Shared, tuning: IndexTuning) {
    // However the loop ends (a panic included), no search waits forever.
    let _farewell = Farewell(shared);
    let seconds = metrics::histogram!("parley_search_index_seconds");
    let batch = i64::try_from(tuning.batch).unwrap_or(i64::MAX).max(1);
    loop {
        let searches = {
            let mut state = wait_for_commit(
                &shared.wake,
                shared.lock(),
                |state| &mut state.doorbell,
                |state| !state.searches.is_empty() || state.stopping,
            );
            if state.searches.is_empty() && !state.stopping {
                state = shared
                    .wake
                    .wait_timeout_while(state, tuning.delay, |state| {
                        state.searches.is_empty() && !state.stopping
                    })
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if state.stopping {
                return;
            }
            state.doorbell.clear();
            std::mem::take(&mut state.searches)
        };
        let started = Instant::now();
        let outcome = catch_up(index, messages, batch, &shared.applied, || {
            shared.lock().stopping
        });
        seconds.record(started.elapsed().as_secs_f64());
        let answer = match outcome {
            Ok(Round::Reached) => Ok(()),
            Ok(Round::Stopped) => Err(stopped()),
            Err(err) => {
                // Nothing is lost: the marks did not move. The thread
                // rings its own doorbell, so it tries again after `delay`.
                tracing::warn!(%err, "could not catch the search index up; retrying later");
                shared.lock().doorbell.ring(&shared.wake);
                Err(err)
            }
        };
        for search in searches {
            let _ = search.send(answer.clone());
        }
    }
}

/// What a search hears when the indexer has stopped.
fn stopped() -> StoreError {
    StoreError::Unavailable("the search indexer stopped".into())
}

/// Marks the indexer stopped and answers the searches still waiting when
/// its thread ends, however it ends.
struct Farewell<'a>(&'a Shared);

impl Drop for Farewell<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.stopping = true;
        for search in state.searches.drain(..) {
            let _ = search.send(Err(stopped()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema;
    use super::*;

    /// A message database with `texts` as messages 1.., and its index.
    fn databases(dir: &Path, texts: &[&str]) -> (Connection, Connection) {
        let path = dir.join("parley.db");
        let mut messages = open_connection(&path, &SqliteOptions::default()).unwrap();
        schema::migrate(&mut messages).unwrap();
        for (n, text) in texts.iter().enumerate() {
            messages
                .execute(
                    "INSERT INTO messages(conversation_id, seq, sender_id, sent_at_ms, kind, text)
                     VALUES(1, ?1, 1, 1, 'text', ?2)",
                    params![n as i64 + 1, text],
                )
                .unwrap();
        }
        let index = open_index(&path, &SqliteOptions::default(), &messages).unwrap();
        (messages, index)
    }

    fn entries(index: &Connection, term: &str) -> i64 {
        index
            .query_row(
                "SELECT COUNT(*) FROM message_fts WHERE message_fts MATCH ?1",
                [format!("\"{term}\"")],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Two indexers (two processes on one database) may read the same
    /// step; the one that writes second finds the marks moved and writes
    /// nothing, so every message is indexed once.
    #[test]
    fn a_step_read_before_another_indexer_wrote_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let (messages, index) = databases(dir.path(), &["otter one", "otter two"]);
        let other = open_connection(
            &index_path(&dir.path().join("parley.db")),
            &SqliteOptions::default(),
        )
        .unwrap();
        let mine = read_step(&index, &messages, 100).unwrap().expect("behind");
        let theirs = read_step(&other, &messages, 100).unwrap().expect("behind");
        assert!(write_step(&other, &theirs).unwrap());
        assert!(!write_step(&index, &mine).unwrap(), "the marks moved");
        assert_eq!(entries(&index, "otter"), 2);
        assert!(read_step(&index, &messages, 100).unwrap().is_none());
    }

    /// Steps hold at most `batch` messages, and catching up takes as many
    /// steps as it needs; a change to a message at or below the watermark
    /// replaces its entry.
    #[test]
    fn catching_up_in_steps_indexes_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let texts: Vec<String> = (0..7).map(|n| format!("heron {n}")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (messages, index) = databases(dir.path(), &texts);
        let step = read_step(&index, &messages, 3).unwrap().unwrap();
        assert_eq!(step.new.len(), 3);
        let applied = AtomicI64::new(0);
        let never = || false;
        assert_eq!(
            catch_up(&index, &messages, 3, &applied, never).unwrap(),
            Round::Reached
        );
        assert_eq!(entries(&index, "heron"), 7);
        messages
            .execute_batch(
                "UPDATE messages SET text='egret' WHERE id=2;
                 INSERT INTO search_changes(message_id) VALUES(2);",
            )
            .unwrap();
        assert_eq!(
            catch_up(&index, &messages, 3, &applied, never).unwrap(),
            Round::Reached
        );
        assert_eq!(entries(&index, "heron"), 6);
        assert_eq!(entries(&index, "egret"), 1);
        assert_eq!(applied.load(Ordering::Acquire), 1);
    }

    /// A stop ends a round between steps: what was written stays, with
    /// its marks, and the rest is left for the next round.
    #[test]
    fn a_stop_ends_a_round_between_steps() {
        let dir = tempfile::tempdir().unwrap();
        let (messages, index) = databases(dir.path(), &["wren a", "wren b", "wren c"]);
        let asked = std::cell::Cell::new(0);
        let stop_after_one_step = || {
            asked.set(asked.get() + 1);
            asked.get() > 1
        };
        let applied = AtomicI64::new(0);
        assert_eq!(
            catch_up(&index, &messages, 1, &applied, stop_after_one_step).unwrap(),
            Round::Stopped
        );
        assert_eq!(marks(&index).unwrap().0, 1);
        assert_eq!(entries(&index, "wren"), 1);
    }

    /// An index whose last step saw a newer message or change than the
    /// database holds (the database lost commits, or is an older backup)
    /// is emptied at open, even when its marks are not beyond it.
    #[test]
    fn an_index_that_saw_more_than_the_database_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let (messages, index) = databases(dir.path(), &["finch"]);
        let applied = AtomicI64::new(0);
        catch_up(&index, &messages, 10, &applied, || false).unwrap();
        assert_eq!(entries(&index, "finch"), 1);
        index
            .execute("UPDATE search_state SET seen_change=5 WHERE id=1", [])
            .unwrap();
        drop(index);
        let index = open_index(
            &dir.path().join("parley.db"),
            &SqliteOptions::default(),
            &messages,
        )
        .unwrap();
        assert_eq!(marks(&index).unwrap(), (0, 0));
        assert_eq!(entries(&index, "finch"), 0);
    }
}
