//! Durable storage for Parley.
//!
//! # Layout
//! - [`Store`]: the one boundary between the server and a storage engine.
//!   Every write is atomic and durable when its future resolves.
//! - [`model`]: records read and written through the trait.
//! - `domain`: the rules both engines apply, decided once and unit-tested
//!   there: group administration, names and sizes, system messages, append
//!   checks (membership, blocks, `reply_to_seq`), message events (edit,
//!   delete, reaction: who may, windows, aggregated state, reply quotes),
//!   search queries, per-user settings, the text-message shape, receipt
//!   cursor arithmetic, the direct-conversation key, history windows, inbox
//!   cursor bounds and inbox-run arithmetic, and decoding engine-neutral
//!   rows into records. Engines
//!   only carry the rules out in their own SQL.
//! - [`sqlite`]: the embedded default. One writer thread does group commit;
//!   reads run on a pool of reader connections and never wait for the writer.
//!   The inbox is stored as runs of one conversation (`sqlite::inbox_runs`),
//!   and the writer keeps seqs, members and inbox tails in memory
//!   (`sqlite::writer_cache`).
//! - [`postgres`]: for several processes sharing one database. One writer
//!   task per process does group commit of write ops kept as data
//!   (`postgres::batch`); each run of consecutive appends is written with a
//!   few set-based statements; row locks taken in one global order keep
//!   `seq` and inbox cursors gapless across processes. The inbox is stored
//!   as runs like SQLite's (`postgres::inbox`); `postgres::errors`
//!   classifies engine errors (retry the batch, retry the op, unavailable).
//! - Both engines are split by concern under the same module names:
//!   `schema`, `rows`, `users`, `conversations`, `messages`, `receipts`,
//!   `groups`, `inbox`, `push` (server secrets, push registrations and
//!   pending pushes), `writer`.
//! - [`error`]: [`StoreError`], mapped to protocol codes by the server.
//! - [`plan_query`] and [`SearchPlan`]: how a search text is checked and
//!   planned (`domain::search`), public only so the `search_query` fuzz
//!   target drives the real planner.
//!
//! **Architecture invariant:** every committed change that someone must hear
//! about (a message, a receipt) is also emitted, in commit order, on the
//! [`CommitReceiver`] returned when the store is opened. The server's
//! dispatcher is the only consumer, which is what keeps delivery in `seq`
//! order on every socket.

mod domain;
pub mod error;
pub mod model;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use parley_proto::api::PresenceVisibility;
use parley_proto::{ConversationId, DeviceId, ReceiptStatus, UserId};

pub use domain::search::{SearchPlan, plan_query};
pub use error::{StoreError, StoreResult};
pub use model::*;

/// An append already enqueued; resolves when it is durable.
pub type PendingAppend =
    std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<Appended>> + Send>>;

/// Where committed changes are announced, in commit order.
pub type CommitReceiver = tokio::sync::mpsc::UnboundedReceiver<Committed>;
/// The writer's end of the [`CommitReceiver`].
pub type CommitSender = tokio::sync::mpsc::UnboundedSender<Committed>;

