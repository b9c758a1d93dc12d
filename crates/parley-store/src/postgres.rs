//! The PostgreSQL store, for deployments that run several Parley processes
//! against one database.
//!
//! # Writes: one writer task per process, group commit
//! Every write becomes a `WriteOp` (plain data) sent to a single writer
//! task. The writer takes every op waiting in its queue and runs them in one
//! transaction, each inside its own savepoint so that one refused op does not
//! abort its neighbours, commits once with `synchronous_commit=on`, and only
//! then answers the callers and announces the changes on the
//! [`CommitSender`]. One writer per process means the announcements come out
//! in commit order.
//!
//! # Several processes: locks in one global order
//! Unlike SQLite, another process may write the same rows at the same time,
//! so `seq` and inbox cursors come from row locks rather than from being the
//! only writer. Each batch takes its locks in the same order in every process,
//! which is what keeps two writers from deadlocking each other:
//!
//! 1. At the start, the rows of every conversation the batch will touch,
//!    sorted by id (`SELECT ... ORDER BY id FOR NO KEY UPDATE`). While a batch
//!    holds a conversation's row, no other process can change its `last_seq`,
//!    its members or its receipt summary, so the ops read them without races.
//! 2. The ops run. They lock no user rows: inbox pointers and the few user
//!    updates (`last_seen_ms`, presence) are collected instead.
//! 3. At the end, the rows of every user that gets an inbox entry or an update,
//!    sorted by id; then cursors are handed out in op order, written with one
//!    `UPDATE ... FROM unnest(...)` and one `INSERT ... SELECT unnest(...)`.
//!
//! The remaining cross-process waits (the same username registered on two
//! nodes at once, the same `client_msg_id` sent through two nodes) are rare;
//! if they ever close a cycle PostgreSQL reports a deadlock (40P01), and the
//! writer rolls back and re-runs the whole batch, as it does on a
//! serialization failure (40001). Ops are data, so re-running is safe. A unique
//! violation inside one op (another process committed the same dedup key or
//! username first) rolls back that op's savepoint and runs it once more,
//! which then finds the committed row and answers as a repeat or a conflict.
//!
//! # Outages
//! Every engine failure that is not the caller's fault maps to
//! [`StoreError::Unavailable`]: the pool cannot connect, the connection
//! broke, or the batch (commit included) ran past `op_timeout`. A write is
//! acknowledged only after `COMMIT` returned, so an outage can turn a
//! committed write into an error (the client retries; dedup makes that safe)
//! but never an uncommitted write into an ack. Broken connections are thrown
//! away, never returned to the pool, and the pool connects afresh on the next
//! use, so the store recovers by itself when the database comes back.
//!
//! Reads use the same pool, outside the writer. A read that fails because its
//! connection broke is tried once more on a fresh connection.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use parley_proto::api::{ConversationKind, PresenceVisibility};
use parley_proto::{
    ConversationId, DeviceId, Message, MessageId, MessageKind, ReceiptStatus, Role, SystemEvent,
    UserId, now_ms,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::domain::{self, GroupPlan};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::{CommitReceiver, CommitSender, PendingAppend, Store};

/// Tuning of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool, the writer's included.
    pub pool_size: usize,
    /// At most this many ops share one transaction.
    pub max_batch: usize,
    /// How long to wait for a new connection (also the wait for a free one).
    pub connect_timeout: Duration,
    /// How long one read, or one whole batch including its commit, may take
    /// before it is abandoned as `Unavailable`.
    pub op_timeout: Duration,
    /// How often a batch is re-run after a deadlock or serialization failure.
    pub max_retries: u32,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            max_batch: 1024,
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
            max_retries: 10,
        }
    }
}

/// The schema, one entry per version. Never edit an entry once released;
/// append a new one. Mirrors the SQLite schema; `active` is a boolean and
/// `user_ids` a `BIGINT[]` here.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE users(
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    presence_visibility TEXT NOT NULL DEFAULT 'everyone',
    last_seen_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    inbox_head BIGINT NOT NULL DEFAULT 0,
    inbox_floor BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE devices(
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX devices_by_user ON devices(user_id);
CREATE TABLE conversations(
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT,
    direct_key TEXT UNIQUE,
    last_seq BIGINT NOT NULL DEFAULT 0,
    last_activity_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    summary_delivered BIGINT NOT NULL DEFAULT 0,
    summary_read BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE members(
    conversation_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    role TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    delivered_up_to BIGINT NOT NULL DEFAULT 0,
    read_up_to BIGINT NOT NULL DEFAULT 0,
    joined_seq BIGINT NOT NULL,
    joined_at_ms BIGINT NOT NULL,
    PRIMARY KEY(conversation_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id, active);
CREATE TABLE member_periods(
    conversation_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT,
    PRIMARY KEY(conversation_id, user_id, from_seq)
);
CREATE TABLE messages(
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    conversation_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL,
    sender_device_id BIGINT,
    client_msg_id TEXT,
    sent_at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT,
    reply_to_seq BIGINT,
    event TEXT,
    user_ids BIGINT[],
    name TEXT,
    role TEXT,
    UNIQUE(conversation_id, seq)
);
CREATE UNIQUE INDEX messages_dedup ON messages(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE TABLE inbox(
    user_id BIGINT NOT NULL,
    cursor BIGINT NOT NULL,
    conversation_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY(user_id, cursor)
);
CREATE INDEX inbox_by_age ON inbox(created_at_ms);
"#];

/// Serializes schema migrations between processes that start together.
const MIGRATION_LOCK_KEY: i64 = 0x7061_726c_6579; // "parley"

const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms, \
                               kind, text, reply_to_seq, event, user_ids, name, role";
const USER_COLUMNS: &str =
    "id, username, display_name, password_hash, presence_visibility, last_seen_ms, created_at_ms";

/// One write, as data, so that a batch can be re-run after a deadlock.
#[derive(Debug, Clone)]
enum WriteOp {
    CreateUser(NewUser),
    SetPresence(UserId, PresenceVisibility),
    SetLastSeen(UserId, i64),
    CreateDevice(UserId, String, i64),
    RevokeDevice(UserId, DeviceId, i64),
    Direct(UserId, UserId, i64),
    CreateGroup(NewGroup),
    ChangeGroup(GroupChange),
    Append(NewMessage),
    Receipt(ConversationId, UserId, Option<DeviceId>, ReceiptStatus, u64),
    Prune(i64),
}

impl WriteOp {
    /// The existing conversation whose row this op must hold.
    fn conversation(&self) -> Option<ConversationId> {
        match self {
            WriteOp::ChangeGroup(change) => Some(change.conversation),
            WriteOp::Append(new) => Some(new.conversation_id),
            WriteOp::Receipt(conversation, ..) => Some(*conversation),
            _ => None,
        }
    }

    /// Runs in a transaction of its own: pruning locks many user rows and
    /// must take them before anything else to keep the global lock order.
    fn is_exclusive(&self) -> bool {
        matches!(self, WriteOp::Prune(_))
    }
}

/// What a [`WriteOp`] returns.
#[derive(Debug)]
enum Output {
    Unit,
    User(UserRecord),
    Device(DeviceRecord),
    Direct(ConversationRecord, bool),
    Conversation(ConversationRecord),
    Appended(Appended),
    Receipt(ReceiptChange),
    Count(u64),
}

/// Unpacks the [`Output`] variant an op is known to return.
macro_rules! expect_output {
    ($output:expr, $variant:ident($($field:ident),+)) => {
        match $output {
            Output::$variant($($field),+) => Ok(($($field),+)),
            other => Err(StoreError::Internal(format!("writer returned {other:?}"))),
        }
    };
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<StoreResult<Output>>,
}

/// Why an op or a statement failed: a domain refusal, or the engine.
#[derive(Debug)]
enum OpError {
    Domain(StoreError),
    Pg(tokio_postgres::Error),
    /// The connection could not be had or the operation took too long.
    Unavailable(String),
}

type OpResult<T> = Result<T, OpError>;

impl From<tokio_postgres::Error> for OpError {
    fn from(err: tokio_postgres::Error) -> Self {
        OpError::Pg(err)
    }
}

impl From<StoreError> for OpError {
    fn from(err: StoreError) -> Self {
        OpError::Domain(err)
    }
}

/// How the writer reacts to an engine error.
#[derive(Debug, PartialEq, Eq)]
enum PgClass {
    /// Deadlock or serialization failure: re-run the batch.
    Retry,
    /// A unique index refused a row another transaction committed first.
    Unique,
    /// The connection or the server is gone.
    Connection,
    /// Anything else: a bug or a broken database.
    Other,
}

fn classify(err: &tokio_postgres::Error) -> PgClass {
    match err.code() {
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            PgClass::Retry
        }
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => PgClass::Unique,
        // 08: connection exception; 57P0x: the server is shutting down or
        // starting; 53: out of resources (connections, disk, memory).
        Some(code)
            if code.code().starts_with("08")
                || code.code().starts_with("57P")
                || code.code().starts_with("53") =>
        {
            PgClass::Connection
        }
        Some(_) => PgClass::Other,
        None if err.is_closed() => PgClass::Connection,
        None => {
            // Without a server error code: I/O and connect failures carry an
            // io::Error; conversion errors (a bug) do not.
            let io =
                std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>());
            if io {
                PgClass::Connection
            } else {
                PgClass::Other
            }
        }
    }
}

impl OpError {
    fn is_connection(&self) -> bool {
        match self {
            OpError::Pg(err) => classify(err) == PgClass::Connection,
            OpError::Unavailable(_) => true,
            OpError::Domain(_) => false,
        }
    }

    fn into_store(self) -> StoreError {
        match self {
            OpError::Domain(err) => err,
            OpError::Unavailable(why) => StoreError::Unavailable(why),
            OpError::Pg(err) => match classify(&err) {
                PgClass::Connection | PgClass::Retry => StoreError::Unavailable(describe(&err)),
                PgClass::Unique | PgClass::Other => StoreError::Internal(describe(&err)),
            },
        }
    }
}

/// The server's code and message when there is one: `Display` of a
/// server error says only "db error".
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => err.to_string(),
    }
}

