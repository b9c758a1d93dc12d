//! The SQLite writer thread: group commit. It takes every job waiting in
//! its queue, runs them in one transaction (sends on the hot path against
//! the [`WriterCache`], everything else in its own savepoint), commits once,
//! and only then has the jobs answered and their changes announced (by the
//! [`Announcer`]). Sends nobody waits for any more are skipped
//! (`domain::messages::abandoned`).
//! It never touches the search index, which lives in a file of its own:
//! it tells the indexer that it committed (`search_index`), and prunes the
//! change rows the index has applied. It never checkpoints the WAL
//! itself either: it tells the [`Checkpointer`] thread that it committed.

use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::announcer::{Announcer, Settlement};
use super::checkpointer::Checkpointer;
use super::messages::{AppendFailure, append_hot};
use super::search_index::{self, IndexerHandle};
use super::writer_cache::WriterCache;
use crate::domain::messages::abandoned;
use crate::error::{StoreError, StoreResult};
use crate::model::{Appended, Committed, NewMessage};

/// Called once the transaction a job ran in has committed (or failed).
pub(super) type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A general unit of work for the writer thread. `None` means the
/// transaction could not even begin (or the batch is already lost); the job
/// must report failure without touching the database.
pub(super) type Job =
    Box<dyn FnOnce(Option<&Connection>, &mut Vec<Committed>) -> Completion + Send>;

/// What the writer thread is asked to do.
pub(super) enum WriterJob {
    /// A send: the hot path, applied against the writer's cache without a
    /// savepoint (see [`append_hot`]).
    Append(NewMessage, oneshot::Sender<StoreResult<Appended>>),
    /// Anything else, in its own savepoint.
    General {
        /// The job.
        run: Job,
        /// The job may change seqs, memberships or inbox heads behind the
        /// cache's back (group administration), so the cache is dropped
        /// after it.
        invalidates_cache: bool,
    },
}

/// Runs `f` in a savepoint of its own: a refusal undoes only its writes and
/// forgets only its announcements.
pub(super) fn run_in_savepoint<T>(
    conn: &Connection,
    events: &mut Vec<Committed>,
    f: impl FnOnce(&Connection, &mut Vec<Committed>) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let mark = events.len();
    match f(conn, events) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(err) => {
            events.truncate(mark);
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(err)
        }
    }
}

/// Runs one statement without results from the connection's statement
/// cache.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The writer thread's loop, until every sender is gone.
pub(super) fn writer_loop(
    conn: Connection,
    jobs: std_mpsc::Receiver<WriterJob>,
    mut announcer: Announcer,
    max_batch: usize,
    checkpointer: Checkpointer,
    indexer: IndexerHandle,
) {
    let mut cache = WriterCache::default();
    // The search changes already deleted up to (`search_index`).
    let mut pruned_changes = 0i64;
    // Another process may write the same file (SQLite allows it); its
    // commits change `data_version`, and then the cache is stale.
    let mut data_version: Option<i64> = None;
    // Once per thread, not per batch (at low rates a batch is a message).
    let batch_size = metrics::histogram!("parley_commit_batch_size");
    let commit_seconds = metrics::histogram!("parley_commit_seconds");
    // Until every sender is gone.
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let batch_len = batch.len();
        let mut events = Vec::new();
        let mut completions: Vec<Completion> = Vec::with_capacity(batch_len);
        // Set when a write failed half-way: the whole transaction is then
        // rolled back, and every job of the batch fails (sends are retried
        // by clients with the same client_msg_id, so nothing is lost).
        // `BEGIN`, `PRAGMA data_version` and `COMMIT` run once per batch:
        // cached statements, not parsed again each time.
        let mut broken: Option<StoreError> =
            run_cached(&conn, "BEGIN IMMEDIATE").err().map(|err| {
                tracing::error!(%err, "cannot begin a write transaction");
                StoreError::from(err)
            });
        if broken.is_none() {
            let version = conn
                .prepare_cached("PRAGMA data_version")
                .and_then(|mut statement| statement.query_row([], |r| r.get::<_, i64>(0)));
            match version {
                Ok(version) => {
                    if data_version != Some(version) {
                        cache.clear();
                        data_version = Some(version);
                    }
                }
                Err(err) => broken = Some(err.into()),
            }
        }
        for job in batch {
            match job {
                WriterJob::Append(new, reply) => {
                    if abandoned(&reply) {
                        continue;
                    }
                    if let Some(err) = &broken {
                        let _ = reply.send(Err(err.clone()));
                        continue;
                    }
                    match append_hot(&conn, &mut cache, &mut events, new) {
                        Ok(appended) => completions.push(Box::new(move |commit| {
                            let _ = reply.send(commit.map(|()| appended));
                        })),
                        // Nothing was written: answer at once.
                        Err(AppendFailure::Refused(err)) => {
                            let _ = reply.send(Err(err));
                        }
                        Err(AppendFailure::Broken(err)) => {
                            tracing::error!(%err, "a send failed half-way; rolling back the batch");
                            broken = Some(err.clone());
                            let _ = reply.send(Err(err));
                        }
                    }
                }
                WriterJob::General {
                    run,
                    invalidates_cache,
                } => {
                    if broken.is_none()
                        && let Err(err) = cache.flush(&conn)
                    {
                        broken = Some(err);
                    }
                    if broken.is_some() {
                        completions.push(run(None, &mut events));
                        continue;
                    }
                    completions.push(run(Some(&conn), &mut events));
                    if invalidates_cache {
                        cache.clear();
                    }
                }
            }
        }
        // Change rows the index applied are dropped once it has them
        // durably; a failure only leaves them for a later batch.
        let applied = indexer.applied();
        let mut pruning = broken.is_none() && applied > pruned_changes;
        if pruning
            && let Err(err) = run_in_savepoint(&conn, &mut events, |conn, _| {
                search_index::prune_changes(conn, applied)
            })
        {
            tracing::warn!(%err, "could not prune applied search changes; retrying later");
            pruning = false;
        }
        let outcome: StoreResult<()> = match broken {
            Some(err) => Err(err),
            None => cache.flush(&conn).and_then(|()| {
                run_cached(&conn, "COMMIT").map_err(|err| {
                    tracing::error!(%err, "commit failed; rolling back the batch");
                    StoreError::from(err)
                })
            }),
        };
        if outcome.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
            cache.clear();
        } else {
            cache.trim();
            if pruning {
                pruned_changes = applied;
            }
        }
        let committed = outcome.is_ok();
        // Recorded before anyone hears of the batch: whoever reads
        // /metrics after an ack sees the commit counted.
        batch_size.record(batch_len as f64);
        commit_seconds.record(started.elapsed().as_secs_f64());
        announcer.settle(Settlement {
            outcome,
            completions,
            events,
        });
        if committed {
            // After the answers and announcements: they never wait for it.
            checkpointer.committed();
            indexer.committed();
            checkpointer.finish_on(&conn);
        }
    }
    // Stops the checkpoint thread after one last checkpoint.
    drop(checkpointer);
    tracing::info!("SQLite writer stopped");
}
