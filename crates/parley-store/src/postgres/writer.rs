//! The PostgreSQL writer task: group commit. It takes every op waiting in
//! its queue, runs them in one transaction (each in its own savepoint),
//! hands out inbox cursors, commits once, and only then answers and
//! announces. Sends nobody waits for any more are dropped from the queue
//! unwritten. Locks are taken in the global order described in
//! [`postgres`](super): conversations first, users last, each by id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use deadpool_postgres::{ClientWrapper, Object, Pool};
use tokio::sync::mpsc;

use super::PostgresOptions;
use super::batch::{Batch, Job, Output, UserUpdate, WriteOp};
use super::errors::{
    BatchFailure, OpError, OpResult, PgClass, classify, describe, pool_error, query,
};
use super::{admin, conversations, groups, inbox, messages, receipts, users};
use crate::CommitSender;
use crate::error::{StoreError, StoreResult};
use crate::model::{Committed, NewMessage};

/// A send nobody waits for any more is not written
/// ([`abandoned`](crate::domain::messages::abandoned)); other ops are.
fn is_abandoned(job: &Job) -> bool {
    matches!(job.op, WriteOp::Append(_)) && crate::domain::messages::abandoned(&job.reply)
}

/// The writer task's loop, until every sender is gone.
pub(super) async fn writer_loop(
    pool: Pool,
    options: PostgresOptions,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    events_tx: CommitSender,
) {
    let max_batch = options.max_batch.max(1);
    // An exclusive op found while filling a batch waits here for the next.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => break,
            },
        };
        if is_abandoned(&first) {
            continue;
        }
        let mut batch = vec![first];
        if !batch[0].op.is_exclusive() {
            while batch.len() < max_batch {
                match jobs.try_recv() {
                    Ok(job) if job.op.is_exclusive() => {
                        carried = Some(job);
                        break;
                    }
                    Ok(job) if is_abandoned(&job) => {}
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let started = Instant::now();
        let batch_len = batch.len();
        let (ops, replies): (Vec<WriteOp>, Vec<_>) =
            batch.into_iter().map(|job| (job.op, job.reply)).unzip();
        let outcome = commit_batch(&pool, &options, &ops).await;
        // Recorded before anyone hears of the batch: whoever reads
        // /metrics after an ack sees the commit counted.
        metrics::histogram!("parley_commit_batch_size").record(batch_len as f64);
        metrics::histogram!("parley_commit_seconds").record(started.elapsed().as_secs_f64());
        match outcome {
            Ok((results, events)) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                for event in events {
                    // The receiver is gone only during shutdown; nothing to tell.
                    let _ = events_tx.send(event);
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
    tracing::info!("PostgreSQL writer stopped");
}

type BatchOutcome = (Vec<StoreResult<Output>>, Vec<Committed>);

/// Runs `ops` in one transaction until it commits, re-running it after a
/// deadlock or serialization failure. `Err` means nothing was acknowledged.
async fn commit_batch(
    pool: &Pool,
    options: &PostgresOptions,
    ops: &[WriteOp],
) -> StoreResult<BatchOutcome> {
    let mut attempt = 0u32;
    loop {
        let conn = pool.get().await.map_err(|e| pool_error(e).into_store())?;
        let mut batch = Batch::default();
        let outcome =
            tokio::time::timeout(options.op_timeout, run_batch(&conn, ops, &mut batch)).await;
        let failure = match outcome {
            Ok(Ok(results)) => return Ok((results, batch.events)),
            Ok(Err(failure)) => failure,
            Err(_) => {
                // The connection may be mid-statement: it cannot be reused.
                drop(Object::take(conn));
                return Err(StoreError::Unavailable("database write timed out".into()));
            }
        };
        // Leave the connection clean for the pool, or drop it. A broken
        // connection is not asked, and a hung one is not waited for long.
        let broken = matches!(&failure, BatchFailure::Fail(StoreError::Unavailable(_)));
        let rolled_back = !broken
            && matches!(
                tokio::time::timeout(options.connect_timeout, conn.batch_execute("ROLLBACK")).await,
                Ok(Ok(()))
            );
        if !rolled_back {
            drop(Object::take(conn));
        }
        match failure {
            BatchFailure::Retry(why) if attempt < options.max_retries => {
                attempt += 1;
                metrics::counter!("parley_commit_retries_total").increment(1);
                tracing::debug!(%why, attempt, "re-running a write batch");
                // A short, growing pause lets the other writer finish.
                tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 3)).await;
            }
            BatchFailure::Retry(why) => {
                return Err(StoreError::Unavailable(format!(
                    "gave up after {attempt} retries: {why}"
                )));
            }
            BatchFailure::Fail(err) => {
                tracing::error!(%err, "write batch failed");
                return Err(err);
            }
        }
    }
}

/// One attempt at a batch: lock the conversations, run the ops in order
/// (each run of consecutive plain appends set-based, every other op,
/// events and replies included, in its own savepoint), hand out inbox cursors, commit.
async fn run_batch(
    conn: &ClientWrapper,
    ops: &[WriteOp],
    batch: &mut Batch,
) -> Result<Vec<StoreResult<Output>>, BatchFailure> {
    let mut conversations: Vec<i64> = ops
        .iter()
        .filter_map(|op| op.conversation())
        .map(|c| c.0)
        .collect();
    conversations.sort_unstable();
    conversations.dedup();
    if conversations.is_empty() {
        conn.batch_execute("BEGIN").await.map_err(OpError::from)?;
    } else {
        // BEGIN and the locks in one round trip.
        futures_util::future::try_join(
            async { conn.batch_execute("BEGIN").await.map_err(OpError::from) },
            query(
                conn,
                "SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
                &[&conversations],
            ),
        )
        .await?;
    }
    let mut results = Vec::with_capacity(ops.len());
    let mut savepoint_open = false;
    let mut index = 0;
    while index < ops.len() {
        let appends: Vec<&NewMessage> = ops[index..]
            .iter()
            .map_while(|op| match op {
                WriteOp::Append(new) if messages::is_set_based(new) => Some(new),
                _ => None,
            })
            .collect();
        if !appends.is_empty() {
            index += appends.len();
            let answers = messages::append_many(conn, batch, &appends)
                .await
                .map_err(|err| match &err {
                    // Another process committed one of the dedup keys since
                    // they were read: re-run the batch, which then finds it.
                    OpError::Pg(pg) if classify(pg) == PgClass::Unique => {
                        BatchFailure::Retry(describe(pg))
                    }
                    _ => BatchFailure::from(err),
                })?;
            results.extend(
                answers
                    .into_iter()
                    .map(|answer| answer.map(Output::Appended)),
            );
            continue;
        }
        // A fresh savepoint for this op; the previous one (if any) is
        // released in the same round trip, the last one by COMMIT.
        let setup = if savepoint_open {
            "RELEASE SAVEPOINT op; SAVEPOINT op"
        } else {
            "SAVEPOINT op"
        };
        savepoint_open = true;
        results.push(run_op(conn, setup, &ops[index], batch).await?);
        index += 1;
    }
    finish_batch(conn, batch).await?;
    conn.batch_execute("COMMIT").await.map_err(OpError::from)?;
    Ok(results)
}

/// Runs one op in a savepoint that `setup` establishes. `Err` only for
/// failures that end the batch.
async fn run_op(
    conn: &ClientWrapper,
    setup: &str,
    op: &WriteOp,
    batch: &mut Batch,
) -> Result<StoreResult<Output>, BatchFailure> {
    let mark = batch.mark();
    // The savepoint and the op's first statements share a round trip: `join`
    // polls (so sends) the savepoint first, and the server runs in order.
    let (established, mut outcome) =
        futures_util::future::join(conn.batch_execute(setup), apply(conn, op, batch)).await;
    established.map_err(OpError::from)?;
    let mut unique_retried = false;
    loop {
        let err = match outcome {
            Ok(output) => return Ok(Ok(output)),
            Err(err) => err,
        };
        batch.truncate(mark);
        let class = match &err {
            OpError::Pg(pg) => classify(pg),
            OpError::Domain(_) => PgClass::Other,
            OpError::Unavailable(_) => PgClass::Connection,
        };
        if matches!(class, PgClass::Retry | PgClass::Connection) {
            return Err(err.into());
        }
        // The savepoint survives the rollback, ready for a re-run or the
        // next op.
        conn.batch_execute("ROLLBACK TO SAVEPOINT op")
            .await
            .map_err(OpError::from)?;
        if class == PgClass::Unique && !unique_retried {
            // Another transaction committed the same key first; now that it
            // is visible, the op answers as a repeat or a conflict.
            unique_retried = true;
            outcome = apply(conn, op, batch).await;
            continue;
        }
        if let OpError::Pg(pg) = &err {
            tracing::error!(error = %describe(pg), ?op, "write failed");
        }
        return Ok(Err(err.into_store()));
    }
}

/// Runs one op.
async fn apply(conn: &ClientWrapper, op: &WriteOp, batch: &mut Batch) -> OpResult<Output> {
    Ok(match op {
        WriteOp::CreateUser(new) => Output::User(users::create_user(conn, new).await?),
        WriteOp::SetPresence(user, visibility) => {
            batch
                .user_updates
                .push(UserUpdate::Presence(*user, *visibility));
            Output::Unit
        }
        WriteOp::SetLastSeen(user, at_ms) => {
            batch.user_updates.push(UserUpdate::LastSeen(*user, *at_ms));
            Output::Unit
        }
        WriteOp::CreateDevice(user, name, now) => {
            Output::Device(users::create_device(conn, *user, name, *now).await?)
        }
        WriteOp::RevokeDevice(user, device, now) => {
            users::revoke_device(conn, *user, *device, *now).await?;
            Output::Unit
        }
        WriteOp::Direct(a, b, now) => {
            let (record, created) = conversations::get_or_create_direct(conn, *a, *b, *now).await?;
            Output::Direct(record, created)
        }
        WriteOp::CreateGroup(new) => {
            Output::Conversation(groups::create_group(conn, batch, new).await?)
        }
        WriteOp::ChangeGroup(change) => {
            Output::Conversation(groups::change_group(conn, batch, change).await?)
        }
        // Only appends that read another message come here (events,
        // replies); plain sends are written set-based by `run_batch`.
        WriteOp::Append(new) => Output::Appended(messages::append(conn, batch, new).await?),
        WriteOp::Receipt(request) => {
            Output::Receipt(receipts::advance_receipt(conn, batch, request).await?)
        }
        WriteOp::Prune(before_ms) => Output::Count(inbox::prune(conn, *before_ms).await?),
        WriteOp::SetDisabled(user, disabled, now) => {
            let (record, revoked) = admin::set_disabled(conn, *user, *disabled, *now).await?;
            Output::Disabled(record, revoked)
        }
        WriteOp::SetPassword(user, hash, now) => {
            Output::Devices(admin::set_password(conn, *user, hash, *now).await?)
        }
        WriteOp::EraseUser(user, now) => {
            Output::Devices(admin::erase_user(conn, *user, *now).await?)
        }
    })
}

/// Locks the rows of every user the batch writes, in id order, then hands
/// out inbox cursors in op order and applies the deferred user updates.
async fn finish_batch(conn: &ClientWrapper, batch: &mut Batch) -> OpResult<()> {
    if batch.pointers.is_empty() && batch.user_updates.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<i64> = batch
        .pointers
        .iter()
        .map(|p| p.user.0)
        .chain(batch.user_updates.iter().map(|u| u.user().0))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = query(
        conn,
        "SELECT id, inbox_head, inbox_tail_conversation, inbox_tail_seq FROM users
         WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        &[&ids],
    )
    .await?;
    let mut tails = HashMap::with_capacity(rows.len());
    for row in rows {
        tails.insert(row.try_get::<_, i64>(0)?, inbox::tail_from_row(&row, 1)?);
    }
    inbox::assign_cursors(conn, batch, tails).await?;
    users::apply_user_updates(conn, std::mem::take(&mut batch.user_updates)).await
}