fn pool_error(err: deadpool_postgres::PoolError) -> OpError {
    OpError::Unavailable(format!("cannot get a database connection: {err}"))
}

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    pool: Pool,
    options: PostgresOptions,
    /// `None` once shut down. A std mutex: held only to clone or take the
    /// sender, never across an await.
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl PostgresStore {
    /// Connects to `url`, applies migrations, and starts the writer task on
    /// the current Tokio runtime. Fails with `Unavailable` when the database
    /// cannot be reached, and with `Internal` when its schema is newer than
    /// this binary knows.
    pub async fn open(
        url: &str,
        options: PostgresOptions,
    ) -> StoreResult<(PostgresStore, CommitReceiver)> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        // An ack promises durability, so the commit must wait for the WAL
        // flush whatever the server's default says.
        let options_with_sync = match config.get_options() {
            Some(given) => format!("{given} -c synchronous_commit=on"),
            None => "-c synchronous_commit=on".to_owned(),
        };
        config.options(options_with_sync);
        if config.get_application_name().is_none() {
            config.application_name("parley");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // Checking `is_closed` is enough: the writer and the readers
                // throw away connections that failed, so a stale one costs at
                // most one retried read.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the connection pool: {e}")))?;
        {
            let mut conn = pool.get().await.map_err(|e| pool_error(e).into_store())?;
            migrate(&mut conn).await?;
        }
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(writer_loop(
            pool.clone(),
            options.clone(),
            jobs_rx,
            events_tx,
        ));
        let store = PostgresStore {
            pool,
            options,
            jobs: Mutex::new(Some(jobs_tx)),
            writer: Mutex::new(Some(writer)),
        };
        Ok((store, events_rx))
    }

    /// Queues `op` for the writer and resolves once its batch committed.
    async fn write(&self, op: WriteOp) -> StoreResult<Output> {
        self.enqueue(op).await
    }

    /// Queues `op` for the writer *now* (so that ops enqueued one after
    /// another commit in that order) and returns a future of its result.
    fn enqueue(&self, op: WriteOp) -> impl Future<Output = StoreResult<Output>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = {
            // A std mutex: held only to send, never across an await.
            let guard = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                None => Err(StoreError::Unavailable("store is shutting down".into())),
                Some(sender) => sender
                    .send(Job { op, reply })
                    .map_err(|_| StoreError::Unavailable("store writer has stopped".into())),
            }
        };
        async move {
            queued?;
            answer
                .await
                .map_err(|_| StoreError::Internal("store writer dropped a job".into()))?
        }
    }

    async fn reader(&self) -> OpResult<Object> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Runs a read on a pooled connection with the store's timeout, once more on
/// a fresh connection if the first one turned out to be broken.
macro_rules! read {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let store: &PostgresStore = $store;
        let mut attempt = 0u32;
        loop {
            let outcome: OpResult<_> = match store.reader().await {
                Ok(object) => {
                    let $conn: &ClientWrapper = &object;
                    let outcome = match tokio::time::timeout(store.options.op_timeout, $body).await
                    {
                        Ok(outcome) => outcome,
                        Err(_) => Err(OpError::Unavailable("database read timed out".into())),
                    };
                    if outcome.as_ref().is_err_and(|e: &OpError| e.is_connection()) {
                        // Never hand a broken or hung connection back.
                        drop(Object::take(object));
                    }
                    outcome
                }
                Err(err) => Err(err),
            };
            match outcome {
                Ok(value) => break Ok(value),
                Err(err)
                    if attempt == 0
                        && err.is_connection()
                        && !matches!(err, OpError::Unavailable(_)) =>
                {
                    attempt += 1;
                }
                Err(err) => break Err(err.into_store()),
            }
        }
    }};
}

async fn migrate(conn: &mut ClientWrapper) -> StoreResult<()> {
    let inner = async {
        let tx = conn.transaction().await?;
        // Two processes starting at once must not both apply version 1.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_meta(key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        )
        .await?;
        let current: i64 = tx
            .query_opt("SELECT value FROM schema_meta WHERE key='version'", &[])
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(OpError::Domain(StoreError::Internal(format!(
                "the database schema is version {current}, newer than this binary knows ({known}); \
                 run a newer parley or restore a matching backup"
            ))));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
            tx.batch_execute(sql).await?;
            let version = index as i64 + 1;
            tx.execute(
                "INSERT INTO schema_meta(key, value) VALUES('version', $1)
                 ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                &[&version],
            )
            .await?;
            tracing::info!(version, "applying PostgreSQL schema migration");
        }
        tx.commit().await?;
        Ok(())
    };
    inner.await.map_err(OpError::into_store)
}