/// The storage boundary. Implementations must give every method the same
/// behaviour; `tests/conformance.rs` checks that.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a user; `Conflict` when the username is taken.
    async fn create_user(&self, new: NewUser) -> StoreResult<UserRecord>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>>;
    /// Looks a user up by exact username.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Sets who may see the user's presence.
    async fn set_presence_visibility(
        &self,
        user: UserId,
        visibility: PresenceVisibility,
    ) -> StoreResult<()>;
    /// Records when the user's last device went away.
    async fn set_last_seen(&self, user: UserId, at_ms: i64) -> StoreResult<()>;
    /// Changes the user's profile and receipt/preview settings; returns
    /// the user as now stored. `NotFound` for an unknown user.
    async fn update_profile(&self, user: UserId, change: ProfileChange) -> StoreResult<UserRecord>;
    /// Blocks (`blocked`) or unblocks `other` for `user`; `NotFound` for an
    /// unknown `other`, `Invalid` for oneself.
    async fn set_block(
        &self,
        user: UserId,
        other: UserId,
        blocked: bool,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// The users `user` blocks, by id.
    async fn blocks(&self, user: UserId) -> StoreResult<Vec<UserId>>;

    /// Registers a new device (a login).
    async fn create_device(
        &self,
        user: UserId,
        name: String,
        now_ms: i64,
    ) -> StoreResult<DeviceRecord>;
    /// The user's devices that are not revoked.
    async fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>>;
    /// Revokes a device of `user`; `NotFound` when it is not theirs.
    async fn revoke_device(&self, user: UserId, device: DeviceId, now_ms: i64) -> StoreResult<()>;
    /// Every revoked device, to seed the in-memory revocation set.
    async fn revoked_devices(&self) -> StoreResult<Vec<DeviceId>>;

    /// The direct conversation of two users, created if missing; the flag
    /// says whether it was created now.
    async fn get_or_create_direct(
        &self,
        a: UserId,
        b: UserId,
        now_ms: i64,
    ) -> StoreResult<(ConversationRecord, bool)>;
    /// Creates a group with `creator` as admin; emits a `created` message.
    async fn create_group(&self, new: NewGroup) -> StoreResult<ConversationRecord>;
    /// Applies an administrative change; emits its `system` message(s).
    async fn change_group(&self, change: GroupChange) -> StoreResult<ConversationRecord>;
    /// A conversation with its active members and their cursors.
    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>>;
    /// The conversations of `user`, active ones and ones it left (with
    /// `left` set), pinned first, then most recent activity first.
    async fn conversations_for(&self, user: UserId) -> StoreResult<Vec<ConversationSummaryRecord>>;
    /// Changes `user`'s own settings of a conversation it is or was a
    /// member of; returns them as now stored.
    async fn set_conversation_settings(
        &self,
        user: UserId,
        conversation: ConversationId,
        change: SettingsChange,
    ) -> StoreResult<parley_proto::api::ConversationSettings>;
    /// Sets (or with `""` removes) a group's avatar; admins only, and
    /// only to a ready image the admin uploaded (`domain::media`). The
    /// avatar it replaces is an orphan from `now_ms` unless a message
    /// references it.
    async fn set_group_avatar(
        &self,
        group: ConversationId,
        actor: UserId,
        avatar_media_id: String,
        now_ms: i64,
    ) -> StoreResult<ConversationRecord>;

    /// Appends a text message; a repeat of (sender, client_msg_id) returns
    /// the original with `duplicate` set and stores nothing.
    ///
    /// The append is enqueued *when this is called*, not when the future is
    /// first polled: appends called one after another from one task commit
    /// in that order. This lets a socket keep many sends in flight (group
    /// commit batches them) while its `seq`s stay in the order it sent them.
    /// An append whose future is dropped before the writer reaches it is
    /// not written (nobody could be told it is durable).
    fn append_message(&self, new: NewMessage) -> PendingAppend;
    /// Keyset history as `viewer` may see it (its membership periods only),
    /// each message in its current state, replies with their quotes.
    async fn history(&self, query: HistoryQuery)
    -> StoreResult<(Vec<parley_proto::Message>, bool)>;
    /// Messages whose current text contains the query, as `viewer` may see
    /// them, newest first; and whether there are more.
    async fn search(&self, query: SearchQuery) -> StoreResult<(Vec<parley_proto::Message>, bool)>;
    /// Advances a member's cursor, never backwards; read implies delivered.
    async fn advance_receipt(
        &self,
        conversation: ConversationId,
        user: UserId,
        device: Option<DeviceId>,
        status: ReceiptStatus,
        up_to_seq: u64,
    ) -> StoreResult<ReceiptChange>;

    /// The user's inbox head (the cursor of its newest entry, 0 if none).
    async fn inbox_head(&self, user: UserId) -> StoreResult<u64>;
    /// Up to `limit` inbox entries after `since`, ascending;
    /// `ResyncRequired` when `since` is older than what is kept.
    async fn inbox_since(
        &self,
        user: UserId,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<InboxEntry>>;
    /// What a socket reads when it opens: the inbox head, and with
    /// `since` the first page after it. An engine that can reads both in
    /// one go (SQLite: one trip to the reader pool, not two, for each of
    /// thousands of clients reconnecting at once).
    async fn inbox_opening(
        &self,
        user: UserId,
        since: Option<u64>,
        limit: usize,
    ) -> StoreResult<InboxOpening> {
        let head = self.inbox_head(user).await?;
        let first_page = match since {
            Some(since) => Some(self.inbox_since(user, since, limit).await),
            None => None,
        };
        Ok(InboxOpening { head, first_page })
    }
    /// Drops inbox entries created before `before_ms`; returns how many.
    async fn prune_inbox(&self, before_ms: i64) -> StoreResult<u64>;

    /// A page of users by id (protocol §14), only those whose username or
    /// display name contains the search (case-insensitive for ASCII); and
    /// whether more follow. `Invalid` for a bad limit or search.
    async fn list_users(&self, query: UserListQuery) -> StoreResult<(Vec<UserRecord>, bool)>;
    /// Disables `user` (its logins are refused from then on and every
    /// device is revoked; they are returned) or enables it again (its old
    /// devices stay revoked). Returns the user as now stored; `NotFound`
    /// for an unknown or erased user.
    async fn set_user_disabled(
        &self,
        user: UserId,
        disabled: bool,
        now_ms: i64,
    ) -> StoreResult<(UserRecord, Vec<DeviceId>)>;
    /// Replaces `user`'s password hash and revokes every device (returned);
    /// `NotFound` for an unknown or erased user.
    async fn set_password(
        &self,
        user: UserId,
        password_hash: String,
        now_ms: i64,
    ) -> StoreResult<Vec<DeviceId>>;
    /// Erases `user` (protocol §14): devices revoked (returned) and their
    /// names dropped, blocks both ways, settings and profile reset, the
    /// name freed, every message it wrote deleted as a delete event leaves
    /// it; the row stays, disabled for good. `NotFound` for an unknown or
    /// already erased user.
    async fn erase_user(&self, user: UserId, now_ms: i64) -> StoreResult<Vec<DeviceId>>;
    /// Counts for `GET /v1/admin/stats`.
    async fn stats(&self) -> StoreResult<StoreStats>;
    /// The secret stored under `name`, storing `candidate` first when there
    /// is none: every process sharing the storage gets the same value, even
    /// when several start at once (the VAPID key of §12).
    async fn server_secret(
        &self,
        name: &str,
        candidate: Vec<u8>,
        now_ms: i64,
    ) -> StoreResult<Vec<u8>>;
    /// Sets the push registration of `device`, replacing any (§12);
    /// `NotFound` when the device is not `user`'s or is revoked.
    async fn set_push_target(
        &self,
        user: UserId,
        device: DeviceId,
        target: PushTarget,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Removes the device's registration and its pending push; nothing
    /// when it has none. Revoking a device does the same.
    async fn delete_push_target(&self, device: DeviceId) -> StoreResult<()>;
    /// The device's registration.
    async fn push_target(&self, device: DeviceId) -> StoreResult<Option<PushTarget>>;
    /// Every user with at least one push registration (the server keeps
    /// this in memory so messages to others cost the trigger nothing).
    async fn push_users(&self) -> StoreResult<Vec<UserId>>;
    /// The registered devices of `users` that a message from `sender` in
    /// `conversation` may wake: their owner has not muted the conversation
    /// and does not block the sender. Liveness is the caller's part.
    async fn push_candidates(
        &self,
        conversation: ConversationId,
        sender: UserId,
        users: Vec<UserId>,
        now_ms: i64,
    ) -> StoreResult<Vec<PushCandidate>>;
    /// Queues pushes; one for a device that already has one pending
    /// coalesces with it (one pending push per device, the earliest due
    /// time kept unless it is waiting for a retry). Devices without a
    /// registration are skipped.
    async fn queue_pushes(&self, pushes: Vec<NewPendingPush>) -> StoreResult<()>;
    /// Claims up to `limit` pushes due at `now_ms`, each until
    /// `lease_until_ms` (then another process may claim it again), with
    /// their registrations.
    async fn claim_pushes(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<PendingPush>>;
    /// The claimed push of `generation` is done (sent or given up): it is
    /// deleted, unless messages were queued since the claim, which stay
    /// pending with `sent_unread` fewer unread.
    async fn finish_push(
        &self,
        device: DeviceId,
        generation: i64,
        sent_unread: u64,
    ) -> StoreResult<()>;
    /// A claimed push failed for now: one more attempt, due at `due_at_ms`.
    async fn retry_push(&self, device: DeviceId, due_at_ms: i64) -> StoreResult<()>;
    /// When the next pending push is due, if any.
    async fn next_push_due(&self) -> StoreResult<Option<i64>>;
    /// Makes a pending upload slot, reserving its bytes in the owner's
    /// quota (`TooLarge` when they do not fit).
    async fn create_media(&self, new: NewMedia) -> StoreResult<MediaRecord>;
    /// A media row, whatever its state.
    async fn media(&self, id: parley_proto::MediaId) -> StoreResult<Option<MediaRecord>>;
    /// Marks pending media ready with what verification found; ready media
    /// is answered as it is; `NotFound` otherwise.
    async fn complete_media(
        &self,
        id: parley_proto::MediaId,
        verified: MediaVerified,
    ) -> StoreResult<MediaRecord>;
    /// Marks pending media rejected (its bytes were wrong): never usable,
    /// collected after the grace period.
    async fn reject_media(&self, id: parley_proto::MediaId, now_ms: i64) -> StoreResult<()>;
    /// Whether `viewer` may read ready media: its uploader, or a user whose
    /// membership periods include a message referencing it (the history
    /// rule); a user's avatar is anyone's to see, a group's its members'.
    async fn media_visible(&self, id: parley_proto::MediaId, viewer: UserId) -> StoreResult<bool>;
    /// Garbage collection, step one: marks collectable media `deleting`
    /// (pending or rejected past its expiry, ready and unreferenced since,
    /// both before `before_ms`) and returns up to `limit` media in that
    /// state, including ones an interrupted run left.
    async fn claim_media_garbage(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<parley_proto::MediaId>>;
    /// Garbage collection, last step (after the objects are deleted):
    /// deletes the claimed rows and returns their bytes to the quotas.
    async fn forget_media(&self, ids: Vec<parley_proto::MediaId>) -> StoreResult<u64>;
    /// The bytes counted against `user`'s quota (pending, ready and
    /// rejected media not yet collected).
    async fn media_usage(&self, user: UserId) -> StoreResult<u64>;

    /// Waits until everything acknowledged so far is on disk and stops
    /// accepting writes.
    async fn shutdown(&self);
}

/// How to reach storage: the embedded SQLite file, or a database URL.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// SQLite at this path.
    Sqlite {
        /// The database file.
        path: std::path::PathBuf,
        /// Tuning.
        options: sqlite::SqliteOptions,
    },
    /// PostgreSQL at this URL (`postgres://...`).
    Postgres {
        /// Connection string.
        url: String,
        /// Tuning.
        options: postgres::PostgresOptions,
    },
}

/// Opens the configured store and returns it with its commit stream.
pub async fn open(
    config: &StoreConfig,
) -> StoreResult<(std::sync::Arc<dyn Store>, CommitReceiver)> {
    match config {
        StoreConfig::Sqlite { path, options } => {
            let (store, events) = sqlite::SqliteStore::open(path, options.clone())?;
            Ok((std::sync::Arc::new(store), events))
        }
        StoreConfig::Postgres { url, options } => {
            let (store, events) = postgres::PostgresStore::open(url, options.clone()).await?;
            Ok((std::sync::Arc::new(store), events))
        }
    }
}
