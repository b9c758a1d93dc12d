//! HTTP request and response bodies (§2–§4, §6, §9, §14 of the protocol).

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, DeviceId, MediaId, UserId};
use crate::message::{MediaRef, Message, MessageKind, Role};

fn is_false(value: &bool) -> bool {
    !*value
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// 3–32 of `[a-z0-9_.]`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 3, max_length = 32, pattern = "^[a-z0-9_.]+$")
    )]
    pub username: String,
    /// 8–256 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub password: String,
    /// Shown instead of the username where set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub display_name: Option<String>,
}

/// A user as others see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    /// The user's id.
    pub user_id: UserId,
    /// The unique login name.
    pub username: String,
    /// The name to show.
    pub display_name: String,
    /// The user's avatar, a media id (§11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
}

/// `PATCH /v1/me`: change the caller's profile (§11).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileRequest {
    /// 1–64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub display_name: Option<String>,
    /// A ready image the caller uploaded (§9); `""` removes the avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
}

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// Login name.
    #[cfg_attr(feature = "openapi", schema(min_length = 3, max_length = 32))]
    pub username: String,
    /// Password.
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub password: String,
    /// A name for the new device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// Response of `POST /v1/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// Bearer token for HTTP and the WebSocket `auth` frame.
    pub token: String,
    /// Who logged in.
    pub user_id: UserId,
    /// The new device.
    pub device_id: DeviceId,
    /// When the token stops working.
    pub expires_at_ms: i64,
}

/// One device in `GET /v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceView {
    /// The device.
    pub device_id: DeviceId,
    /// Its name.
    pub device_name: String,
    /// When it logged in.
    pub created_at_ms: i64,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeResponse {
    /// The caller.
    pub user_id: UserId,
    /// Login name.
    pub username: String,
    /// The name to show.
    pub display_name: String,
    /// Devices with a live session.
    pub devices: Vec<DeviceView>,
    /// `everyone` or `nobody`.
    pub presence_visibility: PresenceVisibility,
    /// The user's avatar, a media id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
    /// Whether the user's read receipts are shown (and others' shown to it).
    #[serde(default = "default_true")]
    pub read_receipts: bool,
    /// Whether push notifications may carry message previews.
    #[serde(default)]
    pub push_previews: bool,
    /// A server administrator (§14).
    #[serde(default)]
    pub is_admin: bool,
}

fn default_true() -> bool {
    true
}

/// Who may see a user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PresenceVisibility {
    /// Everyone sees online and last seen.
    Everyone,
    /// Everyone else sees `online:false` and no last seen.
    Nobody,
}

impl PresenceVisibility {
    /// Stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceVisibility::Everyone => "everyone",
            PresenceVisibility::Nobody => "nobody",
        }
    }

    /// Parses a stored value; unknown means the default, `everyone`.
    pub fn parse(s: &str) -> Self {
        if s == "nobody" {
            PresenceVisibility::Nobody
        } else {
            PresenceVisibility::Everyone
        }
    }
}

/// `PUT /v1/me/settings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsRequest {
    /// New presence visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_visibility: Option<PresenceVisibility>,
    /// Show the user's read receipts to others (and others' to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_receipts: Option<bool>,
    /// Let push notifications carry message previews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_previews: Option<bool>,
}

/// Answer to `PUT /v1/me/settings`: the settings as they now are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsResponse {
    /// Who may see the user's presence.
    pub presence_visibility: PresenceVisibility,
    /// Whether the user's read receipts are shown.
    #[serde(default = "default_true")]
    pub read_receipts: bool,
    /// Whether push notifications may carry previews.
    #[serde(default)]
    pub push_previews: bool,
}

/// `PUT /v1/conversations/{id}/settings`: the caller's own settings of a
/// conversation (§11). Absent fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationSettingsRequest {
    /// Muted until then (ms); `-1` forever, `0` not muted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_until_ms: Option<i64>,
    /// Listed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    /// Listed under "Archived".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

/// A user's own settings of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationSettings {
    /// Muted until then (ms); `-1` forever, `0` not muted.
    pub muted_until_ms: i64,
    /// Listed first.
    pub pinned: bool,
    /// Listed under "Archived".
    pub archived: bool,
}

