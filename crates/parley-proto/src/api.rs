//! HTTP request and response bodies (§2–§4, §6 of the protocol).

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, DeviceId, UserId};
use crate::message::{Message, MessageKind, Role};

/// `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// 3–32 of `[a-z0-9_.]`.
    pub username: String,
    /// 8–256 characters.
    pub password: String,
    /// Shown instead of the username where set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A user as others see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    /// The user's id.
    pub user_id: UserId,
    /// The unique login name.
    pub username: String,
    /// The name to show.
    pub display_name: String,
}

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
    /// A name for the new device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// Response of `POST /v1/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

/// Who may see a user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsRequest {
    /// New presence visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_visibility: Option<PresenceVisibility>,
}

/// Answer to `PUT /v1/me/settings`: the settings as they now are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsResponse {
    /// Who may see the user's presence.
    pub presence_visibility: PresenceVisibility,
}

/// `POST /v1/conversations/direct`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectRequest {
    /// The other user.
    pub user_id: UserId,
}

/// `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateGroupRequest {
    /// The group's name.
    pub name: String,
    /// Initial members besides the creator.
    #[serde(default)]
    pub member_ids: Vec<UserId>,
}

/// `POST /v1/groups/{id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMembersRequest {
    /// Users to add.
    pub user_ids: Vec<UserId>,
}

/// `PATCH /v1/groups/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenameRequest {
    /// The new name.
    pub name: String,
}

/// `PUT /v1/groups/{id}/members/{user_id}/role`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleRequest {
    /// The new role.
    pub role: Role,
}

/// A member with its role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRole {
    /// The member.
    pub user_id: UserId,
    /// Its role.
    pub role: Role,
}

/// Response of conversation creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationCreated {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// `direct` or `group`.
    pub kind: ConversationKind,
    /// Group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Current members.
    pub members: Vec<MemberRole>,
}

/// Direct or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
}

/// `GET /v1/conversations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationList {
    /// Most recent activity first.
    pub conversations: Vec<ConversationSummary>,
}

/// A member with its cursors, in `GET /v1/conversations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct ConversationDetails {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
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
pub struct SendRequest {
    /// Idempotency key.
    pub client_msg_id: String,
    /// Only `text`.
    pub kind: MessageKind,
    /// The text.
    pub text: String,
    /// The seq this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_seq: Option<u64>,
}

/// Response of `POST /v1/conversations/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendResponse {
    /// The stored message.
    pub message: Message,
}

/// `GET /v1/conversations/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Ascending seq.
    pub messages: Vec<Message>,
    /// More in the direction of the query.
    pub has_more: bool,
}

/// `GET /v1/users/{user_id}/presence`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceView {
    /// Whose.
    pub user_id: UserId,
    /// At least one live socket.
    pub online: bool,
    /// When last online, unless hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
}
