//! Records read and written through the [`Store`](crate::Store) trait.

use std::sync::Arc;

use parley_proto::api::{ConversationKind, ConversationSettings, PresenceVisibility};
use parley_proto::{
    ConversationId, DeviceId, MediaId, Message, MessageKind, ReceiptStatus, Role, UserId,
};

use crate::error::StoreResult;

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Validated username.
    pub username: String,
    /// Display name (the username when none was given).
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub now_ms: i64,
    /// A server administrator (protocol §14).
    pub is_admin: bool,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Unique login name.
    pub username: String,
    /// Name to show.
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Who may see presence.
    pub presence_visibility: PresenceVisibility,
    /// When the last device went away.
    pub last_seen_ms: Option<i64>,
    /// Creation time.
    pub created_at_ms: i64,
    /// The avatar's media id.
    pub avatar_media_id: Option<String>,
    /// Whether the user's read receipts are shown (and others' to it).
    pub read_receipts: bool,
    /// Whether push notifications may carry previews.
    pub push_previews: bool,
    /// A server administrator (protocol §14).
    pub is_admin: bool,
    /// When an administrator disabled the account; `None` when enabled.
    pub disabled_at_ms: Option<i64>,
    /// When the account was erased (it stays disabled for good).
    pub erased_at_ms: Option<i64>,
}

/// A change of a user's profile; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileChange {
    /// New display name (validated by the store: 1–64 characters).
    pub display_name: Option<String>,
    /// New avatar media id (the user's own ready image); `Some("")`
    /// removes it.
    pub avatar_media_id: Option<String>,
    /// Show read receipts.
    pub read_receipts: Option<bool>,
    /// Previews in push notifications.
    pub push_previews: Option<bool>,
    /// Now: a replaced avatar is an orphan from then.
    pub now_ms: i64,
}

/// A stored device (one login).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// Id.
    pub id: DeviceId,
    /// Owner.
    pub user_id: UserId,
    /// Name given at login.
    pub name: String,
    /// Login time.
    pub created_at_ms: i64,
}

/// A member and its cursors.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    /// The member.
    pub user_id: UserId,
    /// Its role.
    pub role: Role,
    /// Delivered cursor.
    pub delivered_up_to: u64,
    /// Read cursor.
    pub read_up_to: u64,
    /// The seq from which this membership period sees messages.
    pub joined_seq: u64,
}

/// A conversation with its active members.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRecord {
    /// Id.
    pub id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Group name.
    pub name: Option<String>,
    /// Group avatar's media id.
    pub avatar_media_id: Option<String>,
    /// Highest seq.
    pub last_seq: u64,
    /// Active members, in join order.
    pub members: Vec<MemberRecord>,
    /// Groups: minimum delivered cursor announced so far.
    pub delivered_all_up_to: u64,
    /// Groups: minimum read cursor announced so far.
    pub read_all_up_to: u64,
}

impl ConversationRecord {
    /// The active member record of `user`, if any.
    pub fn member(&self, user: UserId) -> Option<&MemberRecord> {
        self.members.iter().find(|m| m.user_id == user)
    }
}

/// One entry of a user's conversation list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSummaryRecord {
    /// The conversation.
    pub conversation: ConversationRecord,
    /// Its newest message.
    pub last_message: Option<Message>,
    /// Others' messages (not events) above the user's read cursor.
    pub unread_count: u64,
    /// The user's own settings of the conversation.
    pub settings: ConversationSettings,
    /// The user left or was removed: `conversation.members` is empty,
    /// and `last_seq` is the seq of its departure.
    pub left: bool,
    /// When the newest message the user sees was sent (orders the list).
    pub activity_ms: i64,
}

/// A change of a user's own settings of a conversation; `None` keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// Muted until (ms); -1 forever, 0 not muted.
    pub muted_until_ms: Option<i64>,
    /// Pinned.
    pub pinned: Option<bool>,
    /// Archived.
    pub archived: Option<bool>,
}