/// `GET /v1/me/blocks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockList {
    /// Users the caller blocks.
    pub user_ids: Vec<UserId>,
}

/// `GET /v1/search`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    /// Matching messages, newest first.
    pub results: Vec<Message>,
    /// More matches lie beyond the last one (page on with
    /// `before_id=<its message_id>`, or `before_seq` within one
    /// conversation).
    pub has_more: bool,
}

/// `POST /v1/conversations/direct`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirectRequest {
    /// The other user.
    pub user_id: UserId,
}

/// `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateGroupRequest {
    /// The group's name.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    /// Initial members besides the creator.
    #[serde(default)]
    pub member_ids: Vec<UserId>,
}

/// `POST /v1/groups/{id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddMembersRequest {
    /// Users to add.
    pub user_ids: Vec<UserId>,
}

/// `PATCH /v1/groups/{id}`: any of the fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenameRequest {
    /// The new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: Option<String>,
    /// The group's avatar: a ready image the admin uploaded; `""` removes
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
}

/// `PUT /v1/groups/{id}/members/{user_id}/role`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleRequest {
    /// The new role.
    pub role: Role,
}

/// A member with its role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberRole {
    /// The member.
    pub user_id: UserId,
    /// Its role.
    pub role: Role,
}

/// Response of conversation creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationCreated {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// `direct` or `group`.
    pub kind: ConversationKind,
    /// Group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Group avatar, a media id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
    /// Current members.
    pub members: Vec<MemberRole>,
}

/// Direct or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConversationKind {
    /// Exactly two users.
    Direct,
    /// Up to `max_group_members` users with admins.
    Group,
}

impl ConversationKind {
    /// Stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Self {
        if s == "group" {
            ConversationKind::Group
        } else {
            ConversationKind::Direct
        }
    }
}

/// One entry of `GET /v1/conversations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Current members.
    pub members: Vec<UserId>,
    /// Highest seq.
    pub last_seq: u64,
    /// The newest message.
    pub last_message: Option<Message>,
    /// Others' messages above the caller's read cursor.
    pub unread_count: u64,
    /// The caller's read cursor.
    pub read_up_to: u64,
    /// The caller's delivered cursor.
    pub delivered_up_to: u64,
    /// Groups: every member has every message up to here.
    pub delivered_all_up_to: u64,
    /// Groups: every member has read every message up to here.
    pub read_all_up_to: u64,
    /// Group avatar, a media id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
    /// Muted until then (ms); `-1` forever, `0` not muted.
    #[serde(default)]
    pub muted_until_ms: i64,
    /// Listed first.
    #[serde(default)]
    pub pinned: bool,
    /// Listed under "Archived".
    #[serde(default)]
    pub archived: bool,
    /// The caller left or was removed: history stays readable up to the
    /// departure, `members` is empty and nothing after it is shown.
    #[serde(default, skip_serializing_if = "is_false")]
    pub left: bool,
}

/// `GET /v1/conversations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationList {
    /// Most recent activity first.
    pub conversations: Vec<ConversationSummary>,
}

/// A member with its cursors, in `GET /v1/conversations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberState {
    /// The member.
    pub user_id: UserId,
    /// Its role.
    pub role: Role,
    /// Its delivered cursor.
    pub delivered_up_to: u64,
    /// Its read cursor.
    pub read_up_to: u64,
}

/// `GET /v1/conversations/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationDetails {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Group avatar, a media id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_media_id: Option<String>,
    /// Members with cursors.
    pub members: Vec<MemberState>,
    /// Highest seq.
    pub last_seq: u64,
    /// Every member has every message up to here.
    pub delivered_all_up_to: u64,
    /// Every member has read every message up to here.
    pub read_all_up_to: u64,
}

/// `POST /v1/conversations/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendRequest {
    /// Idempotency key.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub client_msg_id: String,
    /// `text`, `edit`, `delete` or `reaction`.
    pub kind: MessageKind,
    /// The text (`text` and `edit`).
    #[serde(default)]
    pub text: String,
    /// The seq this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_seq: Option<u64>,
    /// For events: the message they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
    /// For `reaction`: the emoji; `""` removes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// Marks a `text` message as forwarded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub forwarded: bool,
    /// For `image`, `video`, `audio`, `file`: the one media item (§9).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaRef>,
}

