//! The PostgreSQL store, for deployments that run several Parley processes
//! against one database.
//!
//! # Writes: one writer task per process, group commit
//! Every write becomes a `WriteOp` (plain data) sent to a single writer
//! task. The writer takes every op waiting in its queue and runs them in one
//! transaction, commits once with `synchronous_commit=on`, and only then
//! answers the callers and announces the changes on the
//! [`CommitSender`](crate::CommitSender). One writer per process means the
//! announcements come out in commit order.
//!
//! Each run of consecutive plain text appends (the hot path) is written set-based
//! (`messages::append_many`): one round trip reads the conversations'
//! headers and the dedup keys, the domain rules decide every append in
//! order (a refused one writes nothing, so it needs no savepoint), and one
//! round trip writes every message (`INSERT ... SELECT FROM unnest`), the
//! guarded `last_seq`s and the senders' cursors. Any other op (events and
//! replies too: they read and change another message) runs in its own
//! savepoint so that a refusal does not abort its neighbours.
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
//!    sorted by id; then cursors are handed out in op order from the tail
//!    each user row carries (head, and the conversation and seq at it),
//!    written with one `UPDATE ... FROM unnest(...)` of the users and one
//!    `INSERT ... SELECT unnest(...)` of the inbox runs that start.
//!
//! The remaining cross-process waits (the same username registered on two
//! nodes at once, the same `client_msg_id` sent through two nodes) are rare;
//! if they ever close a cycle PostgreSQL reports a deadlock (40P01), and the
//! writer rolls back and re-runs the whole batch, as it does on a
//! serialization failure (40001). Ops are data, so re-running is safe. A unique
//! violation inside one op (another process committed the same username
//! first) rolls back that op's savepoint and runs it once more, which then
//! finds the committed row and answers as a conflict; one in a run of
//! appends (the same dedup key committed by another process since the read)
//! re-runs the whole batch, which then answers with the stored message.
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
//!
//! # Layout
//! Each module uses only those listed before it:
//! - `errors` classifies engine errors and holds the statement helpers;
//!   `schema` holds the migrations; `rows` fills the domain's
//!   engine-neutral rows.
//! - `batch`: write ops as data, their outputs, and what a batch collects
//!   (announcements, inbox pointers, deferred user updates).
//! - `push` (server secrets, registrations, pending pushes), below
//!   `users` because revoking a device drops its push state there.
//! - `users` (and devices), `conversations` (loading, membership rows,
//!   direct conversations, the list), `media` (upload slots, the quota,
//!   who may read media, references, avatars, garbage collection: single
//!   statements outside the writer, except references, written with their
//!   message), `settings` (blocks, per-user conversation settings,
//!   profiles and avatars: single-statement writes outside the writer),
//!   `events` (edit,
//!   delete, reaction on their target, reply quotes), `messages` (appends, the insert, history), `search`,
//!   `receipts`, `groups`, `inbox` (cursor hand-out, replay, pruning): the
//!   operations, each in its own SQL; the rules are the shared `domain`.
//! - `admin`: the user list, disabling, password resets, erasure, stats.
//! - `writer` is the group-commit task; this module is [`PostgresStore`]
//!   and its [`Store`] implementation.

