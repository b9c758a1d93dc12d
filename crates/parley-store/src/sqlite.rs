//! The embedded SQLite store.
//!
//! One dedicated writer thread owns the only write connection. It takes every
//! job waiting in its queue, runs each in its own savepoint inside one
//! transaction, commits once (WAL, `synchronous=FULL` by default, so the
//! commit is an fsync), and only then completes the jobs and announces their
//! changes. That is group commit: under load one fsync covers hundreds of
//! sends. Because one thread assigns every `seq` and cursor, they are gapless
//! by construction.
//!
//! Reads run on Tokio's blocking pool against a small pool of read-only
//! connections; in WAL mode they see the last committed snapshot and never
//! wait for the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use async_trait::async_trait;
use parley_proto::api::{ConversationKind, PresenceVisibility};
use parley_proto::{
    ConversationId, DeviceId, Message, MessageId, MessageKind, ReceiptStatus, Role, SystemEvent,
    UserId, now_ms,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::domain::{self, GroupPlan};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::{CommitReceiver, CommitSender, PendingAppend, Store};

/// Tuning of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (fsync on every commit). Turning it off
    /// (`NORMAL`) loses the last commits on power loss, not on a crash.
    pub synchronous_full: bool,
    /// At most this many jobs share one transaction.
    pub max_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: true,
            max_batch: 1024,
        }
    }
}

/// Called once the transaction a job ran in has committed (or failed).
type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A general unit of work for the writer thread. `None` means the
/// transaction could not even begin (or the batch is already lost); the job
/// must report failure without touching the database.
type Job = Box<dyn FnOnce(Option<&Connection>, &mut Vec<Committed>) -> Completion + Send>;

/// What the writer thread is asked to do.
enum WriterJob {
    /// A send: the hot path, applied against the writer's cache without a
    /// savepoint (see [`append_hot`]).
    Append(NewMessage, oneshot::Sender<StoreResult<Appended>>),
    /// Anything else, in its own savepoint.
    General {
        run: Job,
        /// The job may change seqs, memberships or inbox heads behind the
        /// cache's back (group administration), so the cache is dropped
        /// after it.
        invalidates_cache: bool,
    },
}

/// The schema, one entry per version. Never edit an entry once released;
/// append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users(
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    presence_visibility TEXT NOT NULL DEFAULT 'everyone',
    last_seen_ms INTEGER,
    created_at_ms INTEGER NOT NULL,
    inbox_head INTEGER NOT NULL DEFAULT 0,
    inbox_floor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE devices(
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX devices_by_user ON devices(user_id);
CREATE TABLE conversations(
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT,
    direct_key TEXT UNIQUE,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_activity_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    summary_delivered INTEGER NOT NULL DEFAULT 0,
    summary_read INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE members(
    conversation_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    role TEXT NOT NULL,
    active INTEGER NOT NULL,
    delivered_up_to INTEGER NOT NULL DEFAULT 0,
    read_up_to INTEGER NOT NULL DEFAULT 0,
    joined_seq INTEGER NOT NULL,
    joined_at_ms INTEGER NOT NULL,
    PRIMARY KEY(conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, active);
CREATE TABLE member_periods(
    conversation_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    from_seq INTEGER NOT NULL,
    to_seq INTEGER,
    PRIMARY KEY(conversation_id, user_id, from_seq)
) WITHOUT ROWID;
CREATE TABLE messages(
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    sender_id INTEGER NOT NULL,
    sender_device_id INTEGER,
    client_msg_id TEXT,
    sent_at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT,
    reply_to_seq INTEGER,
    event TEXT,
    user_ids TEXT,
    name TEXT,
    role TEXT,
    UNIQUE(conversation_id, seq)
);
CREATE UNIQUE INDEX messages_dedup ON messages(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE TABLE inbox(
    user_id INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY(user_id, cursor)
) WITHOUT ROWID;
CREATE INDEX inbox_by_age ON inbox(created_at_ms);
"#,
    // v2: the inbox as runs ("segments") instead of one row per user and
    // message. A user's cursors c in [first_cursor, next segment's first_cursor)
    // are the messages first_seq + (c - first_cursor) of one conversation, so a
    // member of a busy group costs no row per message, only one per switch of
    // conversation. Existing rows are folded into runs.
    r#"
CREATE TABLE inbox_segments(
    user_id INTEGER NOT NULL,
    first_cursor INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY(user_id, first_cursor)
) WITHOUT ROWID;
CREATE INDEX inbox_segments_by_age ON inbox_segments(created_at_ms);
INSERT INTO inbox_segments(user_id, first_cursor, conversation_id, first_seq, created_at_ms)
SELECT user_id, cursor, conversation_id, seq, created_at_ms FROM (
    SELECT user_id, cursor, conversation_id, seq, created_at_ms,
           LAG(conversation_id) OVER w AS prev_conversation,
           LAG(seq) OVER w AS prev_seq,
           LAG(cursor) OVER w AS prev_cursor
    FROM inbox WINDOW w AS (PARTITION BY user_id ORDER BY cursor)
)
WHERE prev_cursor IS NULL OR prev_cursor != cursor - 1
   OR prev_conversation != conversation_id OR prev_seq != seq - 1;
DROP TABLE inbox;
"#,
];

const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms, kind, \
                               text, reply_to_seq, event, user_ids, name, role";

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    /// `None` once shut down.
    jobs: Mutex<Option<std_mpsc::Sender<WriterJob>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReaderPool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies
    /// migrations, and starts the writer thread.
    pub fn open(path: &Path, options: SqliteOptions) -> StoreResult<(SqliteStore, CommitReceiver)> {
        let mut conn = open_connection(path, &options)?;
        migrate(&mut conn)?;
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = std_mpsc::channel::<WriterJob>();
        let max_batch = options.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("parley-sqlite-writer".into())
            .spawn(move || writer_loop(conn, jobs_rx, events_tx, max_batch))
            .map_err(|e| StoreError::Internal(format!("cannot start writer thread: {e}")))?;
        let store = SqliteStore {
            jobs: Mutex::new(Some(jobs_tx)),
            writer: Mutex::new(Some(writer)),
            readers: Arc::new(ReaderPool {
                path: path.to_owned(),
                options,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(ReaderPool::MAX_READERS)),
            }),
        };
        Ok((store, events_rx))
    }

    /// Runs `f` on the writer thread inside the next group commit and
    /// resolves once that transaction is durable.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> StoreResult<T> + Send + 'static,
    {
        self.enqueue(f, false).await
    }

    /// Like [`SqliteStore::write`], for jobs that change seqs, memberships
    /// or inbox heads directly in SQL.
    async fn write_invalidating<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> StoreResult<T> + Send + 'static,
    {
        self.enqueue(f, true).await
    }

    /// Hands `job` to the writer thread now.
    fn submit(&self, job: WriterJob) -> StoreResult<()> {
        // A std mutex: held only to send, never across an await.
        let guard = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            None => Err(StoreError::Unavailable("store is shutting down".into())),
            Some(sender) => sender
                .send(job)
                .map_err(|_| StoreError::Unavailable("store writer has stopped".into())),
        }
    }

    /// Enqueues `f` for the writer now and returns a future of its result.
    fn enqueue<T, F>(
        &self,
        f: F,
        invalidates_cache: bool,
    ) -> impl std::future::Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> StoreResult<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |conn, events| {
            let result = match conn {
                Some(conn) => run_in_savepoint(conn, events, f),
                None => Err(StoreError::Unavailable(
                    "could not begin a transaction".into(),
                )),
            };
            Box::new(move |commit: StoreResult<()>| {
                let _ = reply_tx.send(commit.and(result));
            })
        });
        let queued = self.submit(WriterJob::General {
            run: job,
            invalidates_cache,
        });
        async move {
            queued?;
            reply_rx
                .await
                .map_err(|_| StoreError::Internal("store writer dropped a job".into()))?
        }
    }

    /// Runs `f` on a reader connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        // At most MAX_READERS reads run at once: a reconnect storm queues
        // here instead of opening (and then dropping) hundreds of
        // connections on hundreds of blocking threads.
        let permit = pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("store is shutting down".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.take()?;
            let result = f(&conn);
            pool.put(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("reader task failed: {e}")))?
    }
}