impl SendRequest {
    fn new(client_msg_id: &str, kind: MessageKind) -> SendRequest {
        SendRequest {
            client_msg_id: client_msg_id.into(),
            kind,
            text: String::new(),
            reply_to_seq: None,
            target_seq: None,
            emoji: None,
            forwarded: false,
            media: Vec::new(),
        }
    }

    /// A media message (`kind` is `image`, `video`, `audio` or `file`)
    /// with an optional caption.
    pub fn media(
        client_msg_id: &str,
        kind: MessageKind,
        media_id: MediaId,
        caption: &str,
    ) -> SendRequest {
        SendRequest {
            text: caption.into(),
            media: vec![MediaRef { media_id }],
            ..SendRequest::new(client_msg_id, kind)
        }
    }

    /// A text message.
    pub fn text(client_msg_id: &str, text: &str) -> SendRequest {
        SendRequest {
            text: text.into(),
            ..SendRequest::new(client_msg_id, MessageKind::Text)
        }
    }

    /// A text message answering `reply_to_seq`.
    pub fn reply(client_msg_id: &str, text: &str, reply_to_seq: u64) -> SendRequest {
        SendRequest {
            reply_to_seq: Some(reply_to_seq),
            ..SendRequest::text(client_msg_id, text)
        }
    }

    /// A text message marked as forwarded.
    pub fn forward(client_msg_id: &str, text: &str) -> SendRequest {
        SendRequest {
            forwarded: true,
            ..SendRequest::text(client_msg_id, text)
        }
    }

    /// Replaces the text of the message at `target_seq`.
    pub fn edit(client_msg_id: &str, target_seq: u64, text: &str) -> SendRequest {
        SendRequest {
            text: text.into(),
            target_seq: Some(target_seq),
            ..SendRequest::new(client_msg_id, MessageKind::Edit)
        }
    }

    /// Deletes the message at `target_seq` for everyone.
    pub fn delete(client_msg_id: &str, target_seq: u64) -> SendRequest {
        SendRequest {
            target_seq: Some(target_seq),
            ..SendRequest::new(client_msg_id, MessageKind::Delete)
        }
    }

    /// Sets the sender's reaction on `target_seq` (`""` removes it).
    pub fn reaction(client_msg_id: &str, target_seq: u64, emoji: &str) -> SendRequest {
        SendRequest {
            target_seq: Some(target_seq),
            emoji: Some(emoji.into()),
            ..SendRequest::new(client_msg_id, MessageKind::Reaction)
        }
    }
}

/// Response of `POST /v1/conversations/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendResponse {
    /// The stored message.
    pub message: Message,
}

/// `GET /v1/conversations/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPage {
    /// Ascending seq.
    pub messages: Vec<Message>,
    /// More in the direction of the query.
    pub has_more: bool,
}

/// `GET /v1/users/{user_id}/presence`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceView {
    /// Whose.
    pub user_id: UserId,
    /// At least one live socket.
    pub online: bool,
    /// When last online, unless hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
}

/// A user as server administrators see it (§14).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserView {
    /// The user's id.
    pub user_id: UserId,
    /// The login name (`#erased-…` once erased).
    pub username: String,
    /// The name to show.
    pub display_name: String,
    /// A server administrator.
    pub is_admin: bool,
    /// Disabled: logins and tokens refused.
    pub disabled: bool,
    /// Erased (`DELETE /v1/admin/users/{id}`); also disabled.
    pub erased: bool,
    /// When the account was made.
    pub created_at_ms: i64,
    /// When its last device went away, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
}

/// `GET /v1/admin/users?q=&after=&limit=`: a page of users by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserList {
    /// The page, by ascending id.
    pub users: Vec<AdminUserView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<UserId>,
}