// ---------------------------------------------------------------------------
// The writer.

/// What a batch collects while its ops run, applied or announced at the end.
#[derive(Default)]
struct Batch {
    events: Vec<Committed>,
    /// Inbox entries still waiting for their cursor, in op order.
    pointers: Vec<Pointer>,
    /// User-row writes deferred to the end to keep the lock order.
    user_updates: Vec<UserUpdate>,
}

/// One recipient of one message; `event` and `slot` say which
/// [`Recipient`] to fill in once the cursor is known.
struct Pointer {
    user: UserId,
    conversation: ConversationId,
    seq: u64,
    created_at_ms: i64,
    event: usize,
    slot: usize,
}

enum UserUpdate {
    LastSeen(UserId, i64),
    Presence(UserId, PresenceVisibility),
}

impl UserUpdate {
    fn user(&self) -> UserId {
        match self {
            UserUpdate::LastSeen(user, _) | UserUpdate::Presence(user, _) => *user,
        }
    }
}

impl Batch {
    fn mark(&self) -> (usize, usize, usize) {
        (
            self.events.len(),
            self.pointers.len(),
            self.user_updates.len(),
        )
    }

    /// Forgets what an op collected after `mark` (its savepoint rolled back).
    fn truncate(&mut self, mark: (usize, usize, usize)) {
        self.events.truncate(mark.0);
        self.pointers.truncate(mark.1);
        self.user_updates.truncate(mark.2);
    }
}

/// Why a whole batch failed.
enum BatchFailure {
    /// Deadlock or serialization failure: roll back and run it again.
    Retry(String),
    /// Every op of the batch fails with this.
    Fail(StoreError),
}

impl From<OpError> for BatchFailure {
    fn from(err: OpError) -> Self {
        match err {
            OpError::Pg(pg) if classify(&pg) == PgClass::Retry => {
                BatchFailure::Retry(describe(&pg))
            }
            other => BatchFailure::Fail(other.into_store()),
        }
    }
}