struct ReaderPool {
    path: PathBuf,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl ReaderPool {
    /// Reads at once; every one keeps its connection afterwards.
    const MAX_READERS: usize = 8;
    const MAX_IDLE: usize = Self::MAX_READERS;

    fn take(&self) -> StoreResult<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_connection(&self.path, &self.options),
        }
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < Self::MAX_IDLE {
            idle.push(conn);
        }
    }
}

fn open_connection(path: &Path, options: &SqliteOptions) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        if options.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every job runs in a savepoint; with temp files the savepoint journal
    // is written through the kernel on every job (the profile showed it).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    )?;
    let current: i64 = conn
        .query_row(
            "SELECT value FROM schema_meta WHERE key='version'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Internal(format!(
            "the database schema is version {current}, newer than this binary knows ({known}); \
             run a newer parley or restore a matching backup"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_meta(key, value) VALUES('version', ?1)
             ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![index as i64 + 1],
        )?;
        tx.commit()?;
        tracing::info!(version = index + 1, "applied SQLite schema migration");
    }
    Ok(())
}

fn run_in_savepoint<T>(
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

fn writer_loop(
    conn: Connection,
    jobs: std_mpsc::Receiver<WriterJob>,
    events_tx: CommitSender,
    max_batch: usize,
) {
    let mut cache = WriterCache::default();
    // Another process may write the same file (SQLite allows it); its
    // commits change `data_version`, and then the cache is stale.
    let mut data_version: Option<i64> = None;
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
        let mut broken: Option<StoreError> =
            conn.execute_batch("BEGIN IMMEDIATE").err().map(|err| {
                tracing::error!(%err, "cannot begin a write transaction");
                StoreError::from(err)
            });
        if broken.is_none() {
            match conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)) {
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
        let outcome: StoreResult<()> = match broken {
            Some(err) => Err(err),
            None => cache.flush(&conn).and_then(|()| {
                conn.execute_batch("COMMIT").map_err(|err| {
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
        }
        let committed = outcome.is_ok();
        for complete in completions {
            complete(outcome.clone());
        }
        if committed {
            for event in events {
                // The receiver is gone only during shutdown; nothing to tell.
                let _ = events_tx.send(event);
            }
        }
        metrics::histogram!("parley_commit_batch_size").record(batch_len as f64);
        metrics::histogram!("parley_commit_seconds").record(started.elapsed().as_secs_f64());
    }
    tracing::info!("SQLite writer stopped");
}

/// State that only the writer thread changes, kept in memory so that a send
/// costs one message insert (plus an inbox segment for a recipient whose
/// stream switches conversation) instead of a dozen statements. Dirty values are written back (in the same
/// transaction) before any other job runs and before every COMMIT, so
/// readers and other jobs always see the database exactly as if there were
/// no cache. Any rollback clears it.
#[derive(Default)]
struct WriterCache {
    conversations: HashMap<ConversationId, CachedConversation>,
    inboxes: HashMap<UserId, CachedInbox>,
    /// Pending advances of senders' own cursors: (conversation, sender) -> seq.
    own_cursors: HashMap<(ConversationId, UserId), u64>,
}

struct CachedConversation {
    last_seq: u64,
    last_activity_ms: i64,
    members: Arc<[UserId]>,
    dirty: bool,
}

/// A user's inbox head and its last segment.
#[derive(Clone, Copy)]
struct CachedInbox {
    head: u64,
    last: Option<Segment>,
    dirty: bool,
}

/// A run of a user's inbox: cursors from `first_cursor` on are the messages
/// of `conversation` from `first_seq` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    conversation: ConversationId,
    first_cursor: u64,
    first_seq: u64,
}

impl Segment {
    /// Whether giving (`conversation`, `seq`) the cursor `cursor` continues
    /// this run.
    fn extends_to(&self, conversation: ConversationId, seq: u64, cursor: u64) -> bool {
        self.conversation == conversation
            && cursor >= self.first_cursor
            && self.first_seq + (cursor - self.first_cursor) == seq
    }
}

/// The user's inbox head and last segment, as stored.
fn load_inbox(conn: &Connection, user: UserId) -> StoreResult<CachedInbox> {
    let head: i64 = conn
        .prepare_cached("SELECT inbox_head FROM users WHERE id=?1")?
        .query_row([user.0], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::Internal(format!(
            "member {user} has no user row"
        )))?;
    let last = conn
        .prepare_cached(
            "SELECT conversation_id, first_cursor, first_seq FROM inbox_segments
             WHERE user_id=?1 ORDER BY first_cursor DESC LIMIT 1",
        )?
        .query_row([user.0], |r| {
            Ok(Segment {
                conversation: ConversationId(r.get(0)?),
                first_cursor: to_u64(r.get(1)?),
                first_seq: to_u64(r.get(2)?),
            })
        })
        .optional()?;
    Ok(CachedInbox {
        head: to_u64(head),
        last,
        dirty: false,
    })
}

/// Gives (`conversation`, `seq`) the user's next cursor: a new segment row
/// only when the run breaks. Returns the cursor and the new last segment.
fn next_inbox_cursor(
    conn: &Connection,
    user: UserId,
    inbox: &CachedInbox,
    conversation: ConversationId,
    seq: u64,
    now: i64,
) -> StoreResult<(u64, Segment)> {
    let cursor = inbox.head + 1;
    match inbox.last {
        Some(last) if last.extends_to(conversation, seq, cursor) => Ok((cursor, last)),
        _ => {
            conn.prepare_cached(
                "INSERT INTO inbox_segments(user_id, first_cursor, conversation_id, first_seq, created_at_ms)
                 VALUES(?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![user.0, cursor as i64, conversation.0, seq as i64, now])?;
            Ok((
                cursor,
                Segment {
                    conversation,
                    first_cursor: cursor,
                    first_seq: seq,
                },
            ))
        }
    }
}

impl WriterCache {
    /// Beyond this many entries the (clean) cache is dropped and refilled.
    const MAX_ENTRIES: usize = 100_000;

    fn flush(&mut self, conn: &Connection) -> StoreResult<()> {
        let mut update_conversation = conn.prepare_cached(
            "UPDATE conversations SET last_seq=?2, last_activity_ms=?3 WHERE id=?1",
        )?;
        for (id, conversation) in self.conversations.iter_mut().filter(|(_, c)| c.dirty) {
            update_conversation.execute(params![
                id.0,
                conversation.last_seq as i64,
                conversation.last_activity_ms
            ])?;
            conversation.dirty = false;
        }
        let mut update_head = conn.prepare_cached("UPDATE users SET inbox_head=?2 WHERE id=?1")?;
        for (user, inbox) in self.inboxes.iter_mut().filter(|(_, i)| i.dirty) {
            update_head.execute(params![user.0, inbox.head as i64])?;
            inbox.dirty = false;
        }
        let mut update_cursor = conn.prepare_cached(
            "UPDATE members SET delivered_up_to=MAX(delivered_up_to, ?3), read_up_to=MAX(read_up_to, ?3)
             WHERE conversation_id=?1 AND user_id=?2",
        )?;
        for ((conversation, user), seq) in self.own_cursors.drain() {
            update_cursor.execute(params![conversation.0, user.0, seq as i64])?;
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.conversations.clear();
        self.inboxes.clear();
        self.own_cursors.clear();
    }

    /// Called after a commit, when everything is clean.
    fn trim(&mut self) {
        if self.conversations.len() > Self::MAX_ENTRIES || self.inboxes.len() > Self::MAX_ENTRIES {
            self.clear();
        }
    }

    /// The conversation's seq and members, loaded on first use.
    fn conversation(
        &mut self,
        conn: &Connection,
        id: ConversationId,
    ) -> StoreResult<Option<&mut CachedConversation>> {
        use std::collections::hash_map::Entry;
        let vacant = match self.conversations.entry(id) {
            Entry::Occupied(cached) => return Ok(Some(cached.into_mut())),
            Entry::Vacant(vacant) => vacant,
        };
        let header: Option<(i64, i64)> = conn
            .prepare_cached("SELECT last_seq, last_activity_ms FROM conversations WHERE id=?1")?
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((last_seq, last_activity_ms)) = header else {
            return Ok(None);
        };
        let members: Arc<[UserId]> = active_member_ids(conn, id)?.into();
        Ok(Some(vacant.insert(CachedConversation {
            last_seq: to_u64(last_seq),
            last_activity_ms,
            members,
            dirty: false,
        })))
    }

    /// Gives (`conversation`, `seq`) the user's next inbox cursor.
    fn deliver(
        &mut self,
        conn: &Connection,
        user: UserId,
        conversation: ConversationId,
        seq: u64,
        now: i64,
    ) -> StoreResult<u64> {
        let inbox = match self.inboxes.get(&user) {
            Some(cached) => *cached,
            None => load_inbox(conn, user)?,
        };
        let (cursor, last) = next_inbox_cursor(conn, user, &inbox, conversation, seq, now)?;
        self.inboxes.insert(
            user,
            CachedInbox {
                head: cursor,
                last: Some(last),
                dirty: true,
            },
        );
        Ok(cursor)
    }
}

/// Why a hot-path append did not store a message.
enum AppendFailure {
    /// Refused before anything was written (not a member, unknown
    /// conversation, bad reply): the batch carries on.
    Refused(StoreError),
    /// A write failed half-way: the batch must be rolled back.
    Broken(StoreError),
}

/// The original of a repeated send, or `refusal`.
fn duplicate_or(
    conn: &Connection,
    new: &NewMessage,
    refusal: StoreError,
) -> Result<Appended, AppendFailure> {
    match find_duplicate(conn, new.sender_id, &new.client_msg_id) {
        Ok(Some(original)) => Ok(Appended {
            message: original,
            duplicate: true,
        }),
        Ok(None) => Err(AppendFailure::Refused(refusal)),
        Err(err) => Err(AppendFailure::Broken(err)),
    }
}

/// Appends a text message on the writer thread: checks against the cache,
/// inserts the message (a repeat of (sender, client_msg_id) is caught by the
/// unique index and answered with the original), then one inbox pointer per
/// member. The seq and cursors are taken from the cache and written back at
/// commit.
fn append_hot(
    conn: &Connection,
    cache: &mut WriterCache,
    events: &mut Vec<Committed>,
    new: NewMessage,
) -> Result<Appended, AppendFailure> {
    use AppendFailure::Broken;
    let id = new.conversation_id;
    let (last_seq, members) = match cache.conversation(conn, id).map_err(Broken)? {
        Some(conversation) => (conversation.last_seq, conversation.members.clone()),
        None => return duplicate_or(conn, &new, StoreError::NotFound("conversation")),
    };
    if !members.contains(&new.sender_id) {
        return duplicate_or(
            conn,
            &new,
            StoreError::Forbidden("you are not a member of this conversation"),
        );
    }
    let seq = last_seq + 1;
    if let Some(reply) = new.reply_to_seq
        && (reply == 0 || reply >= seq)
    {
        return duplicate_or(
            conn,
            &new,
            StoreError::Invalid("reply_to_seq does not name an earlier message".into()),
        );
    }
    let now = now_ms();
    // No RETURNING: it costs an ephemeral table per insert (callgrind);
    // the row count says whether the dedup index ignored it.
    let inserted: Option<i64> = conn
        .prepare_cached(
            "INSERT INTO messages(conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms, kind,
                                  text, reply_to_seq)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'text', ?7, ?8)
             ON CONFLICT(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                id.0,
                seq as i64,
                new.sender_id.0,
                new.sender_device_id.0,
                new.client_msg_id,
                now,
                new.text,
                new.reply_to_seq.map(|s| s as i64),
            ])
        })
        .map(|changed| (changed == 1).then(|| conn.last_insert_rowid()))
        .map_err(|e| Broken(e.into()))?;
    let Some(message_id) = inserted else {
        return match find_duplicate(conn, new.sender_id, &new.client_msg_id) {
            Ok(Some(original)) => Ok(Appended {
                message: original,
                duplicate: true,
            }),
            Ok(None) => Err(Broken(StoreError::Internal(
                "an insert was ignored but no original exists".into(),
            ))),
            Err(err) => Err(Broken(err)),
        };
    };
    let mut recipients = Vec::with_capacity(members.len());
    for &user in members.iter() {
        let cursor = cache.deliver(conn, user, id, seq, now).map_err(Broken)?;
        recipients.push(Recipient {
            user_id: user,
            cursor,
        });
    }
    if let Some(conversation) = cache.conversations.get_mut(&id) {
        conversation.last_seq = seq;
        conversation.last_activity_ms = now;
        conversation.dirty = true;
    }
    // A member's own sends advance its own cursors.
    let own = cache.own_cursors.entry((id, new.sender_id)).or_insert(seq);
    *own = (*own).max(seq);
    let message = Message {
        conversation_id: id,
        seq,
        message_id: MessageId(message_id),
        sender_id: new.sender_id,
        sender_device_id: Some(new.sender_device_id),
        client_msg_id: Some(new.client_msg_id),
        sent_at_ms: now,
        kind: MessageKind::Text,
        text: Some(new.text),
        reply_to_seq: new.reply_to_seq,
        event: None,
        user_ids: None,
        name: None,
        role: None,
    };
    events.push(Committed::Message {
        message: Arc::new(message.clone()),
        recipients,
    });
    Ok(Appended {
        message,
        duplicate: false,
    })
}

fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    message_from_offset_row(row, 0)
}

