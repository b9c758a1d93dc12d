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
//!
//! # Layout
//! Each module uses only those listed before it:
//! - `doorbell` is how the writer wakes the threads beside it after a
//!   commit.
//! - `connection` opens connections and pools the readers; `schema` holds
//!   the migrations; `rows` fills the domain's engine-neutral rows;
//!   `search_index` keeps the search index in a file of its own, on a
//!   thread of its own, behind a watermark.
//! - `inbox_runs` keeps the inbox as runs of one conversation; `inbox`
//!   hands out cursors on the general path and replays.
//! - `push` (server secrets, registrations, pending pushes), below
//!   `users` because revoking a device drops its push state there.
//! - `users` (and devices) and `conversations` (loading, membership rows,
//!   the guarded `last_seq` advance, direct conversations, the list).
//! - `writer_cache` is the writer thread's memory of seqs, members and
//!   inbox tails, which makes a send cost one insert.
//! - `media` (upload slots, the quota, who may read media, references,
//!   avatars, garbage collection), `settings` (blocks, per-user
//!   conversation settings, profiles and avatars), `events` (edit, delete, reaction on their
//!   target, the search index entries, reply quotes), `messages` (the send hot path, the general
//!   insert, history), `search`, then `receipts` and `groups`, each in its
//!   own SQL; the rules are the shared `domain`.
//! - `admin`: the user list, disabling, password resets, erasure, stats.
//! - `checkpointer` copies the WAL into the database file on a thread of
//!   its own, so the writer's commits never pay for it.
//! - `writer` is the group-commit thread, `announcer` the runtime task it
//!   hands each finished batch to (answers, then the commit stream); this
//!   module is [`SqliteStore`]
//!   and its [`Store`] implementation.

mod admin;
mod announcer;
mod checkpointer;
mod connection;
mod conversations;
mod doorbell;
mod events;
mod groups;
mod inbox;
mod inbox_runs;
mod media;
mod messages;
mod push;
mod receipts;
mod rows;
mod schema;
mod search;
mod search_index;
mod settings;
mod users;
mod writer;
mod writer_cache;

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use parley_proto::api::{ConversationSettings, PresenceVisibility};
use parley_proto::{ConversationId, DeviceId, MediaId, Message, ReceiptStatus, UserId};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::domain::ReceiptRequest;
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::{CommitReceiver, PendingAppend, Store};
use connection::ReaderPool;
use writer::{Job, WriterJob};

/// What the search index's file adds to the database's name
/// (`parley.db` -> `parley.db.search`, with its own `-wal` and `-shm`).
pub const SEARCH_INDEX_SUFFIX: &str = ".search";

/// Tuning of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (fsync on every commit). Turning it off
    /// (`NORMAL`) loses the last commits on power loss, not on a crash.
    pub synchronous_full: bool,
    /// At most this many jobs share one transaction.
    pub max_batch: usize,
    /// The search indexer (`search_index`, its own thread and file)
    /// indexes at most this many messages (and applies at most this many
    /// edits and deletes) per transaction of the index file.
    pub search_index_batch: usize,
    /// After a commit the indexer waits this long before catching up, so
    /// sends gather into fewer, larger FTS5 segments. A search never
    /// waits for it: it asks for a catch-up at once when the index is
    /// behind.
    pub search_index_delay: Duration,
    /// The checkpoint thread copies the WAL into the database file at
    /// most once per this long, beside the writer (`checkpointer`).
    pub checkpoint_interval: Duration,
    /// Above this many WAL pages, the writer copies the remainder itself
    /// after a commit, so the WAL starts over (bounds the WAL under
    /// continuous writes).
    pub wal_restart_pages: u32,
    /// Each connection's page cache per database file, in KiB (SQLite's
    /// `cache_size`): at most 20 caches in all (the writer, the checkpoint
    /// thread, the indexer's two files, 8 readers with two files each).
    pub cache_kib: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: true,
            max_batch: 1024,
            search_index_batch: 2048,
            search_index_delay: Duration::from_millis(200),
            checkpoint_interval: Duration::from_millis(100),
            wal_restart_pages: 4096,
            cache_kib: 2000,
        }
    }
}

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    /// `None` once shut down.
    jobs: Mutex<Option<std_mpsc::Sender<WriterJob>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// `None` once shut down.
    indexer: Mutex<Option<search_index::SearchIndexer>>,
    readers: Arc<ReaderPool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies
    /// migrations, and starts the writer thread. Inside a Tokio runtime,
    /// a task on that runtime answers writes and feeds the commit stream
    /// (`announcer`): use the store while that runtime runs (should it
    /// stop, the writer takes the task's work over).
    pub fn open(path: &Path, options: SqliteOptions) -> StoreResult<(SqliteStore, CommitReceiver)> {
        let readers = Arc::new(ReaderPool::new(path.to_owned(), options.clone())?);
        let mut conn = connection::open_connection(path, &options)?;
        schema::migrate(&mut conn)?;
        let index = search_index::open_index(path, &options, &conn)?;
        let indexer = search_index::SearchIndexer::start(
            path,
            &options,
            index,
            search_index::IndexTuning {
                batch: options.search_index_batch,
                delay: options.search_index_delay,
            },
        )?;
        // The checkpoint thread checkpoints; the writer's commits never do.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = checkpointer::Checkpointer::start(
            path,
            &options,
            checkpointer::CheckpointTuning {
                interval: options.checkpoint_interval,
                restart_pages: i64::from(options.wal_restart_pages.max(1)),
            },
        )?;
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = std_mpsc::channel::<WriterJob>();
        let max_batch = options.max_batch.max(1);
        let indexer_handle = indexer.handle();
        let announcer = announcer::Announcer::start(events_tx);
        let writer = std::thread::Builder::new()
            .name("parley-sqlite-writer".into())
            .spawn(move || {
                writer::writer_loop(
                    conn,
                    jobs_rx,
                    announcer,
                    max_batch,
                    checkpointer,
                    indexer_handle,
                )
            })
            .map_err(|e| StoreError::Internal(format!("cannot start writer thread: {e}")))?;
        let store = SqliteStore {
            jobs: Mutex::new(Some(jobs_tx)),
            writer: Mutex::new(Some(writer)),
            indexer: Mutex::new(Some(indexer)),
            readers,
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
                Some(conn) => writer::run_in_savepoint(conn, events, f),
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
        self.readers.clone().run(f).await
    }
}

