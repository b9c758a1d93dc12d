//! WAL checkpoints off the writer thread.
//!
//! With SQLite's default, the connection whose commit takes the WAL past
//! 1,000 pages copies the WAL into the database file and fsyncs it, inside
//! that `COMMIT`. For Parley that connection is the writer, so every so
//! many commits one group commit took 5–18 ms instead of ~0.3 ms, and every
//! send queued behind it waited too: at 5,000 msg/s these commits were
//! nearly all of the slow ones (BENCHMARKS.md, "Batched search indexing,
//! and checkpoints off the writer").
//!
//! So the writer's connection never checkpoints (`wal_autocheckpoint=0`),
//! and this thread, with a connection of its own, runs `PASSIVE`
//! checkpoints: they copy committed frames while the writer keeps
//! appending, and take no lock the writer waits for. Once a checkpoint has
//! copied everything, the writer's next transaction starts the WAL over
//! from its beginning (SQLite does that by itself), so the file stays
//! small.
//!
//! Under continuous writes that never happens: SQLite starts the WAL over
//! only when a transaction *begins* with everything copied, and the writer
//! has appended more by the time a checkpoint ends, so the WAL would grow
//! without end (an earlier attempt, docs/storage.md, grew it to 300 MB in
//! 8 s). So once this thread has seen more than `wal_restart_pages` in the
//! WAL, the writer checkpoints after its next commit itself
//! ([`Checkpointer::finish_on`]): it copies only what was appended since
//! this thread's last pass, and being the only writer, leaves everything
//! copied, so its next transaction starts the WAL over. (A `RESTART`
//! checkpoint on this thread was tried: it makes the writer wait on
//! SQLite's busy handler, which sleeps in steps of up to 100 ms; p99 at
//! 5,000 msg/s went to 78 ms.)
//!
//! The thread sleeps while nothing is committed: each commit costs the
//! writer one uncontended mutex lock to mark it, and a wake-up only when
//! the thread is waiting; it runs at most one checkpoint per `interval`.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::SqliteOptions;
use super::connection::open_connection;
use super::doorbell::{Doorbell, wait_for_commit};
use crate::error::{StoreError, StoreResult};

/// How the checkpointer paces itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct CheckpointTuning {
    /// At most one checkpoint per this long.
    pub(super) interval: Duration,
    /// Above this many WAL pages, the writer copies the rest itself so the
    /// WAL starts over.
    pub(super) restart_pages: i64,
}

/// What the writer and the checkpointer share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Pages in the WAL at this thread's last checkpoint.
    wal_pages: AtomicI64,
}

#[derive(Default)]
struct State {
    /// Commits since the last checkpoint.
    doorbell: Doorbell,
    /// The writer has stopped: one last checkpoint, then exit.
    stopping: bool,
}

/// The writer's handle on the checkpoint thread. Dropping it stops the
/// thread (after a last checkpoint) and joins it.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    restart_pages: i64,
    thread: Option<JoinHandle<()>>,
}

/// What one passive checkpoint saw.
struct CheckpointOutcome {
    /// Another checkpoint was running (or a reader held frames back); it
    /// is tried again later.
    busy: bool,
    /// Pages in the WAL.
    wal_pages: i64,
}

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` on `conn`: never waits for a lock.
fn passive_checkpoint(conn: &Connection) -> StoreResult<CheckpointOutcome> {
    Ok(conn
        .prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")?
        .query_row([], |row| {
            Ok(CheckpointOutcome {
                busy: row.get::<_, i64>(0)? != 0,
                wal_pages: row.get(1)?,
            })
        })?)
}

impl Checkpointer {
    /// Opens its connection and starts the thread.
    pub(super) fn start(
        path: &Path,
        options: &SqliteOptions,
        tuning: CheckpointTuning,
    ) -> StoreResult<Checkpointer> {
        let conn = open_connection(path, options)?;
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("parley-sqlite-checkpoint".into())
            .spawn({
                let shared = shared.clone();
                move || checkpoint_loop(&conn, &shared, tuning.interval)
            })
            .map_err(|e| StoreError::Internal(format!("cannot start checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            shared,
            restart_pages: tuning.restart_pages,
            thread: Some(thread),
        })
    }

    /// Called by the writer after a commit, on its own connection: once
    /// the WAL has grown past `restart_pages`, copies what this thread has
    /// not yet copied, so the writer's next transaction starts the WAL
    /// over. Costs the writer that remainder and one fsync of the database
    /// file, every `restart_pages` pages at most.
    pub(super) fn finish_on(&self, writer: &Connection) {
        if self.shared.wal_pages.load(Ordering::Relaxed) <= self.restart_pages {
            return;
        }
        // Busy (this thread is mid-checkpoint) returns at once; the next
        // commit tries again.
        match passive_checkpoint(writer) {
            Ok(outcome) if !outcome.busy => self.shared.wal_pages.store(0, Ordering::Relaxed),
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(%err, "WAL checkpoint failed; retrying after the next commit")
            }
        }
    }

    /// Tells the checkpointer the writer committed. Wakes it only if it is
    /// waiting for exactly that.
    pub(super) fn committed(&self) {
        self.lock().doorbell.ring(&self.shared.wake);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Shared {
    /// The state, also after a panic elsewhere poisoned the lock (its
    /// flags stay meaningful).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let mut state = self.lock();
            state.stopping = true;
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: wait for a commit, checkpoint, pause, repeat.
fn checkpoint_loop(conn: &Connection, shared: &Shared, interval: Duration) {
    loop {
        let stopping = {
            let mut state = wait_for_commit(
                &shared.wake,
                shared.lock(),
                |state| &mut state.doorbell,
                |state| state.stopping,
            );
            state.doorbell.clear();
            state.stopping
        };
        run_once(conn, &shared.wal_pages);
        if stopping {
            return;
        }
        pause(shared, interval);
    }
}

/// Waits `interval` between checkpoints, or less if the writer stops
/// meanwhile: then the loop runs its last checkpoint at once. (A plain
/// sleep held shutdown for the whole interval, which an operator may set
/// to minutes.) Commits do not end the pause: that is its point.
fn pause(shared: &Shared, interval: Duration) {
    let state = shared.lock();
    let _ = shared
        .wake
        .wait_timeout_while(state, interval, |state| !state.stopping)
        .unwrap_or_else(PoisonError::into_inner);
}

/// One passive checkpoint; what it saw of the WAL goes to `wal_pages`.
/// A failure is logged and retried after the next commit: the data is
/// safe in the WAL either way.
fn run_once(conn: &Connection, wal_pages: &AtomicI64) {
    match passive_checkpoint(conn) {
        Ok(outcome) => {
            wal_pages.store(outcome.wal_pages, Ordering::Relaxed);
            metrics::gauge!("parley_sqlite_wal_pages").set(outcome.wal_pages as f64);
        }
        Err(err) => tracing::warn!(%err, "WAL checkpoint failed; retrying after the next commit"),
    }
}