/// Reads a message whose [`MESSAGE_COLUMNS`] start at column `at`.
fn message_from_offset_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Message> {
    let kind: String = row.get(at + 7)?;
    let event: Option<String> = row.get(at + 10)?;
    let user_ids: Option<String> = row.get(at + 11)?;
    let role: Option<String> = row.get(at + 13)?;
    Ok(Message {
        message_id: MessageId(row.get(at)?),
        conversation_id: ConversationId(row.get(at + 1)?),
        seq: to_u64(row.get(at + 2)?),
        sender_id: UserId(row.get(at + 3)?),
        sender_device_id: row.get::<_, Option<i64>>(at + 4)?.map(DeviceId),
        client_msg_id: row.get(at + 5)?,
        sent_at_ms: row.get(at + 6)?,
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
        text: row.get(at + 8)?,
        reply_to_seq: row.get::<_, Option<i64>>(at + 9)?.map(to_u64),
        event: event.as_deref().and_then(SystemEvent::parse),
        user_ids: user_ids.and_then(|s| serde_json::from_str(&s).ok()),
        name: row.get(at + 12)?,
        role: role.as_deref().map(Role::parse),
    })
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    let visibility: String = row.get(4)?;
    Ok(UserRecord {
        id: UserId(row.get(0)?),
        username: row.get(1)?,
        display_name: row.get(2)?,
        password_hash: row.get(3)?,
        presence_visibility: PresenceVisibility::parse(&visibility),
        last_seen_ms: row.get(5)?,
        created_at_ms: row.get(6)?,
    })
}