mod admin;
mod batch;
mod conversations;
mod errors;
mod events;
mod groups;
mod inbox;
mod media;
mod messages;
mod push;
mod receipts;
mod rows;
mod schema;
mod search;
mod settings;
mod users;
mod writer;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use parley_proto::api::{ConversationSettings, PresenceVisibility};
use parley_proto::{ConversationId, DeviceId, MediaId, Message, ReceiptStatus, UserId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use crate::domain::ReceiptRequest;
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::{CommitReceiver, PendingAppend, Store};
use batch::{Job, Output, WriteOp};
use errors::{OpError, OpResult, pool_error};

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

/// Unpacks the [`Output`] variant an op is known to return.
macro_rules! expect_output {
    ($output:expr, $variant:ident($($field:ident),+)) => {
        match $output {
            Output::$variant($($field),+) => Ok(($($field),+)),
            other => Err(StoreError::Internal(format!("writer returned {other:?}"))),
        }
    };
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
            schema::migrate(&mut conn).await?;
        }
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(writer::writer_loop(
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

#[async_trait]
impl Store for PostgresStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<UserRecord> {
        expect_output!(self.write(WriteOp::CreateUser(new)).await?, User(user))
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        read!(self, |conn| users::user_by_id(conn, id))
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        read!(self, |conn| users::user_by_username(conn, username))
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

    async fn update_profile(&self, user: UserId, change: ProfileChange) -> StoreResult<UserRecord> {
        read!(self, |conn| settings::update_profile(conn, user, &change))
    }

    async fn set_block(
        &self,
        user: UserId,
        other: UserId,
        blocked: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        read!(self, |conn| settings::set_block(
            conn, user, other, blocked, now_ms
        ))
    }

    async fn blocks(&self, user: UserId) -> StoreResult<Vec<UserId>> {
        read!(self, |conn| settings::blocks(conn, user))
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
        read!(self, |conn| users::devices(conn, user))
    }

    async fn revoke_device(&self, user: UserId, device: DeviceId, now_ms: i64) -> StoreResult<()> {
        self.write(WriteOp::RevokeDevice(user, device, now_ms))
            .await
            .map(|_| ())
    }

    async fn revoked_devices(&self) -> StoreResult<Vec<DeviceId>> {
        read!(self, |conn| users::revoked_devices(conn))
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
        read!(self, |conn| conversations::load_conversation(conn, id))
    }

    async fn conversations_for(&self, user: UserId) -> StoreResult<Vec<ConversationSummaryRecord>> {
        read!(self, |conn| conversations::conversations_for(conn, user))
    }

    async fn set_conversation_settings(
        &self,
        user: UserId,
        conversation: ConversationId,
        change: SettingsChange,
    ) -> StoreResult<ConversationSettings> {
        read!(self, |conn| settings::set_conversation_settings(
            conn,
            user,
            conversation,
            change
        ))
    }

    async fn set_group_avatar(
        &self,
        group: ConversationId,
        actor: UserId,
        avatar_media_id: String,
        now_ms: i64,
    ) -> StoreResult<ConversationRecord> {
        read!(self, |conn| settings::set_group_avatar(
            conn,
            group,
            actor,
            avatar_media_id.clone(),
            now_ms
        ))
    }

    fn append_message(&self, new: NewMessage) -> PendingAppend {
        let output = self.enqueue(WriteOp::Append(new));
        Box::pin(async move { expect_output!(output.await?, Appended(appended)) })
    }

    async fn history(&self, query: HistoryQuery) -> StoreResult<(Vec<Message>, bool)> {
        read!(self, |conn| messages::history(conn, &query))
    }

    async fn search(&self, query: SearchQuery) -> StoreResult<(Vec<Message>, bool)> {
        read!(self, |conn| search::search(conn, &query))
    }

    async fn advance_receipt(
        &self,
        conversation: ConversationId,
        user: UserId,
        device: Option<DeviceId>,
        status: ReceiptStatus,
        up_to_seq: u64,
    ) -> StoreResult<ReceiptChange> {
        let op = WriteOp::Receipt(ReceiptRequest {
            conversation,
            user,
            device,
            status,
            up_to_seq,
        });
        expect_output!(self.write(op).await?, Receipt(change))
    }

    async fn inbox_head(&self, user: UserId) -> StoreResult<u64> {
        read!(self, |conn| inbox::inbox_head(conn, user))
    }

    async fn inbox_since(
        &self,
        user: UserId,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<InboxEntry>> {
        read!(self, |conn| async move {
            let mut entries = inbox::inbox_since(conn, user, since, limit).await?;
            for entry in entries.iter_mut() {
                if entry.message.reply_to_seq.is_some() {
                    events::attach_quotes(conn, user, std::slice::from_mut(&mut entry.message))
                        .await?;
                }
            }
            Ok(entries)
        })
    }

    async fn prune_inbox(&self, before_ms: i64) -> StoreResult<u64> {
        expect_output!(self.write(WriteOp::Prune(before_ms)).await?, Count(count))
    }

    async fn list_users(&self, query: UserListQuery) -> StoreResult<(Vec<UserRecord>, bool)> {
        let plan = crate::domain::admin::UserListPlan::of(&query)?;
        read!(self, |conn| admin::list_users(conn, &plan))
    }

    async fn set_user_disabled(
        &self,
        user: UserId,
        disabled: bool,
        now_ms: i64,
    ) -> StoreResult<(UserRecord, Vec<DeviceId>)> {
        expect_output!(
            self.write(WriteOp::SetDisabled(user, disabled, now_ms))
                .await?,
            Disabled(record, revoked)
        )
    }

    async fn set_password(
        &self,
        user: UserId,
        password_hash: String,
        now_ms: i64,
    ) -> StoreResult<Vec<DeviceId>> {
        expect_output!(
            self.write(WriteOp::SetPassword(user, password_hash, now_ms))
                .await?,
            Devices(revoked)
        )
    }

    async fn erase_user(&self, user: UserId, now_ms: i64) -> StoreResult<Vec<DeviceId>> {
        expect_output!(
            self.write(WriteOp::EraseUser(user, now_ms)).await?,
            Devices(revoked)
        )
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        read!(self, |conn| admin::stats(conn))
    }

    async fn server_secret(
        &self,
        name: &str,
        candidate: Vec<u8>,
        now_ms: i64,
    ) -> StoreResult<Vec<u8>> {
        read!(self, |conn| push::server_secret(
            conn, name, &candidate, now_ms
        ))
    }

    async fn set_push_target(
        &self,
        user: UserId,
        device: DeviceId,
        target: PushTarget,
        now_ms: i64,
    ) -> StoreResult<()> {
        read!(self, |conn| push::set_target(
            conn, user, device, &target, now_ms
        ))
    }

    async fn delete_push_target(&self, device: DeviceId) -> StoreResult<()> {
        read!(self, |conn| push::delete_target(conn, device))
    }

    async fn push_target(&self, device: DeviceId) -> StoreResult<Option<PushTarget>> {
        read!(self, |conn| push::target(conn, device))
    }

    async fn push_users(&self) -> StoreResult<Vec<UserId>> {
        read!(self, |conn| push::users(conn))
    }

    async fn push_candidates(
        &self,
        conversation: ConversationId,
        sender: UserId,
        users: Vec<UserId>,
        now_ms: i64,
    ) -> StoreResult<Vec<PushCandidate>> {
        read!(self, |conn| push::candidates(
            conn,
            conversation,
            sender,
            &users,
            now_ms
        ))
    }

    async fn queue_pushes(&self, pushes: Vec<NewPendingPush>) -> StoreResult<()> {
        if pushes.is_empty() {
            return Ok(());
        }
        read!(self, |conn| push::queue(conn, &pushes))
    }

    async fn claim_pushes(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<PendingPush>> {
        read!(self, |conn| push::claim(
            conn,
            now_ms,
            lease_until_ms,
            limit
        ))
    }

    async fn finish_push(
        &self,
        device: DeviceId,
        generation: i64,
        sent_unread: u64,
    ) -> StoreResult<()> {
        read!(self, |conn| push::finish(
            conn,
            device,
            generation,
            sent_unread
        ))
    }

    async fn retry_push(&self, device: DeviceId, due_at_ms: i64) -> StoreResult<()> {
        read!(self, |conn| push::retry(conn, device, due_at_ms))
    }

    async fn next_push_due(&self) -> StoreResult<Option<i64>> {
        read!(self, |conn| push::next_due(conn))
    }

    async fn create_media(&self, new: NewMedia) -> StoreResult<MediaRecord> {
        read!(self, |conn| media::create_media(conn, new.clone()))
    }

    async fn media(&self, id: MediaId) -> StoreResult<Option<MediaRecord>> {
        read!(self, |conn| media::media(conn, id))
    }

    async fn complete_media(
        &self,
        id: MediaId,
        verified: MediaVerified,
    ) -> StoreResult<MediaRecord> {
        read!(self, |conn| media::complete_media(conn, id, &verified))
    }

    async fn reject_media(&self, id: MediaId, now_ms: i64) -> StoreResult<()> {
        read!(self, |conn| media::reject_media(conn, id, now_ms))
    }

    async fn media_visible(&self, id: MediaId, viewer: UserId) -> StoreResult<bool> {
        read!(self, |conn| media::media_visible(conn, id, viewer))
    }

    async fn claim_media_garbage(&self, before_ms: i64, limit: usize) -> StoreResult<Vec<MediaId>> {
        read!(self, |conn| media::claim_media_garbage(
            conn, before_ms, limit
        ))
    }

    async fn forget_media(&self, ids: Vec<MediaId>) -> StoreResult<u64> {
        read!(self, |conn| media::forget_media(conn, &ids))
    }

    async fn media_usage(&self, user: UserId) -> StoreResult<u64> {
        read!(self, |conn| media::media_usage(conn, user))
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