/// Writes a consistent copy of the SQLite database at `path` to `dest`
/// (which must not exist yet), while the server may be writing to it:
/// `VACUUM INTO` reads one snapshot in one read transaction, so the copy
/// holds exactly the transactions committed before it began, and never
/// blocks the writer (WAL). A plain file copy would not be consistent.
pub fn backup(path: &Path, dest: &Path) -> StoreResult<()> {
    if !path.is_file() {
        return Err(StoreError::NotFound("database file"));
    }
    let dest_text = dest
        .to_str()
        .ok_or_else(|| StoreError::Invalid("the backup path is not UTF-8".into()))?;
    // Without SQLITE_OPEN_CREATE: never make an empty database by mistake.
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute("VACUUM INTO ?1", [dest_text])?;
    drop(conn);
    // VACUUM INTO does not sync the file it writes.
    std::fs::File::open(dest)
        .and_then(|file| file.sync_all())
        .map_err(|e| StoreError::Internal(format!("cannot sync the backup: {e}")))?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<UserRecord> {
        self.write(move |conn, _| users::create_user(conn, new))
            .await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.read(move |conn| users::user_by_id(conn, id)).await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_owned();
        self.read(move |conn| users::user_by_username(conn, &username))
            .await
    }

    async fn set_presence_visibility(
        &self,
        user: UserId,
        visibility: PresenceVisibility,
    ) -> StoreResult<()> {
        self.write(move |conn, _| users::set_presence_visibility(conn, user, visibility))
            .await
    }

    async fn set_last_seen(&self, user: UserId, at_ms: i64) -> StoreResult<()> {
        self.write(move |conn, _| users::set_last_seen(conn, user, at_ms))
            .await
    }

    async fn update_profile(&self, user: UserId, change: ProfileChange) -> StoreResult<UserRecord> {
        self.write(move |conn, _| settings::update_profile(conn, user, change))
            .await
    }

    async fn set_block(
        &self,
        user: UserId,
        other: UserId,
        blocked: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        // Blocks change who may send into a direct conversation, which the
        // writer cache holds.
        self.write_invalidating(move |conn, _| {
            settings::set_block(conn, user, other, blocked, now_ms)
        })
        .await
    }

    async fn blocks(&self, user: UserId) -> StoreResult<Vec<UserId>> {
        self.read(move |conn| settings::blocks(conn, user)).await
    }

    async fn create_device(
        &self,
        user: UserId,
        name: String,
        now_ms: i64,
    ) -> StoreResult<DeviceRecord> {
        self.write(move |conn, _| users::create_device(conn, user, name, now_ms))
            .await
    }

    async fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        self.read(move |conn| users::devices(conn, user)).await
    }

    async fn revoke_device(&self, user: UserId, device: DeviceId, now_ms: i64) -> StoreResult<()> {
        self.write(move |conn, _| users::revoke_device(conn, user, device, now_ms))
            .await
    }

    async fn revoked_devices(&self) -> StoreResult<Vec<DeviceId>> {
        self.read(users::revoked_devices).await
    }

    async fn get_or_create_direct(
        &self,
        a: UserId,
        b: UserId,
        now_ms: i64,
    ) -> StoreResult<(ConversationRecord, bool)> {
        self.write(move |conn, _| conversations::get_or_create_direct(conn, a, b, now_ms))
            .await
    }

    async fn create_group(&self, new: NewGroup) -> StoreResult<ConversationRecord> {
        self.write_invalidating(move |conn, events| groups::create_group(conn, events, new))
            .await
    }

    async fn change_group(&self, change: GroupChange) -> StoreResult<ConversationRecord> {
        self.write_invalidating(move |conn, events| groups::change_group(conn, events, change))
            .await
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>> {
        self.read(move |conn| conversations::load_conversation(conn, id))
            .await
    }

    async fn conversations_for(&self, user: UserId) -> StoreResult<Vec<ConversationSummaryRecord>> {
        self.read(move |conn| conversations::conversations_for(conn, user))
            .await
    }

    async fn set_conversation_settings(
        &self,
        user: UserId,
        conversation: ConversationId,
        change: SettingsChange,
    ) -> StoreResult<ConversationSettings> {
        self.write(move |conn, _| {
            settings::set_conversation_settings(conn, user, conversation, change)
        })
        .await
    }

    async fn set_group_avatar(
        &self,
        group: ConversationId,
        actor: UserId,
        avatar_media_id: String,
        now_ms: i64,
    ) -> StoreResult<ConversationRecord> {
        self.write(move |conn, _| {
            settings::set_group_avatar(conn, group, actor, avatar_media_id, now_ms)
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
        self.read(move |conn| messages::history(conn, query)).await
    }

    async fn search(&self, query: SearchQuery) -> StoreResult<(Vec<Message>, bool)> {
        // Whatever was acknowledged before the search is found, as it
        // reads now: when the index is behind, the indexer catches up
        // first.
        let indexed = crate::domain::search::SearchPlan::of(&query)?.indexed;
        if indexed && self.read(search_index::is_behind).await? {
            // A std mutex: held only to ask, never across an await.
            let caught_up = self
                .indexer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(search_index::SearchIndexer::catch_up_now)
                .ok_or_else(|| StoreError::Unavailable("store is shutting down".into()))?;
            caught_up.await?;
        }
        self.read(move |conn| search::search(conn, query)).await
    }

    async fn advance_receipt(
        &self,
        conversation: ConversationId,
        user: UserId,
        device: Option<DeviceId>,
        status: ReceiptStatus,
        up_to_seq: u64,
    ) -> StoreResult<ReceiptChange> {
        let request = ReceiptRequest {
            conversation,
            user,
            device,
            status,
            up_to_seq,
        };
        self.write(move |conn, events| receipts::advance_receipt(conn, events, request))
            .await
    }

    async fn inbox_head(&self, user: UserId) -> StoreResult<u64> {
        self.read(move |conn| inbox::inbox_head(conn, user)).await
    }

    async fn inbox_since(
        &self,
        user: UserId,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<InboxEntry>> {
        self.read(move |conn| inbox_page(conn, user, since, limit))
            .await
    }

    async fn inbox_opening(
        &self,
        user: UserId,
        since: Option<u64>,
        limit: usize,
    ) -> StoreResult<InboxOpening> {
        self.read(move |conn| {
            let head = inbox::inbox_head(conn, user)?;
            let first_page = since.map(|since| inbox_page(conn, user, since, limit));
            Ok(InboxOpening { head, first_page })
        })
        .await
    }

    async fn prune_inbox(&self, before_ms: i64) -> StoreResult<u64> {
        self.write_invalidating(move |conn, _| inbox_runs::prune_segments(conn, before_ms))
            .await
    }

    async fn list_users(&self, query: UserListQuery) -> StoreResult<(Vec<UserRecord>, bool)> {
        let plan = crate::domain::admin::UserListPlan::of(&query)?;
        self.read(move |conn| admin::list_users(conn, &plan)).await
    }

    async fn set_user_disabled(
        &self,
        user: UserId,
        disabled: bool,
        now_ms: i64,
    ) -> StoreResult<(UserRecord, Vec<DeviceId>)> {
        self.write(move |conn, _| admin::set_disabled(conn, user, disabled, now_ms))
            .await
    }

    async fn set_password(
        &self,
        user: UserId,
        password_hash: String,
        now_ms: i64,
    ) -> StoreResult<Vec<DeviceId>> {
        self.write(move |conn, _| admin::set_password(conn, user, &password_hash, now_ms))
            .await
    }

    async fn erase_user(&self, user: UserId, now_ms: i64) -> StoreResult<Vec<DeviceId>> {
        // Erasure drops blocks, which the writer cache holds for direct
        // conversations.
        self.write_invalidating(move |conn, _| admin::erase_user(conn, user, now_ms))
            .await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.read(admin::stats).await
    }

    async fn server_secret(
        &self,
        name: &str,
        candidate: Vec<u8>,
        now_ms: i64,
    ) -> StoreResult<Vec<u8>> {
        let name = name.to_owned();
        self.write(move |conn, _| push::server_secret(conn, &name, &candidate, now_ms))
            .await
    }

    async fn set_push_target(
        &self,
        user: UserId,
        device: DeviceId,
        target: PushTarget,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.write(move |conn, _| push::set_target(conn, user, device, &target, now_ms))
            .await
    }

    async fn delete_push_target(&self, device: DeviceId) -> StoreResult<()> {
        self.write(move |conn, _| push::delete_target(conn, device))
            .await
    }

    async fn push_target(&self, device: DeviceId) -> StoreResult<Option<PushTarget>> {
        self.read(move |conn| push::target(conn, device)).await
    }

    async fn push_users(&self) -> StoreResult<Vec<UserId>> {
        self.read(push::users).await
    }

    async fn push_candidates(
        &self,
        conversation: ConversationId,
        sender: UserId,
        users: Vec<UserId>,
        now_ms: i64,
    ) -> StoreResult<Vec<PushCandidate>> {
        self.read(move |conn| push::candidates(conn, conversation, sender, &users, now_ms))
            .await
    }

    async fn queue_pushes(&self, pushes: Vec<NewPendingPush>) -> StoreResult<()> {
        if pushes.is_empty() {
            return Ok(());
        }
        self.write(move |conn, _| push::queue(conn, &pushes)).await
    }

    async fn claim_pushes(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<PendingPush>> {
        self.write(move |conn, _| push::claim(conn, now_ms, lease_until_ms, limit))
            .await
    }

    async fn finish_push(
        &self,
        device: DeviceId,
        generation: i64,
        sent_unread: u64,
    ) -> StoreResult<()> {
        self.write(move |conn, _| push::finish(conn, device, generation, sent_unread))
            .await
    }

    async fn retry_push(&self, device: DeviceId, due_at_ms: i64) -> StoreResult<()> {
        self.write(move |conn, _| push::retry(conn, device, due_at_ms))
            .await
    }

    async fn next_push_due(&self) -> StoreResult<Option<i64>> {
        self.read(push::next_due).await
    }

    async fn create_media(&self, new: NewMedia) -> StoreResult<MediaRecord> {
        self.write(move |conn, _| media::create_media(conn, new))
            .await
    }

    async fn media(&self, id: MediaId) -> StoreResult<Option<MediaRecord>> {
        self.read(move |conn| media::media(conn, id)).await
    }

    async fn complete_media(
        &self,
        id: MediaId,
        verified: MediaVerified,
    ) -> StoreResult<MediaRecord> {
        self.write(move |conn, _| media::complete_media(conn, id, verified))
            .await
    }

    async fn reject_media(&self, id: MediaId, now_ms: i64) -> StoreResult<()> {
        self.write(move |conn, _| media::reject_media(conn, id, now_ms))
            .await
    }

    async fn media_visible(&self, id: MediaId, viewer: UserId) -> StoreResult<bool> {
        self.read(move |conn| media::media_visible(conn, id, viewer))
            .await
    }

    async fn claim_media_garbage(&self, before_ms: i64, limit: usize) -> StoreResult<Vec<MediaId>> {
        self.write(move |conn, _| media::claim_media_garbage(conn, before_ms, limit))
            .await
    }

    async fn forget_media(&self, ids: Vec<MediaId>) -> StoreResult<u64> {
        self.write(move |conn, _| media::forget_media(conn, &ids))
            .await
    }

    async fn media_usage(&self, user: UserId) -> StoreResult<u64> {
        self.read(move |conn| media::media_usage(conn, user)).await
    }

    async fn shutdown(&self) {
        let sender = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(sender);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            // Joining blocks until the queue is drained and committed.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        let indexer = self
            .indexer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(indexer) = indexer {
            // Stops between steps; the next open goes on from its marks.
            let _ = tokio::task::spawn_blocking(move || indexer.stop()).await;
        }
    }
}

/// Up to `limit` inbox entries after `since`, with the quoted messages of
/// replies attached: [`Store::inbox_since`], and the first page of
/// [`Store::inbox_opening`].
fn inbox_page(
    conn: &rusqlite::Connection,
    user: UserId,
    since: u64,
    limit: usize,
) -> StoreResult<Vec<InboxEntry>> {
    let mut entries = inbox::inbox_since(conn, user, since, limit)?;
    for entry in entries.iter_mut() {
        if entry.message.reply_to_seq.is_some() {
            events::attach_quotes(conn, user, std::slice::from_mut(&mut entry.message))?;
        }
    }
    Ok(entries)
}