const USER_COLUMNS: &str =
    "id, username, display_name, password_hash, presence_visibility, last_seen_ms, created_at_ms";

fn user_exists(conn: &Connection, user: UserId) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM users WHERE id=?1")?
        .query_row([user.0], |_| Ok(()))
        .optional()?
        .is_some())
}

fn load_conversation(
    conn: &Connection,
    id: ConversationId,
) -> StoreResult<Option<ConversationRecord>> {
    let header = conn
        .prepare_cached(
            "SELECT kind, name, last_seq, summary_delivered, summary_read FROM conversations WHERE id=?1",
        )?
        .query_row([id.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((kind, name, last_seq, summary_delivered, summary_read)) = header else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, role, delivered_up_to, read_up_to, joined_seq FROM members
         WHERE conversation_id=?1 AND active=1 ORDER BY joined_at_ms, user_id",
    )?;
    let members = stmt
        .query_map([id.0], |r| {
            Ok(MemberRecord {
                user_id: UserId(r.get(0)?),
                role: Role::parse(&r.get::<_, String>(1)?),
                delivered_up_to: to_u64(r.get(2)?),
                read_up_to: to_u64(r.get(3)?),
                joined_seq: to_u64(r.get(4)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(ConversationRecord {
        id,
        kind: ConversationKind::parse(&kind),
        name,
        last_seq: to_u64(last_seq),
        members,
        delivered_all_up_to: to_u64(summary_delivered),
        read_all_up_to: to_u64(summary_read),
    }))
}

fn active_member_ids(conn: &Connection, conversation: ConversationId) -> StoreResult<Vec<UserId>> {
    let mut stmt =
        conn.prepare_cached("SELECT user_id FROM members WHERE conversation_id=?1 AND active=1 ORDER BY joined_at_ms, user_id")?;
    let ids = stmt
        .query_map([conversation.0], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

fn find_duplicate(
    conn: &Connection,
    sender: UserId,
    client_msg_id: &str,
) -> StoreResult<Option<Message>> {
    let sql =
        format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id=?1 AND client_msg_id=?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![sender.0, client_msg_id], message_from_row)
        .optional()?)
}

/// Gives every user in `users` its next inbox cursor for (`conversation`,
/// `seq`), in SQL (the general path; the writer cache is flushed before and
/// dropped after such jobs).
fn push_inbox(
    conn: &Connection,
    users: &[UserId],
    conversation: ConversationId,
    seq: u64,
    now: i64,
) -> StoreResult<Vec<Recipient>> {
    let mut recipients = Vec::with_capacity(users.len());
    for &user in users {
        let inbox = load_inbox(conn, user)?;
        let (cursor, _) = next_inbox_cursor(conn, user, &inbox, conversation, seq, now)?;
        conn.prepare_cached("UPDATE users SET inbox_head=?2 WHERE id=?1")?
            .execute(params![user.0, cursor as i64])?;
        recipients.push(Recipient {
            user_id: user,
            cursor,
        });
    }
    Ok(recipients)
}

/// Stores `message` (its `seq` must be `last_seq + 1`), advances the
/// sender's own cursors, gives every recipient an inbox pointer, and
/// announces it. Returns the message with its id.
fn insert_message(
    conn: &Connection,
    events: &mut Vec<Committed>,
    mut message: Message,
    recipients: &[UserId],
) -> StoreResult<Message> {
    let user_ids = message
        .user_ids
        .as_ref()
        .map(|ids| serde_json::to_string(ids).unwrap_or_default());
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO messages(conversation_id, seq, sender_id, sender_device_id, client_msg_id, sent_at_ms, kind,
                                  text, reply_to_seq, event, user_ids, name, role)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
        )?
        .query_row(
            params![
                message.conversation_id.0,
                message.seq as i64,
                message.sender_id.0,
                message.sender_device_id.map(|d| d.0),
                message.client_msg_id,
                message.sent_at_ms,
                message.kind.as_str(),
                message.text,
                message.reply_to_seq.map(|s| s as i64),
                message.event.map(|e| e.as_str()),
                user_ids,
                message.name,
                message.role.map(|r| r.as_str()),
            ],
            |r| r.get(0),
        )?;
    message.message_id = MessageId(id);
    let seq = message.seq as i64;
    let updated = conn
        .prepare_cached("UPDATE conversations SET last_seq=?2, last_activity_ms=?3 WHERE id=?1 AND last_seq=?2 - 1")?
        .execute(params![message.conversation_id.0, seq, message.sent_at_ms])?;
    if updated != 1 {
        // The caller computed seq from a stale read: a bug, never a gap.
        return Err(StoreError::Internal(format!(
            "seq {} is not the next seq of {}",
            seq, message.conversation_id
        )));
    }
    conn.prepare_cached(
        "UPDATE members SET delivered_up_to=MAX(delivered_up_to, ?3), read_up_to=MAX(read_up_to, ?3)
         WHERE conversation_id=?1 AND user_id=?2",
    )?
    .execute(params![message.conversation_id.0, message.sender_id.0, seq])?;
    let recipients = push_inbox(
        conn,
        recipients,
        message.conversation_id,
        message.seq,
        message.sent_at_ms,
    )?;
    events.push(Committed::Message {
        message: Arc::new(message.clone()),
        recipients,
    });
    Ok(message)
}

fn add_member_row(
    conn: &Connection,
    conversation: ConversationId,
    user: UserId,
    role: Role,
    joined_seq: u64,
    now: i64,
) -> StoreResult<()> {
    let cursor = joined_seq as i64 - 1;
    conn.prepare_cached(
        "INSERT INTO members(conversation_id, user_id, role, active, delivered_up_to, read_up_to, joined_seq, joined_at_ms)
         VALUES(?1, ?2, ?3, 1, ?4, ?4, ?5, ?6)
         ON CONFLICT(conversation_id, user_id) DO UPDATE SET
            role=excluded.role, active=1, delivered_up_to=MAX(members.delivered_up_to, excluded.delivered_up_to),
            read_up_to=MAX(members.read_up_to, excluded.read_up_to), joined_seq=excluded.joined_seq,
            joined_at_ms=excluded.joined_at_ms",
    )?
    .execute(params![conversation.0, user.0, role.as_str(), cursor, joined_seq as i64, now])?;
    conn.prepare_cached("INSERT OR REPLACE INTO member_periods(conversation_id, user_id, from_seq, to_seq) VALUES(?1, ?2, ?3, NULL)")?
        .execute(params![conversation.0, user.0, joined_seq as i64])?;
    Ok(())
}

/// Refuses unless every user exists.
fn check_users_exist(conn: &Connection, users: &[UserId]) -> StoreResult<()> {
    for &user in users {
        if !user_exists(conn, user)? {
            return Err(StoreError::NotFound("user"));
        }
    }
    Ok(())
}

fn create_group_tx(
    conn: &Connection,
    events: &mut Vec<Committed>,
    new: NewGroup,
) -> StoreResult<ConversationRecord> {
    let name = domain::validate_group_name(&new.name)?;
    let others = domain::distinct_candidates(&new.member_ids, &[new.creator], new.max_members)?;
    domain::check_group_size(others.len() + 1, new.max_members)?;
    check_users_exist(conn, &others)?;
    check_users_exist(conn, &[new.creator])?;
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO conversations(kind, name, last_seq, last_activity_ms, created_at_ms) VALUES('group', ?1, 0, ?2, ?2) RETURNING id",
        )?
        .query_row(params![name, new.now_ms], |r| r.get(0))?;
    let conversation = ConversationId(id);
    let mut all = Vec::with_capacity(others.len() + 1);
    all.push(new.creator);
    all.extend(others.iter().copied());
    add_member_row(conn, conversation, new.creator, Role::Admin, 1, new.now_ms)?;
    for &user in &others {
        add_member_row(conn, conversation, user, Role::Member, 1, new.now_ms)?;
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
    insert_message(conn, events, message, &all)?;
    load_conversation(conn, conversation)?.ok_or(StoreError::Internal("group vanished".into()))
}

fn change_group_tx(
    conn: &Connection,
    events: &mut Vec<Committed>,
    change: GroupChange,
) -> StoreResult<ConversationRecord> {
    let conversation = change.conversation;
    let record =
        load_conversation(conn, conversation)?.ok_or(StoreError::NotFound("conversation"))?;
    let (now, seq, actor) = (change.now_ms, record.last_seq + 1, change.actor);
    let everyone: Vec<UserId> = record.members.iter().map(|m| m.user_id).collect();
    match domain::plan_group_change(&record, &change)? {
        GroupPlan::Unchanged => return Ok(record),
        GroupPlan::Add { candidates } => {
            check_users_exist(conn, &candidates)?;
            for &user in &candidates {
                add_member_row(conn, conversation, user, Role::Member, seq, now)?;
            }
            let recipients = active_member_ids(conn, conversation)?;
            let message = domain::system_message(
                conversation,
                seq,
                actor,
                SystemEvent::MemberAdded,
                candidates,
                now,
            );
            insert_message(conn, events, message, &recipients)?;
        }
        GroupPlan::Remove {
            user,
            event,
            successor,
        } => {
            // The removed member is still active here, so it receives its
            // own removal, and nothing after it.
            let message = domain::system_message(conversation, seq, actor, event, vec![user], now);
            insert_message(conn, events, message, &everyone)?;
            conn.prepare_cached(
                "UPDATE members SET active=0 WHERE conversation_id=?1 AND user_id=?2",
            )?
            .execute(params![conversation.0, user.0])?;
            conn.prepare_cached(
                "UPDATE member_periods SET to_seq=?3 WHERE conversation_id=?1 AND user_id=?2 AND to_seq IS NULL",
            )?
            .execute(params![conversation.0, user.0, seq as i64])?;
            if let Some(successor) = successor {
                set_role_row(conn, conversation, successor, Role::Admin)?;
                let mut promoted = domain::system_message(
                    conversation,
                    seq + 1,
                    actor,
                    SystemEvent::RoleChanged,
                    vec![successor],
                    now,
                );
                promoted.role = Some(Role::Admin);
                let remaining = active_member_ids(conn, conversation)?;
                insert_message(conn, events, promoted, &remaining)?;
            }
        }
        GroupPlan::Rename { name } => {
            conn.prepare_cached("UPDATE conversations SET name=?2 WHERE id=?1")?
                .execute(params![conversation.0, name])?;
            let mut message =
                domain::system_message(conversation, seq, actor, SystemEvent::Renamed, vec![], now);
            message.name = Some(name);
            insert_message(conn, events, message, &everyone)?;
        }
        GroupPlan::SetRole { user, role } => {
            set_role_row(conn, conversation, user, role)?;
            let mut message = domain::system_message(
                conversation,
                seq,
                actor,
                SystemEvent::RoleChanged,
                vec![user],
                now,
            );
            message.role = Some(role);
            insert_message(conn, events, message, &everyone)?;
        }
    }
    load_conversation(conn, conversation)?.ok_or(StoreError::Internal("group vanished".into()))
}

fn set_role_row(
    conn: &Connection,
    conversation: ConversationId,
    user: UserId,
    role: Role,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE members SET role=?3 WHERE conversation_id=?1 AND user_id=?2")?
        .execute(params![conversation.0, user.0, role.as_str()])?;
    Ok(())
}

fn receipt_tx(
    conn: &Connection,
    events: &mut Vec<Committed>,
    conversation: ConversationId,
    user: UserId,
    device: Option<DeviceId>,
    status: ReceiptStatus,
    up_to_seq: u64,
) -> StoreResult<ReceiptChange> {
    let (kind, last_seq, summary_delivered, summary_read) = conn
        .prepare_cached(
            "SELECT kind, last_seq, summary_delivered, summary_read FROM conversations WHERE id=?1",
        )?
        .query_row([conversation.0], |r| {
            Ok((
                ConversationKind::parse(&r.get::<_, String>(0)?),
                to_u64(r.get(1)?),
                to_u64(r.get(2)?),
                to_u64(r.get(3)?),
            ))
        })
        .optional()?
        .ok_or(StoreError::NotFound("conversation"))?;
    let (delivered, read) = conn
        .prepare_cached("SELECT delivered_up_to, read_up_to FROM members WHERE conversation_id=?1 AND user_id=?2 AND active=1")?
        .query_row(params![conversation.0, user.0], |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?))))
        .optional()?
        .ok_or(StoreError::Forbidden("you are not a member of this conversation"))?;
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
    if advanced {
        conn.prepare_cached(
            "UPDATE members SET delivered_up_to=?3, read_up_to=?4 WHERE conversation_id=?1 AND user_id=?2",
        )?
        .execute(params![conversation.0, user.0, new_delivered as i64, new_read as i64])?;
        if kind == ConversationKind::Group {
            let (min_delivered, min_read) = conn
                .prepare_cached(
                    "SELECT MIN(delivered_up_to), MIN(read_up_to) FROM members WHERE conversation_id=?1 AND active=1",
                )?
                .query_row([conversation.0], |r| {
                    Ok((to_u64(r.get::<_, Option<i64>>(0)?.unwrap_or(0)), to_u64(r.get::<_, Option<i64>>(1)?.unwrap_or(0))))
                })?;
            let next = (
                summary_delivered.max(min_delivered),
                summary_read.max(min_read),
            );
            if next != (summary_delivered, summary_read) {
                conn.prepare_cached(
                    "UPDATE conversations SET summary_delivered=?2, summary_read=?3 WHERE id=?1",
                )?
                .execute(params![conversation.0, next.0 as i64, next.1 as i64])?;
                summary = Some(next);
            }
        }
    }
    let members = if advanced && (kind == ConversationKind::Direct || summary.is_some()) {
        active_member_ids(conn, conversation)?
    } else {
        vec![user]
    };
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
        events.push(Committed::Receipt(change.clone()));
    }
    Ok(change)
}