/// A search over a user's history (§10).
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Who searches.
    pub viewer: UserId,
    /// 1–256 characters.
    pub text: String,
    /// Only this conversation.
    pub conversation: Option<ConversationId>,
    /// Within `conversation`: only seqs below this.
    pub before_seq: Option<u64>,
    /// Only message ids below this (the keyset across conversations).
    pub before_id: Option<i64>,
    /// 1–50.
    pub limit: usize,
}

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Becomes admin.
    pub creator: UserId,
    /// Name.
    pub name: String,
    /// Other initial members (duplicates and the creator are ignored).
    pub member_ids: Vec<UserId>,
    /// Size limit including the creator.
    pub max_members: usize,
    /// Creation time.
    pub now_ms: i64,
}

/// An administrative change of a group.
#[derive(Debug, Clone)]
pub struct GroupChange {
    /// The group.
    pub conversation: ConversationId,
    /// Who makes the change.
    pub actor: UserId,
    /// What changes.
    pub kind: GroupChangeKind,
    /// Size limit including the creator.
    pub max_members: usize,
    /// Time of the change.
    pub now_ms: i64,
}

/// What an administrative change does.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupChangeKind {
    /// Add members (admins only).
    Add {
        /// Users to add.
        users: Vec<UserId>,
    },
    /// Remove a member (admins), or leave (the member itself).
    Remove {
        /// The member.
        user: UserId,
    },
    /// Rename (admins only).
    Rename {
        /// New name.
        name: String,
    },
    /// Change a member's role (admins only).
    SetRole {
        /// The member.
        user: UserId,
        /// Its new role.
        role: Role,
    },
}

/// The edit and delete windows (§8), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventWindows {
    /// A sender may edit its text this long after sending it.
    pub edit_ms: i64,
    /// A sender may delete its message for everyone this long after
    /// sending it (group admins: any time).
    pub delete_ms: i64,
}

impl Default for EventWindows {
    /// The protocol's defaults: 900 s and 172,800 s.
    fn default() -> Self {
        EventWindows {
            edit_ms: 900_000,
            delete_ms: 172_800_000,
        }
    }
}

/// A message or event to append.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// Where.
    pub conversation_id: ConversationId,
    /// Who.
    pub sender_id: UserId,
    /// From which device.
    pub sender_device_id: DeviceId,
    /// Idempotency key.
    pub client_msg_id: String,
    /// `text`, or an event kind (`edit`, `delete`, `reaction`).
    pub kind: MessageKind,
    /// The text (`text`, `edit`); empty otherwise.
    pub text: String,
    /// The seq it answers.
    pub reply_to_seq: Option<u64>,
    /// For events: the message they change.
    pub target_seq: Option<u64>,
    /// For `reaction`: the emoji; `""` or none removes.
    pub emoji: Option<String>,
    /// Marked as forwarded.
    pub forwarded: bool,
    /// For media kinds: the one media item (ready, and the sender's own or
    /// visible to the sender); empty otherwise.
    pub media: Vec<MediaId>,
    /// The edit and delete windows in force.
    pub windows: EventWindows,
    /// Send time (the store stamps commit time).
    pub now_ms: i64,
}

/// Result of [`Store::append_message`](crate::Store::append_message).
#[derive(Debug, Clone)]
pub struct Appended {
    /// The stored message (the original one on a repeat).
    pub message: Message,
    /// This send was a repeat; nothing new was stored.
    pub duplicate: bool,
}

/// A history query.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// The conversation.
    pub conversation: ConversationId,
    /// Who reads.
    pub viewer: UserId,
    /// Only seqs below this.
    pub before_seq: Option<u64>,
    /// Only seqs above this.
    pub after_seq: Option<u64>,
    /// At most this many (1–100).
    pub limit: usize,
}

/// One inbox entry: a message at the user's cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    /// The user's inbox position.
    pub cursor: u64,
    /// The message.
    pub message: Message,
}

/// What a socket reads when it opens ([`crate::Store::inbox_opening`]).
#[derive(Debug)]
pub struct InboxOpening {
    /// The user's inbox head.
    pub head: u64,
    /// The first page after the socket's `since` (`None` without one), as
    /// [`crate::Store::inbox_since`] reads it. Its error
    /// (`ResyncRequired` for a `since` older than what is kept) leaves the
    /// head good to use.
    pub first_page: Option<StoreResult<Vec<InboxEntry>>>,
}

