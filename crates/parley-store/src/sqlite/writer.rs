//! The SQLite writer thread: group commit. It takes every job waiting in
//! its queue, runs them in one transaction (sends on the hot path against
//! the [`WriterCache`], everything else in its own savepoint), commits once,
//! and only then completes the jobs and announces their changes. Sends
//! nobody waits for any more are skipped (`domain::messages::abandoned`).
//! It also keeps the search index in batches (`search_index`): inside a
//! batch once enough sends went unindexed, alone once it has been idle.
//! It never checkpoints the WAL itself: it tells the [`Checkpointer`]
//! thread that it committed.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpointer::Checkpointer;
use super::messages::{AppendFailure, append_hot};
use super::search_index;
use super::writer_cache::WriterCache;
use crate::CommitSender;
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

/// How the writer thread batches.
pub(super) struct WriterTuning {
    /// At most this many jobs share one transaction.
    pub(super) max_batch: usize,
    /// Index sends for search once this many went unindexed ...
    pub(super) search_index_batch: usize,
    /// ... or once the queue has been empty this long with some unindexed.
    pub(super) search_index_delay: Duration,
}

/// Takes the next job, blocking. While sends wait to be indexed it waits
/// at most `delay`, and indexes them in a transaction of their own when
/// nothing came; `None` once every sender is gone.
fn next_job(
    conn: &Connection,
    jobs: &std_mpsc::Receiver<WriterJob>,
    unindexed: &mut usize,
    delay: Duration,
    checkpointer: &Checkpointer,
) -> Option<WriterJob> {
    loop {
        if *unindexed == 0 {
            return jobs.recv().ok();
        }
        match jobs.recv_timeout(delay) {
            Ok(job) => return Some(job),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                index_alone(conn);
                checkpointer.committed();
                *unindexed = 0;
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                // Shutting down: leave the index caught up.
                index_alone(conn);
                checkpointer.committed();
                return None;
            }
        }
    }
}

/// Catches the search index up in a transaction of its own. A failure is
/// only logged: the sends stay above the watermark, and the next catch-up
/// (or a search) indexes them.
fn index_alone(conn: &Connection) {
    let outcome = run_cached(conn, "BEGIN IMMEDIATE")
        .map_err(StoreError::from)
        .and_then(|()| search_index::catch_up(conn))
        .and_then(|_| run_cached(conn, "COMMIT").map_err(StoreError::from));
    if let Err(err) = outcome {
        tracing::warn!(%err, "could not index sends for search; retrying later");
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// The writer thread's loop, until every sender is gone.
pub(super) fn writer_loop(
    conn: Connection,
    jobs: std_mpsc::Receiver<WriterJob>,
    events_tx: CommitSender,
    tuning: WriterTuning,
    checkpointer: Checkpointer,
) {
    let WriterTuning {
        max_batch,
        search_index_batch,
        search_index_delay,
    } = tuning;
    let mut cache = WriterCache::default();
    // Sends committed (or in this batch) and not yet indexed for search.
    let mut unindexed = 0usize;
    // Another process may write the same file (SQLite allows it); its
    // commits change `data_version`, and then the cache is stale.
    let mut data_version: Option<i64> = None;
    // Once per thread, not per batch (at low rates a batch is a message).
    let batch_size = metrics::histogram!("parley_commit_batch_size");
    let commit_seconds = metrics::histogram!("parley_commit_seconds");
    while let Some(first) = next_job(
        &conn,
        &jobs,
        &mut unindexed,
        search_index_delay,
        &checkpointer,
    ) {
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
                        Ok(appended) => {
                            unindexed += usize::from(!appended.duplicate);
                            completions.push(Box::new(move |commit| {
                                let _ = reply.send(commit.map(|()| appended));
                            }))
                        }
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
        // In its own savepoint: a failure to index fails no send (they
        // stay above the watermark for the next catch-up).
        let mut indexing = broken.is_none() && unindexed >= search_index_batch;
        if indexing
            && let Err(err) =
                run_in_savepoint(&conn, &mut events, |conn, _| search_index::catch_up(conn))
        {
            tracing::warn!(%err, "could not index sends for search; retrying later");
            indexing = false;
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
            if indexing {
                unindexed = 0;
            }
        }
        let committed = outcome.is_ok();
        // Recorded before anyone hears of the batch: whoever reads
        // /metrics after an ack sees the commit counted.
        batch_size.record(batch_len as f64);
        commit_seconds.record(started.elapsed().as_secs_f64());
        for complete in completions {
            complete(outcome.clone());
        }
        if committed {
            for event in events {
                // The receiver is gone only during shutdown; nothing to tell.
                let _ = events_tx.send(event);
            }
            // After the acks and announcements: they never wait for it.
            checkpointer.committed();
            checkpointer.finish_on(&conn);
        }
    }
    // Stops the checkpoint thread after one last checkpoint.
    drop(checkpointer);
    tracing::info!("SQLite writer stopped");
}