fn history_query(conn: &Connection, query: HistoryQuery) -> StoreResult<(Vec<Message>, bool)> {
    let has_period = conn
        .prepare_cached(
            "SELECT 1 FROM member_periods WHERE conversation_id=?1 AND user_id=?2 LIMIT 1",
        )?
        .query_row(params![query.conversation.0, query.viewer.0], |_| Ok(()))
        .optional()?
        .is_some();
    if !has_period {
        let exists = conn
            .prepare_cached("SELECT 1 FROM conversations WHERE id=?1")?
            .query_row([query.conversation.0], |_| Ok(()))
            .optional()?
            .is_some();
        return Err(if exists {
            StoreError::Forbidden("you are not a member of this conversation")
        } else {
            StoreError::NotFound("conversation")
        });
    }
    let limit = query.limit.clamp(1, 100);
    let visible = "EXISTS(SELECT 1 FROM member_periods p WHERE p.conversation_id=m.conversation_id AND p.user_id=?2
                   AND m.seq >= p.from_seq AND (p.to_seq IS NULL OR m.seq <= p.to_seq))";
    let before = query
        .before_seq
        .map(|s| s.min(i64::MAX as u64) as i64)
        .unwrap_or(i64::MAX);
    let (sql, ascending) = match query.after_seq {
        Some(_) => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id=?1 AND m.seq > ?3 AND m.seq < ?4
                 AND {visible} ORDER BY m.seq ASC LIMIT ?5"
            ),
            true,
        ),
        None => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id=?1 AND m.seq > ?3 AND m.seq < ?4
                 AND {visible} ORDER BY m.seq DESC LIMIT ?5"
            ),
            false,
        ),
    };
    let after = query
        .after_seq
        .map(|s| s.min(i64::MAX as u64) as i64)
        .unwrap_or(0);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut messages = stmt
        .query_map(
            params![
                query.conversation.0,
                query.viewer.0,
                after,
                before,
                limit as i64 + 1
            ],
            message_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let has_more = messages.len() > limit;
    messages.truncate(limit);
    if !ascending {
        messages.reverse();
    }
    Ok((messages, has_more))
}

