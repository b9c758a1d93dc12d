//! The message object (§4 of the protocol).

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, DeviceId, MessageId, UserId};

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Plain text written by a user.
    Text,
    /// A membership change written by the server, ordered with the chat.
    System,
}

impl MessageKind {
    /// The wire name, also used as the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::System => "system",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(MessageKind::Text),
            "system" => Some(MessageKind::System),
            _ => None,
        }
    }
}

/// The membership change a `system` message records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemEvent {
    /// The group was created (with its initial members).
    Created,
    /// An admin added members.
    MemberAdded,
    /// An admin removed a member.
    MemberRemoved,
    /// A member left by itself.
    MemberLeft,
    /// The group was renamed.
    Renamed,
    /// A member's role changed.
    RoleChanged,
}

impl SystemEvent {
    /// The wire name, also used as the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemEvent::Created => "created",
            SystemEvent::MemberAdded => "member_added",
            SystemEvent::MemberRemoved => "member_removed",
            SystemEvent::MemberLeft => "member_left",
            SystemEvent::Renamed => "renamed",
            SystemEvent::RoleChanged => "role_changed",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => SystemEvent::Created,
            "member_added" => SystemEvent::MemberAdded,
            "member_removed" => SystemEvent::MemberRemoved,
            "member_left" => SystemEvent::MemberLeft,
            "renamed" => SystemEvent::Renamed,
            "role_changed" => SystemEvent::RoleChanged,
            _ => return None,
        })
    }
}

/// A member's role in a group. Direct conversations have only `member`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May administer the group.
    Admin,
    /// An ordinary member.
    Member,
}

impl Role {
    /// The wire name, also used as the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses a stored value; anything unknown is an ordinary member.
    pub fn parse(s: &str) -> Self {
        if s == "admin" {
            Role::Admin
        } else {
            Role::Member
        }
    }
}

/// A stored message, as delivered and as returned by history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// Its position in the conversation: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// Server-wide unique id.
    pub message_id: MessageId,
    /// Who sent it (for system messages: who made the change).
    pub sender_id: UserId,
    /// The device it was sent from; absent for system messages.
    pub sender_device_id: Option<DeviceId>,
    /// The sender's idempotency key; absent for system messages.
    pub client_msg_id: Option<String>,
    /// When the server made it durable.
    pub sent_at_ms: i64,
    /// `text` or `system`.
    pub kind: MessageKind,
    /// The text of a `text` message.
    pub text: Option<String>,
    /// The seq this message answers, if any.
    pub reply_to_seq: Option<u64>,
    /// For `system` messages: what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<SystemEvent>,
    /// For `system` messages: whom the change concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ids: Option<Vec<UserId>>,
    /// For `created` and `renamed`: the group's (new) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `role_changed`: the new role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}