/// Who must hear about a committed message, with their inbox positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// The user.
    pub user_id: UserId,
    /// Its inbox cursor for this message.
    pub cursor: u64,
}

/// The outcome of a receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptChange {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Whose cursor.
    pub user_id: UserId,
    /// The device that sent the receipt (it needs no echo).
    pub device_id: Option<DeviceId>,
    /// What the frame asked for.
    pub status: ReceiptStatus,
    /// The member's delivered cursor after the change.
    pub delivered_up_to: u64,
    /// The member's read cursor after the change.
    pub read_up_to: u64,
    /// Whether any cursor moved.
    pub advanced: bool,
    /// Groups: the new minimums, when they advanced.
    pub summary: Option<(u64, u64)>,
    /// A direct conversation where a member turned read receipts off: the
    /// other member hears of the delivery only, never of the read.
    pub read_hidden: bool,
    /// Active members of the conversation.
    pub members: Vec<UserId>,
}

/// A committed change, announced in commit order.
#[derive(Debug, Clone)]
pub enum Committed {
    /// A message is durable.
    Message {
        /// The message.
        message: Arc<Message>,
        /// Everyone who gets it, with their cursors.
        recipients: Vec<Recipient>,
    },
    /// A member's cursor advanced.
    Receipt(ReceiptChange),
}

/// A page of the administrators' user list (protocol §14).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserListQuery {
    /// Only users whose username or display name contains this
    /// (case-insensitive).
    pub search: Option<String>,
    /// Only users with a larger id (keyset paging).
    pub after: Option<UserId>,
    /// Page size (checked by the store: 1 to 200).
    pub limit: usize,
}

/// What the store counts for `GET /v1/admin/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Accounts that are not erased.
    pub users: u64,
    /// Of those, how many are disabled.
    pub disabled_users: u64,
    /// Devices (logins) not revoked.
    pub devices: u64,
    /// Conversations, direct and group.
    pub conversations: u64,
    /// Messages users wrote (`text`), deleted ones included; not system
    /// messages or events.
    pub messages: u64,
}

/// Where a device's push notifications go (protocol §12), one per device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    /// Web Push (RFC 8030/8291/8292); UnifiedPush uses the same protocol.
    WebPush {
        /// `true` when registered as `unifiedpush`.
        unified: bool,
        /// The push service URL messages are POSTed to.
        endpoint: String,
        /// The subscription's P-256 public key (base64url, uncompressed).
        p256dh: String,
        /// The subscription's 16-byte auth secret (base64url).
        auth: String,
    },
    /// Firebase Cloud Messaging (HTTP v1), by registration token.
    Fcm {
        /// The registration token.
        token: String,
    },
    /// Apple Push Notification service, by device token.
    Apns {
        /// The device token (hex).
        token: String,
        /// The app's bundle id (`apns-topic`).
        topic: String,
        /// Whether the token belongs to the sandbox environment.
        sandbox: bool,
    },
}

/// A device that may be woken for a message: it has a registration, and
/// the engine read what the trigger rule needs (`domain::push`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushCandidate {
    /// The device.
    pub device_id: DeviceId,
    /// Its owner, a recipient of the message.
    pub user_id: UserId,
    /// Whether the owner opted into message previews.
    pub previews: bool,
    /// Whether the conversation is direct (pushed with high urgency).
    pub direct: bool,
}

/// A push to queue for a device; queuing again before it is sent
/// coalesces (one pending push per device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPendingPush {
    /// The device to wake.
    pub device_id: DeviceId,
    /// Its owner.
    pub user_id: UserId,
    /// The conversation of the newest message it announces.
    pub conversation_id: ConversationId,
    /// High urgency (direct messages); a coalesced push keeps the highest.
    pub urgent: bool,
    /// The preview (`sender_id`, text) when the owner opted in.
    pub preview: Option<(UserId, String)>,
    /// Send no later than this (ms); coalescing keeps the earliest.
    pub due_at_ms: i64,
    /// When it was queued.
    pub now_ms: i64,
}