/// A user's segments from the one holding `from_cursor` on, in order.
fn segments_from(conn: &Connection, user: UserId, from_cursor: u64) -> StoreResult<Vec<Segment>> {
    let mut stmt = conn.prepare_cached(
        "SELECT conversation_id, first_cursor, first_seq FROM inbox_segments
         WHERE user_id=?1 AND first_cursor >= COALESCE(
             (SELECT MAX(first_cursor) FROM inbox_segments WHERE user_id=?1 AND first_cursor <= ?2), 0)
         ORDER BY first_cursor",
    )?;
    let segments = stmt
        .query_map(params![user.0, from_cursor as i64], |r| {
            Ok(Segment {
                conversation: ConversationId(r.get(0)?),
                first_cursor: to_u64(r.get(1)?),
                first_seq: to_u64(r.get(2)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(segments)
}

/// Up to `limit` inbox entries after `since` (≤ `head`), walking segments.
fn replay_segments(
    conn: &Connection,
    user: UserId,
    since: u64,
    head: u64,
    limit: usize,
) -> StoreResult<Vec<InboxEntry>> {
    let mut out = Vec::new();
    if since >= head || limit == 0 {
        return Ok(out);
    }
    let segments = segments_from(conn, user, since + 1)?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id=?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    for (i, segment) in segments.iter().enumerate() {
        // This run ends where the next begins, or at the head.
        let end_cursor = segments
            .get(i + 1)
            .map(|next| next.first_cursor - 1)
            .unwrap_or(head)
            .min(head);
        let start_cursor = segment.first_cursor.max(since + 1);
        if start_cursor > end_cursor {
            continue;
        }
        let wanted = (end_cursor - start_cursor + 1).min((limit - out.len()) as u64);
        let first_seq = segment.first_seq + (start_cursor - segment.first_cursor);
        let last_seq = first_seq + wanted - 1;
        let messages = stmt
            .query_map(
                params![segment.conversation.0, first_seq as i64, last_seq as i64],
                message_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if messages.len() as u64 != wanted {
            return Err(StoreError::Internal(format!(
                "inbox of {user} names messages {first_seq}..={last_seq} of {} that are not stored",
                segment.conversation
            )));
        }
        for (offset, message) in messages.into_iter().enumerate() {
            out.push(InboxEntry {
                cursor: start_cursor + offset as u64,
                message,
            });
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Drops inbox positions whose messages are older than `before_ms`: whole
/// old segments are deleted, a partly old one starts later; each user's
/// floor rises to the last dropped cursor. Returns the positions dropped.
fn prune_segments(conn: &Connection, before_ms: i64) -> StoreResult<u64> {
    let users = conn
        .prepare_cached("SELECT DISTINCT user_id FROM inbox_segments WHERE created_at_ms < ?1")?
        .query_map([before_ms], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut dropped = 0u64;
    for user in users {
        let head: i64 = conn
            .prepare_cached("SELECT inbox_head FROM users WHERE id=?1")?
            .query_row([user.0], |r| r.get(0))?;
        let head = to_u64(head);
        let segments = segments_from(conn, user, 0)?;
        let mut floor = 0u64;
        for (i, segment) in segments.iter().enumerate() {
            let next_start = segments.get(i + 1).map(|n| n.first_cursor);
            let len = next_start
                .unwrap_or(head + 1)
                .saturating_sub(segment.first_cursor);
            let old: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM messages WHERE conversation_id=?1 AND seq >= ?2 AND seq < ?3 AND sent_at_ms < ?4",
                )?
                .query_row(
                    params![
                        segment.conversation.0,
                        segment.first_seq as i64,
                        (segment.first_seq + len) as i64,
                        before_ms
                    ],
                    |r| r.get(0),
                )?;
            let old = to_u64(old).min(len);
            if old == 0 {
                break;
            }
            dropped += old;
            floor = segment.first_cursor + old - 1;
            if old == len && next_start.is_some() {
                conn.prepare_cached(
                    "DELETE FROM inbox_segments WHERE user_id=?1 AND first_cursor=?2",
                )?
                .execute(params![user.0, segment.first_cursor as i64])?;
                continue;
            }
            // The run now starts at its first kept position (for the last
            // run possibly the next cursor to be given out, which keeps it
            // extendable).
            conn.prepare_cached(
                "UPDATE inbox_segments SET first_cursor=?3, first_seq=?4, created_at_ms=?5
                 WHERE user_id=?1 AND first_cursor=?2",
            )?
            .execute(params![
                user.0,
                segment.first_cursor as i64,
                (segment.first_cursor + old) as i64,
                (segment.first_seq + old) as i64,
                before_ms
            ])?;
            break;
        }
        if floor > 0 {
            conn.prepare_cached("UPDATE users SET inbox_floor=MAX(inbox_floor, ?2) WHERE id=?1")?
                .execute(params![user.0, floor as i64])?;
        }
    }
    Ok(dropped)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<UserRecord> {
        self.write(move |conn, _| {
            let taken = conn
                .prepare_cached("SELECT 1 FROM users WHERE username=?1")?
                .query_row([&new.username], |_| Ok(()))
                .optional()?
                .is_some();
            if taken {
                return Err(StoreError::Conflict("username is taken"));
            }
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO users(username, display_name, password_hash, created_at_ms) VALUES(?1, ?2, ?3, ?4) RETURNING id",
                )?
                .query_row(params![new.username, new.display_name, new.password_hash, new.now_ms], |r| r.get(0))?;
            Ok(UserRecord {
                id: UserId(id),
                username: new.username,
                display_name: new.display_name,
                password_hash: new.password_hash,
                presence_visibility: PresenceVisibility::Everyone,
                last_seen_ms: None,
                created_at_ms: new.now_ms,
            })
        })
        .await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.read(move |conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id=?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([id.0], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_owned();
        self.read(move |conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username=?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([username], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn set_presence_visibility(
        &self,
        user: UserId,
        visibility: PresenceVisibility,
    ) -> StoreResult<()> {
        self.write(move |conn, _| {
            conn.prepare_cached("UPDATE users SET presence_visibility=?2 WHERE id=?1")?
                .execute(params![user.0, visibility.as_str()])?;
            Ok(())
        })
        .await
    }

    async fn set_last_seen(&self, user: UserId, at_ms: i64) -> StoreResult<()> {
        self.write(move |conn, _| {
            conn.prepare_cached(
                "UPDATE users SET last_seen_ms=MAX(COALESCE(last_seen_ms, 0), ?2) WHERE id=?1",
            )?
            .execute(params![user.0, at_ms])?;
            Ok(())
        })
        .await
    }

    async fn create_device(
        &self,
        user: UserId,
        name: String,
        now_ms: i64,
    ) -> StoreResult<DeviceRecord> {
        self.write(move |conn, _| {
            if !user_exists(conn, user)? {
                return Err(StoreError::NotFound("user"));
            }
            let id: i64 = conn
                .prepare_cached("INSERT INTO devices(user_id, name, created_at_ms) VALUES(?1, ?2, ?3) RETURNING id")?
                .query_row(params![user.0, name, now_ms], |r| r.get(0))?;
            Ok(DeviceRecord {
                id: DeviceId(id),
                user_id: user,
                name,
                created_at_ms: now_ms,
            })
        })
        .await
    }

    async fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, created_at_ms FROM devices WHERE user_id=?1 AND revoked_at_ms IS NULL ORDER BY id",
            )?;
            let devices = stmt
                .query_map([user.0], |r| {
                    Ok(DeviceRecord {
                        id: DeviceId(r.get(0)?),
                        user_id: user,
                        name: r.get(1)?,
                        created_at_ms: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(devices)
        })
        .await
    }

    async fn revoke_device(&self, user: UserId, device: DeviceId, now_ms: i64) -> StoreResult<()> {
        self.write(move |conn, _| {
            let owner: Option<i64> = conn
                .prepare_cached("SELECT user_id FROM devices WHERE id=?1")?
                .query_row([device.0], |r| r.get(0))
                .optional()?;
            if owner != Some(user.0) {
                return Err(StoreError::NotFound("device"));
            }
            conn.prepare_cached(
                "UPDATE devices SET revoked_at_ms=COALESCE(revoked_at_ms, ?2) WHERE id=?1",
            )?
            .execute(params![device.0, now_ms])?;
            Ok(())
        })
        .await
    }

    async fn revoked_devices(&self) -> StoreResult<Vec<DeviceId>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id FROM devices WHERE revoked_at_ms IS NOT NULL")?;
            let ids = stmt
                .query_map([], |r| Ok(DeviceId(r.get(0)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(ids)
        })
        .await
    }

    async fn get_or_create_direct(
        &self,
        a: UserId,
        b: UserId,
        now_ms: i64,
    ) -> StoreResult<(ConversationRecord, bool)> {
        self.write(move |conn, _| {
            if a == b {
                return Err(StoreError::Invalid("a direct conversation needs two different users".into()));
            }
            let key = format!("{}:{}", a.0.min(b.0), a.0.max(b.0));
            let existing: Option<i64> = conn
                .prepare_cached("SELECT id FROM conversations WHERE direct_key=?1")?
                .query_row([&key], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                let record = load_conversation(conn, ConversationId(id))?.ok_or(StoreError::NotFound("conversation"))?;
                return Ok((record, false));
            }
            for user in [a, b] {
                if !user_exists(conn, user)? {
                    return Err(StoreError::NotFound("user"));
                }
            }
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO conversations(kind, direct_key, last_seq, last_activity_ms, created_at_ms)
                     VALUES('direct', ?1, 0, ?2, ?2) RETURNING id",
                )?
                .query_row(params![key, now_ms], |r| r.get(0))?;
            let conversation = ConversationId(id);
            add_member_row(conn, conversation, a, Role::Member, 1, now_ms)?;
            add_member_row(conn, conversation, b, Role::Member, 1, now_ms)?;
            let record = load_conversation(conn, conversation)?.ok_or(StoreError::NotFound("conversation"))?;
            Ok((record, true))
        })
        .await
    }

    async fn create_group(&self, new: NewGroup) -> StoreResult<ConversationRecord> {
        self.write_invalidating(move |conn, events| create_group_tx(conn, events, new))
            .await
    }

    async fn change_group(&self, change: GroupChange) -> StoreResult<ConversationRecord> {
        self.write_invalidating(move |conn, events| change_group_tx(conn, events, change))
            .await
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>> {
        self.read(move |conn| load_conversation(conn, id)).await
    }

    async fn conversations_for(&self, user: UserId) -> StoreResult<Vec<ConversationSummaryRecord>> {
        self.read(move |conn| {
            let ids = conn
                .prepare_cached(
                    "SELECT c.id FROM members m JOIN conversations c ON c.id=m.conversation_id
                     WHERE m.user_id=?1 AND m.active=1 ORDER BY c.last_activity_ms DESC, c.id DESC",
                )?
                .query_map([user.0], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let last_sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id=?1 AND seq=?2");
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let Some(conversation) = load_conversation(conn, ConversationId(id))? else {
                    continue;
                };
                let read_up_to = conversation.member(user).map(|m| m.read_up_to).unwrap_or(0);
                let last_message = conn
                    .prepare_cached(&last_sql)?
                    .query_row(params![id, conversation.last_seq as i64], message_from_row)
                    .optional()?;
                let unread: i64 = conn
                    .prepare_cached(
                        "SELECT COUNT(*) FROM messages WHERE conversation_id=?1 AND seq > ?2 AND sender_id != ?3",
                    )?
                    .query_row(params![id, read_up_to as i64, user.0], |r| r.get(0))?;
                out.push(ConversationSummaryRecord {
                    conversation,
                    last_message,
                    unread_count: to_u64(unread),
                });
            }
            Ok(out)
        })
        .await
    }

    fn append_message(&self, new: NewMessage) -> PendingAppend {
        let (reply_tx, reply_rx) = oneshot::channel();
        let queued = self.submit(WriterJob::Append(new, reply_tx));
        Box::pin(async move {
            queued?;
            reply_rx
                .await
                .map_err(|_| StoreError::Internal("store writer dropped a job".into()))?
        })
    }

    async fn history(&self, query: HistoryQuery) -> StoreResult<(Vec<Message>, bool)> {
        self.read(move |conn| history_query(conn, query)).await
    }

    async fn advance_receipt(
        &self,
        conversation: ConversationId,
        user: UserId,
        device: Option<DeviceId>,
        status: ReceiptStatus,
        up_to_seq: u64,
    ) -> StoreResult<ReceiptChange> {
        self.write(move |conn, events| {
            receipt_tx(conn, events, conversation, user, device, status, up_to_seq)
        })
        .await
    }

    async fn inbox_head(&self, user: UserId) -> StoreResult<u64> {
        self.read(move |conn| {
            let head: Option<i64> = conn
                .prepare_cached("SELECT inbox_head FROM users WHERE id=?1")?
                .query_row([user.0], |r| r.get(0))
                .optional()?;
            Ok(to_u64(head.unwrap_or(0)))
        })
        .await
    }

    async fn inbox_since(
        &self,
        user: UserId,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<InboxEntry>> {
        self.read(move |conn| {
            let (head, floor): (i64, i64) = conn
                .prepare_cached("SELECT inbox_head, inbox_floor FROM users WHERE id=?1")?
                .query_row([user.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or(StoreError::NotFound("user"))?;
            if since < to_u64(floor) || since > to_u64(head) {
                return Err(StoreError::ResyncRequired);
            }
            replay_segments(conn, user, since, to_u64(head), limit)
        })
        .await
    }

    async fn prune_inbox(&self, before_ms: i64) -> StoreResult<u64> {
        self.write_invalidating(move |conn, _| prune_segments(conn, before_ms))
            .await
    }

    async fn shutdown(&self) {
        let sender = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(sender);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            // Joining blocks until the queue is drained and committed.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_extend_only_the_same_run() {
        let run = Segment {
            conversation: ConversationId(1),
            first_cursor: 10,
            first_seq: 5,
        };
        assert!(run.extends_to(ConversationId(1), 8, 13));
        assert!(
            !run.extends_to(ConversationId(1), 9, 13),
            "a gap in seq breaks the run"
        );
        assert!(
            !run.extends_to(ConversationId(2), 8, 13),
            "another conversation breaks it"
        );
        assert!(
            !run.extends_to(ConversationId(1), 4, 9),
            "cursors before the run"
        );
    }

    /// A version-1 database (one inbox row per message) is folded into
    /// runs by migration 2 and replays exactly as before.
    #[tokio::test]
    async fn migration_folds_inbox_rows_into_segments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO schema_meta VALUES('version', 1);",
            )
            .unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "INSERT INTO users(id, username, display_name, password_hash, created_at_ms, inbox_head)
                     VALUES(1, 'alice', 'alice', 'x', 1, 5), (2, 'bob', 'bob', 'x', 1, 0);
                 INSERT INTO conversations(id, kind, last_seq, last_activity_ms, created_at_ms)
                     VALUES(1, 'group', 3, 1, 1), (2, 'group', 2, 1, 1);
                 INSERT INTO messages(conversation_id, seq, sender_id, sent_at_ms, kind, text) VALUES
                     (1, 1, 2, 1, 'text', 'a'), (1, 2, 2, 1, 'text', 'b'), (1, 3, 2, 1, 'text', 'd'),
                     (2, 1, 2, 1, 'text', 'c'), (2, 2, 2, 1, 'text', 'e');
                 INSERT INTO inbox(user_id, cursor, conversation_id, seq, created_at_ms) VALUES
                     (1, 1, 1, 1, 1), (1, 2, 1, 2, 1), (1, 3, 2, 1, 1), (1, 4, 1, 3, 1), (1, 5, 2, 2, 1);",
            )
            .unwrap();
        }
        let (store, _events) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let entries = store.inbox_since(UserId(1), 0, 10).await.unwrap();
        let texts: Vec<(u64, String)> = entries
            .into_iter()
            .map(|e| (e.cursor, e.message.text.unwrap()))
            .collect();
        let expected: Vec<(u64, String)> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64 + 1, t.to_string()))
            .collect();
        assert_eq!(texts, expected);
        let segments = store
            .read(|conn| Ok(segments_from(conn, UserId(1), 0)?.len()))
            .await
            .unwrap();
        assert_eq!(segments, 4, "(c1,1..2) (c2,1) (c1,3) (c2,2)");
        store.shutdown().await;
    }
}