async fn writer_loop(
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
        let mut batch = vec![first];
        if !batch[0].op.is_exclusive() {
            while batch.len() < max_batch {
                match jobs.try_recv() {
                    Ok(job) if job.op.is_exclusive() => {
                        carried = Some(job);
                        break;
                    }
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let started = Instant::now();
        let batch_len = batch.len();
        let (ops, replies): (Vec<WriteOp>, Vec<_>) =
            batch.into_iter().map(|job| (job.op, job.reply)).unzip();
        match commit_batch(&pool, &options, &ops).await {
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
        metrics::histogram!("parley_commit_batch_size").record(batch_len as f64);
        metrics::histogram!("parley_commit_seconds").record(started.elapsed().as_secs_f64());
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

/// One attempt at a batch: lock, run each op in a savepoint, hand out inbox
/// cursors, commit.
async fn run_batch(
    conn: &ClientWrapper,
    ops: &[WriteOp],
    batch: &mut Batch,
) -> Result<Vec<StoreResult<Output>>, BatchFailure> {
    conn.batch_execute("BEGIN").await.map_err(OpError::from)?;
    let mut conversations: Vec<i64> = ops
        .iter()
        .filter_map(|op| op.conversation())
        .map(|c| c.0)
        .collect();
    conversations.sort_unstable();
    conversations.dedup();
    if !conversations.is_empty() {
        query(
            conn,
            "SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            &[&conversations],
        )
        .await?;
    }
    let mut results = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        // Each op gets a fresh savepoint; the previous one is released in
        // the same round trip. The last one is released by COMMIT.
        let setup = if index == 0 {
            "SAVEPOINT op"
        } else {
            "RELEASE SAVEPOINT op; SAVEPOINT op"
        };
        results.push(run_op(conn, setup, op, batch).await?);
    }
    assign_inbox_cursors(conn, batch).await?;
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

async fn apply(conn: &ClientWrapper, op: &WriteOp, batch: &mut Batch) -> OpResult<Output> {
    Ok(match op {
        WriteOp::CreateUser(new) => Output::User(create_user_op(conn, new).await?),
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
            Output::Device(create_device_op(conn, *user, name, *now).await?)
        }
        WriteOp::RevokeDevice(user, device, now) => {
            revoke_device_op(conn, *user, *device, *now).await?;
            Output::Unit
        }
        WriteOp::Direct(a, b, now) => {
            let (record, created) = direct_op(conn, *a, *b, *now).await?;
            Output::Direct(record, created)
        }
        WriteOp::CreateGroup(new) => Output::Conversation(create_group_op(conn, batch, new).await?),
        WriteOp::ChangeGroup(change) => {
            Output::Conversation(change_group_op(conn, batch, change).await?)
        }
        WriteOp::Append(new) => Output::Appended(append_op(conn, batch, new).await?),
        WriteOp::Receipt(conversation, user, device, status, up_to) => Output::Receipt(
            receipt_op(
                conn,
                batch,
                *conversation,
                (*user, *device),
                *status,
                *up_to,
            )
            .await?,
        ),
        WriteOp::Prune(before_ms) => Output::Count(prune_op(conn, *before_ms).await?),
    })
}

/// Locks the rows of every user the batch writes, in id order, then hands
/// out inbox cursors in op order and applies the deferred user updates.
async fn assign_inbox_cursors(conn: &ClientWrapper, batch: &mut Batch) -> OpResult<()> {
    if batch.pointers.is_empty() && batch.user_updates.is_empty() {
        return Ok(());
    }
    let mut users: Vec<i64> = batch
        .pointers
        .iter()
        .map(|p| p.user.0)
        .chain(batch.user_updates.iter().map(|u| u.user().0))
        .collect();
    users.sort_unstable();
    users.dedup();
    let rows = query(
        conn,
        "SELECT id, inbox_head FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        &[&users],
    )
    .await?;
    let mut heads: HashMap<i64, i64> = HashMap::with_capacity(rows.len());
    for row in rows {
        heads.insert(row.try_get(0)?, row.try_get(1)?);
    }
    if !batch.pointers.is_empty() {
        let n = batch.pointers.len();
        let (mut user_col, mut cursor_col, mut conv_col, mut seq_col, mut at_col) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut touched = HashSet::new();
        for pointer in &batch.pointers {
            let head = heads.get_mut(&pointer.user.0).ok_or_else(|| {
                StoreError::Internal(format!("recipient {} does not exist", pointer.user))
            })?;
            *head += 1;
            touched.insert(pointer.user.0);
            user_col.push(pointer.user.0);
            cursor_col.push(*head);
            conv_col.push(pointer.conversation.0);
            seq_col.push(pointer.seq as i64);
            at_col.push(pointer.created_at_ms);
            if let Some(Committed::Message { recipients, .. }) = batch.events.get_mut(pointer.event)
                && let Some(recipient) = recipients.get_mut(pointer.slot)
            {
                recipient.cursor = to_u64(*head);
            }
        }
        let (ids, new_heads): (Vec<i64>, Vec<i64>) =
            heads.iter().filter(|(id, _)| touched.contains(*id)).unzip();
        execute(
            conn,
            "UPDATE users SET inbox_head = v.head FROM unnest($1::BIGINT[], $2::BIGINT[]) AS v(id, head)
             WHERE users.id = v.id",
            &[&ids, &new_heads],
        )
        .await?;
        execute(
            conn,
            "INSERT INTO inbox(user_id, cursor, conversation_id, seq, created_at_ms)
             SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[])",
            &[&user_col, &cursor_col, &conv_col, &seq_col, &at_col],
        )
        .await?;
    }
    for update in std::mem::take(&mut batch.user_updates) {
        match update {
            UserUpdate::LastSeen(user, at_ms) => {
                execute(
                    conn,
                    "UPDATE users SET last_seen_ms = GREATEST(COALESCE(last_seen_ms, 0), $2::BIGINT) WHERE id=$1",
                    &[&user.0, &at_ms],
                )
                .await?;
            }
            UserUpdate::Presence(user, visibility) => {
                execute(
                    conn,
                    "UPDATE users SET presence_visibility=$2 WHERE id=$1",
                    &[&user.0, &visibility.as_str()],
                )
                .await?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Statement helpers: every statement is prepared once per connection.

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

async fn query(conn: &ClientWrapper, sql: &str, params: Params<'_>) -> OpResult<Vec<Row>> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query(&stmt, params).await?)
}

async fn query_opt(conn: &ClientWrapper, sql: &str, params: Params<'_>) -> OpResult<Option<Row>> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query_opt(&stmt, params).await?)
}

async fn query_one(conn: &ClientWrapper, sql: &str, params: Params<'_>) -> OpResult<Row> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query_one(&stmt, params).await?)
}

async fn execute(conn: &ClientWrapper, sql: &str, params: Params<'_>) -> OpResult<u64> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.execute(&stmt, params).await?)
}

fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

fn to_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// Reads a message whose [`MESSAGE_COLUMNS`] start at column `at`.
fn message_from_row(row: &Row, at: usize) -> OpResult<Message> {
    let kind: String = row.try_get(at + 7)?;
    let event: Option<String> = row.try_get(at + 10)?;
    let user_ids: Option<Vec<i64>> = row.try_get(at + 11)?;
    let role: Option<String> = row.try_get(at + 13)?;
    Ok(Message {
        message_id: MessageId(row.try_get(at)?),
        conversation_id: ConversationId(row.try_get(at + 1)?),
        seq: to_u64(row.try_get(at + 2)?),
        sender_id: UserId(row.try_get(at + 3)?),
        sender_device_id: row.try_get::<_, Option<i64>>(at + 4)?.map(DeviceId),
        client_msg_id: row.try_get(at + 5)?,
        sent_at_ms: row.try_get(at + 6)?,
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
        text: row.try_get(at + 8)?,
        reply_to_seq: row.try_get::<_, Option<i64>>(at + 9)?.map(to_u64),
        event: event.as_deref().and_then(SystemEvent::parse),
        user_ids: user_ids.map(|ids| ids.into_iter().map(UserId).collect()),
        name: row.try_get(at + 12)?,
        role: role.as_deref().map(Role::parse),
    })
}

fn user_from_row(row: &Row) -> OpResult<UserRecord> {
    let visibility: String = row.try_get(4)?;
    Ok(UserRecord {
        id: UserId(row.try_get(0)?),
        username: row.try_get(1)?,
        display_name: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        presence_visibility: PresenceVisibility::parse(&visibility),
        last_seen_ms: row.try_get(5)?,
        created_at_ms: row.try_get(6)?,
    })
}

async fn user_exists(conn: &ClientWrapper, user: UserId) -> OpResult<bool> {
    Ok(
        query_opt(conn, "SELECT 1 FROM users WHERE id=$1", &[&user.0])
            .await?
            .is_some(),
    )
}

async fn load_user(
    conn: &ClientWrapper,
    sql: &str,
    key: &(dyn ToSql + Sync),
) -> OpResult<Option<UserRecord>> {
    query_opt(conn, sql, &[key])
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

async fn load_conversation(
    conn: &ClientWrapper,
    id: ConversationId,
) -> OpResult<Option<ConversationRecord>> {
    let Some(header) = query_opt(
        conn,
        "SELECT kind, name, last_seq, summary_delivered, summary_read FROM conversations WHERE id=$1",
        &[&id.0],
    )
    .await?
    else {
        return Ok(None);
    };
    let kind: String = header.try_get(0)?;
    let rows = query(
        conn,
        "SELECT user_id, role, delivered_up_to, read_up_to, joined_seq FROM members
         WHERE conversation_id=$1 AND active ORDER BY joined_at_ms, user_id",
        &[&id.0],
    )
    .await?;
    let mut members = Vec::with_capacity(rows.len());
    for r in rows {
        members.push(MemberRecord {
            user_id: UserId(r.try_get(0)?),
            role: Role::parse(&r.try_get::<_, String>(1)?),
            delivered_up_to: to_u64(r.try_get(2)?),
            read_up_to: to_u64(r.try_get(3)?),
            joined_seq: to_u64(r.try_get(4)?),
        });
    }
    Ok(Some(ConversationRecord {
        id,
        kind: ConversationKind::parse(&kind),
        name: header.try_get(1)?,
        last_seq: to_u64(header.try_get(2)?),
        members,
        delivered_all_up_to: to_u64(header.try_get(3)?),
        read_all_up_to: to_u64(header.try_get(4)?),
    }))
}

async fn active_member_ids(
    conn: &ClientWrapper,
    conversation: ConversationId,
) -> OpResult<Vec<UserId>> {
    let rows = query(
        conn,
        "SELECT user_id FROM members WHERE conversation_id=$1 AND active ORDER BY joined_at_ms, user_id",
        &[&conversation.0],
    )
    .await?;
    rows.iter().map(|r| Ok(UserId(r.try_get(0)?))).collect()
}

// ---------------------------------------------------------------------------
// The ops. Each mirrors its SQLite counterpart in `sqlite.rs`; the
// conformance suite holds them to the same behaviour.

async fn create_user_op(conn: &ClientWrapper, new: &NewUser) -> OpResult<UserRecord> {
    let taken = query_opt(
        conn,
        "SELECT 1 FROM users WHERE username=$1",
        &[&new.username],
    )
    .await?
    .is_some();
    if taken {
        return Err(StoreError::Conflict("username is taken").into());
    }
    let row = query_one(
        conn,
        "INSERT INTO users(username, display_name, password_hash, created_at_ms) VALUES($1, $2, $3, $4) RETURNING id",
        &[&new.username, &new.display_name, &new.password_hash, &new.now_ms],
    )
    .await?;
    Ok(UserRecord {
        id: UserId(row.try_get(0)?),
        username: new.username.clone(),
        display_name: new.display_name.clone(),
        password_hash: new.password_hash.clone(),
        presence_visibility: PresenceVisibility::Everyone,
        last_seen_ms: None,
        created_at_ms: new.now_ms,
    })
}

async fn create_device_op(
    conn: &ClientWrapper,
    user: UserId,
    name: &str,
    now: i64,
) -> OpResult<DeviceRecord> {
    if !user_exists(conn, user).await? {
        return Err(StoreError::NotFound("user").into());
    }
    let row = query_one(
        conn,
        "INSERT INTO devices(user_id, name, created_at_ms) VALUES($1, $2, $3) RETURNING id",
        &[&user.0, &name, &now],
    )
    .await?;
    Ok(DeviceRecord {
        id: DeviceId(row.try_get(0)?),
        user_id: user,
        name: name.to_owned(),
        created_at_ms: now,
    })
}

async fn revoke_device_op(
    conn: &ClientWrapper,
    user: UserId,
    device: DeviceId,
    now: i64,
) -> OpResult<()> {
    let owner: Option<i64> = query_opt(
        conn,
        "SELECT user_id FROM devices WHERE id=$1",
        &[&device.0],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?;
    if owner != Some(user.0) {
        return Err(StoreError::NotFound("device").into());
    }
    execute(
        conn,
        "UPDATE devices SET revoked_at_ms=COALESCE(revoked_at_ms, $2) WHERE id=$1",
        &[&device.0, &now],
    )
    .await?;
    Ok(())
}

async fn direct_op(
    conn: &ClientWrapper,
    a: UserId,
    b: UserId,
    now: i64,
) -> OpResult<(ConversationRecord, bool)> {
    if a == b {
        return Err(
            StoreError::Invalid("a direct conversation needs two different users".into()).into(),
        );
    }
    let key = format!("{}:{}", a.0.min(b.0), a.0.max(b.0));
    if let Some(row) = query_opt(
        conn,
        "SELECT id FROM conversations WHERE direct_key=$1",
        &[&key],
    )
    .await?
    {
        let id = ConversationId(row.try_get(0)?);
        let record = load_conversation(conn, id)
            .await?
            .ok_or(StoreError::NotFound("conversation"))?;
        return Ok((record, false));
    }
    for user in [a, b] {
        if !user_exists(conn, user).await? {
            return Err(StoreError::NotFound("user").into());
        }
    }
    let row = query_one(
        conn,
        "INSERT INTO conversations(kind, direct_key, last_seq, last_activity_ms, created_at_ms)
         VALUES('direct', $1, 0, $2, $2) RETURNING id",
        &[&key, &now],
    )
    .await?;
    let conversation = ConversationId(row.try_get(0)?);
    add_member_row(conn, conversation, a, Role::Member, 1, now).await?;
    add_member_row(conn, conversation, b, Role::Member, 1, now).await?;
    let record = load_conversation(conn, conversation)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
    Ok((record, true))
}

async fn add_member_row(
    conn: &ClientWrapper,
    conversation: ConversationId,
    user: UserId,
    role: Role,
    joined_seq: u64,
    now: i64,
) -> OpResult<()> {
    let cursor = joined_seq as i64 - 1;
    execute(
        conn,
        "INSERT INTO members(conversation_id, user_id, role, active, delivered_up_to, read_up_to, joined_seq,
                             joined_at_ms)
         VALUES($1, $2, $3, TRUE, $4, $4, $5, $6)
         ON CONFLICT(conversation_id, user_id) DO UPDATE SET
            role=excluded.role, active=TRUE,
            delivered_up_to=GREATEST(members.delivered_up_to, excluded.delivered_up_to),
            read_up_to=GREATEST(members.read_up_to, excluded.read_up_to), joined_seq=excluded.joined_seq,
            joined_at_ms=excluded.joined_at_ms",
        &[&conversation.0, &user.0, &role.as_str(), &cursor, &(joined_seq as i64), &now],
    )
    .await?;
    execute(
        conn,
        "INSERT INTO member_periods(conversation_id, user_id, from_seq, to_seq) VALUES($1, $2, $3, NULL)
         ON CONFLICT(conversation_id, user_id, from_seq) DO UPDATE SET to_seq=NULL",
        &[&conversation.0, &user.0, &(joined_seq as i64)],
    )
    .await?;
    Ok(())
}

async fn set_role_row(
    conn: &ClientWrapper,
    conversation: ConversationId,
    user: UserId,
    role: Role,
) -> OpResult<()> {
    execute(
        conn,
        "UPDATE members SET role=$3 WHERE conversation_id=$1 AND user_id=$2",
        &[&conversation.0, &user.0, &role.as_str()],
    )
    .await?;
    Ok(())
}

/// Refuses unless every user exists (one round trip for the whole list).
async fn check_users_exist(conn: &ClientWrapper, users: &[UserId]) -> OpResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    let found = query_one(
        conn,
        "SELECT COUNT(*) FROM users WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    let found: i64 = found.try_get(0)?;
    if to_u64(found) != users.len() as u64 {
        return Err(StoreError::NotFound("user").into());
    }
    Ok(())
}

/// Stores `message` (its `seq` must be `last_seq + 1`), advances the
/// sender's own cursors, queues an inbox pointer for every recipient, and
/// queues its announcement. Returns the message with its id.
async fn insert_message(
    conn: &ClientWrapper,
    batch: &mut Batch,
    mut message: Message,
    recipients: &[UserId],
) -> OpResult<Message> {
    let seq = to_i64(message.seq);
    let user_ids: Option<Vec<i64>> = message
        .user_ids
        .as_ref()
        .map(|ids| ids.iter().map(|u| u.0).collect());
    let (device, reply_to) = (
        message.sender_device_id.map(|d| d.0),
        message.reply_to_seq.map(to_i64),
    );
    let (event_name, role) = (
        message.event.map(|e| e.as_str()),
        message.role.map(|r| r.as_str()),
    );
    let kind = message.kind.as_str();
    let guard_params: [&(dyn ToSql + Sync); 3] =
        [&message.conversation_id.0, &seq, &message.sent_at_ms];
    let insert_params: [&(dyn ToSql + Sync); 13] = [
        &message.conversation_id.0,
        &seq,
        &message.sender_id.0,
        &device,
        &message.client_msg_id,
        &message.sent_at_ms,
        &kind,
        &message.text,
        &reply_to,
        &event_name,
        &user_ids,
        &message.name,
        &role,
    ];
    let cursor_params: [&(dyn ToSql + Sync); 3] =
        [&message.conversation_id.0, &message.sender_id.0, &seq];
    // Three statements, one round trip: they are sent back to back and the
    // server runs them in order.
    let (updated, row, _) = futures_util::future::try_join3(
        execute(
            conn,
            "UPDATE conversations SET last_seq=$2::BIGINT, last_activity_ms=$3
             WHERE id=$1 AND last_seq=$2::BIGINT - 1",
            &guard_params,
        ),
        query_one(
            conn,
            "INSERT INTO messages(conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms,
                                  kind, text, reply_to_seq, event, user_ids, name, role)
             VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            &insert_params,
        ),
        execute(
            conn,
            "UPDATE members SET delivered_up_to=GREATEST(delivered_up_to, $3),
                                read_up_to=GREATEST(read_up_to, $3)
             WHERE conversation_id=$1 AND user_id=$2",
            &cursor_params,
        ),
    )
    .await?;
    if updated != 1 {
        // The caller computed seq without holding the row: a bug, never a
        // gap. The op's savepoint undoes the insert.
        return Err(StoreError::Internal(format!(
            "seq {} is not the next seq of {}",
            seq, message.conversation_id
        ))
        .into());
    }
    message.message_id = MessageId(row.try_get(0)?);
    let event = batch.events.len();
    for (slot, &user) in recipients.iter().enumerate() {
        batch.pointers.push(Pointer {
            user,
            conversation: message.conversation_id,
            seq: message.seq,
            created_at_ms: message.sent_at_ms,
            event,
            slot,
        });
    }
    batch.events.push(Committed::Message {
        message: Arc::new(message.clone()),
        // Cursors are filled in once the batch locks the users' rows.
        recipients: recipients
            .iter()
            .map(|&user_id| Recipient { user_id, cursor: 0 })
            .collect(),
    });
    Ok(message)
}

async fn create_group_op(
    conn: &ClientWrapper,
    batch: &mut Batch,
    new: &NewGroup,
) -> OpResult<ConversationRecord> {
    let name = domain::groups::validate_group_name(&new.name)?;
    let others =
        domain::groups::distinct_candidates(&new.member_ids, &[new.creator], new.max_members)?;
    domain::groups::check_group_size(others.len() + 1, new.max_members)?;
    check_users_exist(conn, &others).await?;
    if !user_exists(conn, new.creator).await? {
        return Err(StoreError::NotFound("user").into());
    }
    let row = query_one(
        conn,
        "INSERT INTO conversations(kind, name, last_seq, last_activity_ms, created_at_ms)
         VALUES('group', $1, 0, $2, $2) RETURNING id",
        &[&name, &new.now_ms],
    )
    .await?;
    let conversation = ConversationId(row.try_get(0)?);
    let mut all = Vec::with_capacity(others.len() + 1);
    all.push(new.creator);
    all.extend(others.iter().copied());
    add_member_row(conn, conversation, new.creator, Role::Admin, 1, new.now_ms).await?;
    for &user in &others {
        add_member_row(conn, conversation, user, Role::Member, 1, new.now_ms).await?;
    }
    let mut message = domain::system_message(
        conversation,
        1,
        new.creator,
        SystemEvent::Created,
        all.clone(),
        new.now_ms,
    );
    message.name = Some(name);
    insert_message(conn, batch, message, &all).await?;
    Ok(load_conversation(conn, conversation)
        .await?
        .ok_or(StoreError::Internal("group vanished".into()))?)
}

async fn change_group_op(
    conn: &ClientWrapper,
    batch: &mut Batch,
    change: &GroupChange,
) -> OpResult<ConversationRecord> {
    let conversation = change.conversation;
    let record = load_conversation(conn, conversation)
        .await?
        .ok_or(StoreError::NotFound("conversation"))?;
    let (now, seq, actor) = (change.now_ms, record.last_seq + 1, change.actor);
    let everyone: Vec<UserId> = record.members.iter().map(|m| m.user_id).collect();
    match domain::plan_group_change(&record, change)? {
        GroupPlan::Unchanged => return Ok(record),
        GroupPlan::Add { candidates } => {
            check_users_exist(conn, &candidates).await?;
            for &user in &candidates {
                add_member_row(conn, conversation, user, Role::Member, seq, now).await?;
            }
            let recipients = active_member_ids(conn, conversation).await?;
            let message = domain::system_message(
                conversation,
                seq,
                actor,
                SystemEvent::MemberAdded,
                candidates,
                now,
            );
            insert_message(conn, batch, message, &recipients).await?;
        }
        GroupPlan::Remove {
            user,
            event,
            successor,
        } => {
            // The removed member is still active here, so it receives its
            // own removal, and nothing after it.
            let message = domain::system_message(conversation, seq, actor, event, vec![user], now);
            insert_message(conn, batch, message, &everyone).await?;
            execute(
                conn,
                "UPDATE members SET active=FALSE WHERE conversation_id=$1 AND user_id=$2",
                &[&conversation.0, &user.0],
            )
            .await?;
            execute(
                conn,
                "UPDATE member_periods SET to_seq=$3 WHERE conversation_id=$1 AND user_id=$2 AND to_seq IS NULL",
                &[&conversation.0, &user.0, &to_i64(seq)],
            )
            .await?;
            if let Some(successor) = successor {
                set_role_row(conn, conversation, successor, Role::Admin).await?;
                let mut promoted = domain::system_message(
                    conversation,
                    seq + 1,
                    actor,
                    SystemEvent::RoleChanged,
                    vec![successor],
                    now,
                );
                promoted.role = Some(Role::Admin);
                let remaining = active_member_ids(conn, conversation).await?;
                insert_message(conn, batch, promoted, &remaining).await?;
            }
        }
        GroupPlan::Rename { name } => {
            execute(
                conn,
                "UPDATE conversations SET name=$2 WHERE id=$1",
                &[&conversation.0, &name],
            )
            .await?;
            let mut message =
                domain::system_message(conversation, seq, actor, SystemEvent::Renamed, vec![], now);
            message.name = Some(name);
            insert_message(conn, batch, message, &everyone).await?;
        }
        GroupPlan::SetRole { user, role } => {
            set_role_row(conn, conversation, user, role).await?;
            let mut message = domain::system_message(
                conversation,
                seq,
                actor,
                SystemEvent::RoleChanged,
                vec![user],
                now,
            );
            message.role = Some(role);
            insert_message(conn, batch, message, &everyone).await?;
        }
    }
    Ok(load_conversation(conn, conversation)
        .await?
        .ok_or(StoreError::Internal("group vanished".into()))?)
}

async fn append_op(
    conn: &ClientWrapper,
    batch: &mut Batch,
    new: &NewMessage,
) -> OpResult<Appended> {
    let dedup_sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id=$1 AND client_msg_id=$2");
    let dedup_params: [&(dyn ToSql + Sync); 2] = [&new.sender_id.0, &new.client_msg_id];
    let header_params: [&(dyn ToSql + Sync); 1] = [&new.conversation_id.0];
    // Both reads in one round trip. The batch holds this conversation's row,
    // so last_seq and the members cannot change under us until commit.
    let (duplicate, header) = futures_util::future::try_join(
        query_opt(conn, &dedup_sql, &dedup_params),
        query_opt(
            conn,
            "SELECT c.last_seq, ARRAY(SELECT m.user_id FROM members m WHERE m.conversation_id=c.id AND m.active
                                      ORDER BY m.joined_at_ms, m.user_id)
             FROM conversations c WHERE c.id=$1",
            &header_params,
        ),
    )
    .await?;
    if let Some(row) = duplicate {
        return Ok(Appended {
            message: message_from_row(&row, 0)?,
            duplicate: true,
        });
    }
    let header = header.ok_or(StoreError::NotFound("conversation"))?;
    let seq = to_u64(header.try_get(0)?) + 1;
    let members: Vec<i64> = header.try_get(1)?;
    let recipients: Vec<UserId> = members.into_iter().map(UserId).collect();
    if !recipients.contains(&new.sender_id) {
        return Err(StoreError::Forbidden("you are not a member of this conversation").into());
    }
    if let Some(reply) = new.reply_to_seq
        && (reply == 0 || reply >= seq)
    {
        return Err(
            StoreError::Invalid("reply_to_seq does not name an earlier message".into()).into(),
        );
    }
    let message = Message {
        conversation_id: new.conversation_id,
        seq,
        message_id: MessageId(0),
        sender_id: new.sender_id,
        sender_device_id: Some(new.sender_device_id),
        client_msg_id: Some(new.client_msg_id.clone()),
        sent_at_ms: now_ms(),
        kind: MessageKind::Text,
        text: Some(new.text.clone()),
        reply_to_seq: new.reply_to_seq,
        event: None,
        user_ids: None,
        name: None,
        role: None,
    };
    let message = insert_message(conn, batch, message, &recipients).await?;
    Ok(Appended {
        message,
        duplicate: false,
    })
}

async fn receipt_op(
    conn: &ClientWrapper,
    batch: &mut Batch,
    conversation: ConversationId,
    (user, device): (UserId, Option<DeviceId>),
    status: ReceiptStatus,
    up_to_seq: u64,
) -> OpResult<ReceiptChange> {
    let header = query_opt(
        conn,
        "SELECT c.kind, c.last_seq, c.summary_delivered, c.summary_read, m.delivered_up_to, m.read_up_to
         FROM conversations c
         LEFT JOIN members m ON m.conversation_id=c.id AND m.user_id=$2 AND m.active
         WHERE c.id=$1",
        &[&conversation.0, &user.0],
    )
    .await?
    .ok_or(StoreError::NotFound("conversation"))?;
    let kind = ConversationKind::parse(&header.try_get::<_, String>(0)?);
    let last_seq = to_u64(header.try_get(1)?);
    let summary_delivered = to_u64(header.try_get(2)?);
    let summary_read = to_u64(header.try_get(3)?);
    let (Some(delivered), Some(read)) = (
        header.try_get::<_, Option<i64>>(4)?,
        header.try_get::<_, Option<i64>>(5)?,
    ) else {
        return Err(StoreError::Forbidden("you are not a member of this conversation").into());
    };
    let (delivered, read) = (to_u64(delivered), to_u64(read));
    // A cursor never passes the last message, so a client cannot pre-read
    // messages that do not exist yet.
    let target = up_to_seq.min(last_seq);
    let new_delivered = delivered.max(target);
    let new_read = match status {
        ReceiptStatus::Read => read.max(target),
        ReceiptStatus::Delivered => read,
    };
    let advanced = new_delivered != delivered || new_read != read;
    let mut summary = None;
    let mut members = vec![user];
    if advanced {
        let (cursor_delivered, cursor_read) = (to_i64(new_delivered), to_i64(new_read));
        let update_params: [&(dyn ToSql + Sync); 4] =
            [&conversation.0, &user.0, &cursor_delivered, &cursor_read];
        let conversation_params: [&(dyn ToSql + Sync); 1] = [&conversation.0];
        // The cursor update and the read of the members after it, in one
        // round trip (the server runs them in order).
        let (_, after) = futures_util::future::try_join(
            execute(
                conn,
                "UPDATE members SET delivered_up_to=$3, read_up_to=$4 WHERE conversation_id=$1 AND user_id=$2",
                &update_params,
            ),
            query_one(
                conn,
                "SELECT MIN(delivered_up_to), MIN(read_up_to),
                        ARRAY_AGG(user_id ORDER BY joined_at_ms, user_id)
                 FROM members WHERE conversation_id=$1 AND active",
                &conversation_params,
            ),
        )
        .await?;
        let everyone: Vec<UserId> = after
            .try_get::<_, Option<Vec<i64>>>(2)?
            .unwrap_or_default()
            .into_iter()
            .map(UserId)
            .collect();
        if kind == ConversationKind::Group {
            let min_delivered = to_u64(after.try_get::<_, Option<i64>>(0)?.unwrap_or(0));
            let min_read = to_u64(after.try_get::<_, Option<i64>>(1)?.unwrap_or(0));
            let next = (
                summary_delivered.max(min_delivered),
                summary_read.max(min_read),
            );
            if next != (summary_delivered, summary_read) {
                execute(
                    conn,
                    "UPDATE conversations SET summary_delivered=$2, summary_read=$3 WHERE id=$1",
                    &[&conversation.0, &to_i64(next.0), &to_i64(next.1)],
                )
                .await?;
                summary = Some(next);
                members = everyone;
            }
        } else {
            members = everyone;
        }
    }
    let change = ReceiptChange {
        conversation_id: conversation,
        kind,
        user_id: user,
        device_id: device,
        status,
        delivered_up_to: new_delivered,
        read_up_to: new_read,
        advanced,
        summary,
        members,
    };
    if advanced {
        batch.events.push(Committed::Receipt(change.clone()));
    }
    Ok(change)
}

async fn prune_op(conn: &ClientWrapper, before_ms: i64) -> OpResult<u64> {
    // This op runs alone in its transaction, so taking the user rows here,
    // in id order, keeps the global lock order.
    query(
        conn,
        "SELECT id FROM users WHERE id IN (SELECT DISTINCT user_id FROM inbox WHERE created_at_ms < $1)
         ORDER BY id FOR NO KEY UPDATE",
        &[&before_ms],
    )
    .await?;
    // One statement, so the floors and the deletion see the same rows.
    let row = query_one(
        conn,
        "WITH doomed AS (DELETE FROM inbox WHERE created_at_ms < $1 RETURNING user_id, cursor),
              floors AS (SELECT user_id, MAX(cursor) AS floor FROM doomed GROUP BY user_id),
              raised AS (UPDATE users SET inbox_floor = GREATEST(users.inbox_floor, floors.floor)
                         FROM floors WHERE users.id = floors.user_id RETURNING 1)
         SELECT (SELECT COUNT(*) FROM doomed), (SELECT COUNT(*) FROM raised)",
        &[&before_ms],
    )
    .await?;
    Ok(to_u64(row.try_get(0)?))
}

// ---------------------------------------------------------------------------
// Reads.

async fn conversations_for_query(
    conn: &ClientWrapper,
    user: UserId,
) -> OpResult<Vec<ConversationSummaryRecord>> {
    let ids = query(
        conn,
        "SELECT c.id FROM members m JOIN conversations c ON c.id=m.conversation_id
         WHERE m.user_id=$1 AND m.active ORDER BY c.last_activity_ms DESC, c.id DESC",
        &[&user.0],
    )
    .await?;
    let last_sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id=$1 AND seq=$2");
    let mut out = Vec::with_capacity(ids.len());
    for row in ids {
        let id: i64 = row.try_get(0)?;
        let Some(conversation) = load_conversation(conn, ConversationId(id)).await? else {
            continue;
        };
        let read_up_to = conversation.member(user).map(|m| m.read_up_to).unwrap_or(0);
        let last_message = query_opt(conn, &last_sql, &[&id, &to_i64(conversation.last_seq)])
            .await?
            .map(|r| message_from_row(&r, 0))
            .transpose()?;
        let unread: i64 = query_one(
            conn,
            "SELECT COUNT(*) FROM messages WHERE conversation_id=$1 AND seq > $2 AND sender_id != $3",
            &[&id, &to_i64(read_up_to), &user.0],
        )
        .await?
        .try_get(0)?;
        out.push(ConversationSummaryRecord {
            conversation,
            last_message,
            unread_count: to_u64(unread),
        });
    }
    Ok(out)
}

async fn history_query(
    conn: &ClientWrapper,
    query_: &HistoryQuery,
) -> OpResult<(Vec<Message>, bool)> {
    let has_period = query_opt(
        conn,
        "SELECT 1 FROM member_periods WHERE conversation_id=$1 AND user_id=$2 LIMIT 1",
        &[&query_.conversation.0, &query_.viewer.0],
    )
    .await?
    .is_some();
    if !has_period {
        let exists = query_opt(
            conn,
            "SELECT 1 FROM conversations WHERE id=$1",
            &[&query_.conversation.0],
        )
        .await?
        .is_some();
        return Err(if exists {
            StoreError::Forbidden("you are not a member of this conversation").into()
        } else {
            StoreError::NotFound("conversation").into()
        });
    }
    let limit = query_.limit.clamp(1, 100);
    let ascending = query_.after_seq.is_some();
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id=$1 AND m.seq > $3 AND m.seq < $4
         AND EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=$2
                    AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))
         ORDER BY m.seq {} LIMIT $5",
        if ascending { "ASC" } else { "DESC" }
    );
    let before = query_.before_seq.map(to_i64).unwrap_or(i64::MAX);
    let after = query_.after_seq.map(to_i64).unwrap_or(0);
    let rows = query(
        conn,
        &sql,
        &[
            &query_.conversation.0,
            &query_.viewer.0,
            &after,
            &before,
            &(limit as i64 + 1),
        ],
    )
    .await?;
    let mut messages = rows
        .iter()
        .map(|r| message_from_row(r, 0))
        .collect::<OpResult<Vec<_>>>()?;
    let has_more = messages.len() > limit;
    messages.truncate(limit);
    if !ascending {
        messages.reverse();
    }
    Ok((messages, has_more))
}

async fn inbox_since_query(
    conn: &ClientWrapper,
    user: UserId,
    since: u64,
    limit: usize,
) -> OpResult<Vec<InboxEntry>> {
    let row = query_opt(
        conn,
        "SELECT inbox_head, inbox_floor FROM users WHERE id=$1",
        &[&user.0],
    )
    .await?
    .ok_or(StoreError::NotFound("user"))?;
    let (head, floor): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if since < to_u64(floor) || since > to_u64(head) {
        return Err(StoreError::ResyncRequired.into());
    }
    let columns = MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT i.cursor, {columns} FROM inbox i
         JOIN messages m ON m.conversation_id=i.conversation_id AND m.seq=i.seq
         WHERE i.user_id=$1 AND i.cursor > $2 ORDER BY i.cursor LIMIT $3"
    );
    let limit = limit.min(i64::MAX as usize) as i64;
    let rows = query(conn, &sql, &[&user.0, &to_i64(since), &limit]).await?;
    rows.iter()
        .map(|row| {
            Ok(InboxEntry {
                cursor: to_u64(row.try_get(0)?),
                message: message_from_row(row, 1)?,
            })
        })
        .collect()
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<UserRecord> {
        expect_output!(self.write(WriteOp::CreateUser(new)).await?, User(user))
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id=$1");
        read!(self, |conn| load_user(conn, &sql, &id.0))
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username=$1");
        read!(self, |conn| load_user(conn, &sql, &username))
    }

    async fn set_presence_visibility(
        &self,
        user: UserId,
        visibility: PresenceVisibility,
    ) -> StoreResult<()> {
        self.write(WriteOp::SetPresence(user, visibility))
            .await
            .map(|_| ())
    }

    async fn set_last_seen(&self, user: UserId, at_ms: i64) -> StoreResult<()> {
        self.write(WriteOp::SetLastSeen(user, at_ms))
            .await
            .map(|_| ())
    }

    async fn create_device(
        &self,
        user: UserId,
        name: String,
        now_ms: i64,
    ) -> StoreResult<DeviceRecord> {
        expect_output!(
            self.write(WriteOp::CreateDevice(user, name, now_ms))
                .await?,
            Device(device)
        )
    }

    async fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        read!(self, |conn| async move {
            let rows = query(
                conn,
                "SELECT id, name, created_at_ms FROM devices WHERE user_id=$1 AND revoked_at_ms IS NULL ORDER BY id",
                &[&user.0],
            )
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(DeviceRecord {
                        id: DeviceId(r.try_get(0)?),
                        user_id: user,
                        name: r.try_get(1)?,
                        created_at_ms: r.try_get(2)?,
                    })
                })
                .collect::<OpResult<Vec<_>>>()
        })
    }

    async fn revoke_device(&self, user: UserId, device: DeviceId, now_ms: i64) -> StoreResult<()> {
        self.write(WriteOp::RevokeDevice(user, device, now_ms))
            .await
            .map(|_| ())
    }

    async fn revoked_devices(&self) -> StoreResult<Vec<DeviceId>> {
        read!(self, |conn| async move {
            let rows = query(
                conn,
                "SELECT id FROM devices WHERE revoked_at_ms IS NOT NULL",
                &[],
            )
            .await?;
            rows.iter()
                .map(|r| Ok(DeviceId(r.try_get(0)?)))
                .collect::<OpResult<Vec<_>>>()
        })
    }

    async fn get_or_create_direct(
        &self,
        a: UserId,
        b: UserId,
        now_ms: i64,
    ) -> StoreResult<(ConversationRecord, bool)> {
        expect_output!(
            self.write(WriteOp::Direct(a, b, now_ms)).await?,
            Direct(record, created)
        )
    }

    async fn create_group(&self, new: NewGroup) -> StoreResult<ConversationRecord> {
        expect_output!(
            self.write(WriteOp::CreateGroup(new)).await?,
            Conversation(record)
        )
    }

    async fn change_group(&self, change: GroupChange) -> StoreResult<ConversationRecord> {
        expect_output!(
            self.write(WriteOp::ChangeGroup(change)).await?,
            Conversation(record)
        )
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>> {
        read!(self, |conn| load_conversation(conn, id))
    }

    async fn conversations_for(&self, user: UserId) -> StoreResult<Vec<ConversationSummaryRecord>> {
        read!(self, |conn| conversations_for_query(conn, user))
    }

    fn append_message(&self, new: NewMessage) -> PendingAppend {
        let output = self.enqueue(WriteOp::Append(new));
        Box::pin(async move { expect_output!(output.await?, Appended(appended)) })
    }

    async fn history(&self, query: HistoryQuery) -> StoreResult<(Vec<Message>, bool)> {
        read!(self, |conn| history_query(conn, &query))
    }

    async fn advance_receipt(
        &self,
        conversation: ConversationId,
        user: UserId,
        device: Option<DeviceId>,
        status: ReceiptStatus,
        up_to_seq: u64,
    ) -> StoreResult<ReceiptChange> {
        let op = WriteOp::Receipt(conversation, user, device, status, up_to_seq);
        expect_output!(self.write(op).await?, Receipt(change))
    }

    async fn inbox_head(&self, user: UserId) -> StoreResult<u64> {
        read!(self, |conn| async move {
            let head: Option<i64> =
                query_opt(conn, "SELECT inbox_head FROM users WHERE id=$1", &[&user.0])
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
            Ok(to_u64(head.unwrap_or(0)))
        })
    }

    async fn inbox_since(
        &self,
        user: UserId,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<InboxEntry>> {
        read!(self, |conn| inbox_since_query(conn, user, since, limit))
    }

    async fn prune_inbox(&self, before_ms: i64) -> StoreResult<u64> {
        expect_output!(self.write(WriteOp::Prune(before_ms)).await?, Count(count))
    }

    async fn shutdown(&self) {
        let sender = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(sender);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            // The writer drains its queue, committing every queued op, then ends.
            let _ = writer.await;
        }
        self.pool.close();
    }
}