/// A pending push claimed for delivery, with its device's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPush {
    /// The device to wake.
    pub device_id: DeviceId,
    /// Its owner.
    pub user_id: UserId,
    /// The conversation of the newest message it announces.
    pub conversation_id: ConversationId,
    /// Messages coalesced into it.
    pub unread: u64,
    /// High urgency.
    pub urgent: bool,
    /// The preview (`sender_id`, text) when the owner opted in.
    pub preview: Option<(UserId, String)>,
    /// When the first of its messages was queued (ms); it expires
    /// `push_ttl_secs` later.
    pub created_at_ms: i64,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Bumped by each coalesced message; finishing the push deletes it
    /// only if no message came in since it was claimed.
    pub generation: i64,
    /// Where it goes.
    pub target: PushTarget,
}

/// Where an upload is in its life (§9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaState {
    /// A slot was handed out; the bytes are not verified yet.
    Pending,
    /// Verified at `complete`: messages may reference it.
    Ready,
    /// `complete` found the bytes wrong; never usable, collected soon.
    Rejected,
    /// Claimed by garbage collection: its objects are being deleted.
    Deleting,
}

impl MediaState {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaState::Pending => "pending",
            MediaState::Ready => "ready",
            MediaState::Rejected => "rejected",
            MediaState::Deleting => "deleting",
        }
    }

    /// Parses a stored value; anything unknown is treated as being deleted.
    pub fn parse(s: &str) -> Self {
        match s {
            "pending" => MediaState::Pending,
            "ready" => MediaState::Ready,
            "rejected" => MediaState::Rejected,
            _ => MediaState::Deleting,
        }
    }
}

/// A new upload slot.
#[derive(Debug, Clone)]
pub struct NewMedia {
    /// The uploader.
    pub owner: UserId,
    /// The declared type.
    pub content_type: String,
    /// The declared size.
    pub size: u64,
    /// The declared SHA-256, base64.
    pub sha256: String,
    /// The declared file name.
    pub filename: Option<String>,
    /// Now.
    pub now_ms: i64,
    /// The slot must be completed before this, or it is collected.
    pub expires_at_ms: i64,
    /// The owner's storage quota: the sum of the sizes of its pending and
    /// ready media may not pass it (`TooLarge` otherwise).
    pub quota_bytes: u64,
}

/// What `complete` found in verified bytes.
#[derive(Debug, Clone, Default)]
pub struct MediaVerified {
    /// The type the bytes were recognised as (the declared one, or the
    /// sniffed family's canonical name when they agree).
    pub content_type: String,
    /// Pixel width (images).
    pub width: Option<u32>,
    /// Pixel height (images).
    pub height: Option<u32>,
    /// Length (audio, video), when known.
    pub duration_ms: Option<u64>,
    /// The thumbnails stored (images).
    pub thumbnails: Vec<parley_proto::api::ThumbnailView>,
    /// Now.
    pub now_ms: i64,
}

/// A stored media row.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRecord {
    /// Which.
    pub id: MediaId,
    /// The uploader.
    pub owner: UserId,
    /// Where it is in its life.
    pub state: MediaState,
    /// Declared, then verified, type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, base64.
    pub sha256: String,
    /// The uploader's file name.
    pub filename: Option<String>,
    /// Pixel width (images).
    pub width: Option<u32>,
    /// Pixel height (images).
    pub height: Option<u32>,
    /// Length (audio, video).
    pub duration_ms: Option<u64>,
    /// The thumbnails stored.
    pub thumbnails: Vec<parley_proto::api::ThumbnailView>,
    /// When the slot was made.
    pub created_at_ms: i64,
    /// Pending: when the slot lapses.
    pub expires_at_ms: i64,
}

impl MediaRecord {
    /// The media as a message carries it.
    pub fn info(&self) -> parley_proto::MediaInfo {
        parley_proto::MediaInfo {
            media_id: self.id,
            content_type: self.content_type.clone(),
            size: self.size,
            filename: self.filename.clone(),
            width: self.width,
            height: self.height,
            duration_ms: self.duration_ms,
        }
    }
}