/// `POST /v1/admin/users`: make an account (registration need not be open).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminCreateUserRequest {
    /// 3–32 of `[a-z0-9_.]`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 3, max_length = 32, pattern = "^[a-z0-9_.]+$")
    )]
    pub username: String,
    /// 8–256 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub password: String,
    /// Shown instead of the username where set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub display_name: Option<String>,
    /// Make it a server administrator.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_admin: bool,
}

/// `POST /v1/admin/users/{id}/password`: set a new password (every device
/// of the user is logged out).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordResetRequest {
    /// 8–256 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub password: String,
}

/// `GET /v1/admin/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminStats {
    /// Accounts not erased.
    pub users: u64,
    /// Of those, disabled.
    pub disabled_users: u64,
    /// Devices (logins) not logged out.
    pub devices: u64,
    /// Conversations, direct and group.
    pub conversations: u64,
    /// Text messages stored (deleted ones included).
    pub messages: u64,
    /// Open WebSockets on the node that answered.
    pub live_sockets: u64,
    /// Bytes of stored media (the data dir's `media` directory).
    pub media_bytes: u64,
}

/// `POST /v1/media`: ask for an upload slot (§9).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaUploadRequest {
    /// The declared type, checked against the allow-list now and against
    /// the bytes at `complete`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 3, max_length = 255, example = "image/png")
    )]
    pub content_type: String,
    /// Exact size in bytes.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub size: u64,
    /// SHA-256 of the whole file, standard base64 (32 bytes: 44 characters).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9+/]{43}=$"))]
    pub sha256: String,
    /// The file's name, shown on file messages (a path is cut to its last
    /// part; at most 255 bytes, no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub filename: Option<String>,
}

/// Where and how to send the bytes of an upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadTarget {
    /// Always `PUT`.
    pub method: String,
    /// Parley's own URL (`local`) or a presigned bucket URL (`s3`).
    pub url: String,
    /// Send exactly these headers.
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Response of `POST /v1/media` (201).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaUploadSlot {
    /// The new media, `pending` until completed.
    pub media_id: MediaId,
    /// Where to send the bytes.
    pub upload: UploadTarget,
    /// The upload URL stops working then.
    pub expires_at_ms: i64,
}

/// One thumbnail of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThumbnailView {
    /// `s`, `m` or `l`.
    pub size: ThumbnailSize,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
}

impl ThumbnailView {
    /// A media item's thumbnails as stored (JSON array).
    pub fn encode_list(thumbnails: &[ThumbnailView]) -> String {
        crate::message::encode_list(thumbnails)
    }

    /// Reads [`ThumbnailView::encode_list`]'s output; unreadable reads as
    /// none.
    pub fn decode_list(stored: &str) -> Vec<ThumbnailView> {
        crate::message::decode_list(stored)
    }
}

/// The thumbnail sizes (`GET /v1/media/{id}/thumbnail?size=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ThumbnailSize {
    /// Fits 96×96.
    S,
    /// Fits 320×320.
    M,
    /// Fits 800×800.
    L,
}

impl ThumbnailSize {
    /// Every size, smallest first.
    pub const ALL: [ThumbnailSize; 3] = [ThumbnailSize::S, ThumbnailSize::M, ThumbnailSize::L];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ThumbnailSize::S => "s",
            ThumbnailSize::M => "m",
            ThumbnailSize::L => "l",
        }
    }

    /// The longest side it fits in, in pixels.
    pub fn max_side(self) -> u32 {
        match self {
            ThumbnailSize::S => 96,
            ThumbnailSize::M => 320,
            ThumbnailSize::L => 800,
        }
    }
}

/// Response of `POST /v1/media/{id}/complete`, and the media's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaView {
    /// Which.
    pub media_id: MediaId,
    /// `ready` once verified.
    pub status: String,
    /// The verified type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Pixel width (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Pixel height (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Length (audio, video), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The thumbnails made (images only).
    #[serde(default)]
    pub thumbnails: Vec<ThumbnailView>,
}

/// Response of `GET /v1/media/{id}/url`: a capability URL usable without
/// a header (for `<img src>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaUrl {
    /// Fetch this; it works for anyone holding it until it expires.
    pub url: String,
    /// When it stops working.
    pub expires_at_ms: i64,
}
