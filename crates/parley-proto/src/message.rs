//! The message object (§4 of the protocol).

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, DeviceId, MediaId, MessageId, UserId};

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MessageKind {
    /// Plain text written by a user.
    #[default]
    Text,
    /// A membership change written by the server, ordered with the chat.
    System,
    /// An event replacing the text of the message at `target_seq` (§8).
    Edit,
    /// An event deleting the message at `target_seq` for everyone (§8).
    Delete,
    /// An event setting or removing the sender's reaction on the message
    /// at `target_seq` (§8).
    Reaction,
    /// A photo (§9): one `media` entry, the text is its caption.
    Image,
    /// A video (§9).
    Video,
    /// A voice note or other audio (§9).
    Audio,
    /// Any other file (§9), served as an attachment.
    File,
}

impl MessageKind {
    /// The wire name, also used as the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::System => "system",
            MessageKind::Edit => "edit",
            MessageKind::Delete => "delete",
            MessageKind::Reaction => "reaction",
            MessageKind::Image => "image",
            MessageKind::Video => "video",
            MessageKind::Audio => "audio",
            MessageKind::File => "file",
        }
    }

    /// Whether this kind carries media (`image`, `video`, `audio`, `file`):
    /// exactly one `media` entry, the text being its optional caption.
    pub fn is_media(self) -> bool {
        matches!(
            self,
            MessageKind::Image | MessageKind::Video | MessageKind::Audio | MessageKind::File
        )
    }

    /// Whether this kind is an event aimed at another message
    /// (`edit`, `delete`, `reaction`): events never count as unread,
    /// never become a conversation's `last_message`, and are never the
    /// target of another event.
    pub fn is_event(self) -> bool {
        matches!(
            self,
            MessageKind::Edit | MessageKind::Delete | MessageKind::Reaction
        )
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(MessageKind::Text),
            "system" => Some(MessageKind::System),
            "edit" => Some(MessageKind::Edit),
            "delete" => Some(MessageKind::Delete),
            "reaction" => Some(MessageKind::Reaction),
            "image" => Some(MessageKind::Image),
            "video" => Some(MessageKind::Video),
            "audio" => Some(MessageKind::Audio),
            "file" => Some(MessageKind::File),
            _ => None,
        }
    }
}

/// The membership change a `system` message records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// One emoji on a message and who chose it (§8): each member has at most
/// one reaction per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reaction {
    /// The emoji (one grapheme cluster).
    pub emoji: String,
    /// Who reacted with it, in the order they did.
    pub user_ids: Vec<UserId>,
}

/// A list as stored beside a row (a JSON array): plain data with string
/// keys, so encoding cannot fail.
pub(crate) fn encode_list<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("plain data always serializes")
}

/// Reads [`encode_list`]'s output; unreadable reads as empty.
pub(crate) fn decode_list<T: serde::de::DeserializeOwned>(stored: &str) -> Vec<T> {
    serde_json::from_str(stored).unwrap_or_default()
}

impl Reaction {
    /// A message's reactions as stored (the wire's JSON array).
    pub fn encode_list(reactions: &[Reaction]) -> String {
        encode_list(reactions)
    }

    /// Reads [`Reaction::encode_list`]'s output; unreadable reads as none.
    pub fn decode_list(stored: &str) -> Vec<Reaction> {
        decode_list(stored)
    }
}

/// A media item named in a send (§9): `{"media_id": "f12"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaRef {
    /// Ready media the sender uploaded, or may see (a forward).
    pub media_id: MediaId,
}

/// A media item as a message carries it (§9), filled by the server from
/// the verified upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaInfo {
    /// Download with `GET /v1/media/{media_id}`.
    pub media_id: MediaId,
    /// The verified content type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// The name the uploader gave, if any.
    #[serde(default)]
    pub filename: Option<String>,
    /// Pixel width (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Pixel height (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Length (audio and video, when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl MediaInfo {
    /// A message's media as stored (JSON array).
    pub fn encode_list(media: &[MediaInfo]) -> String {
        encode_list(media)
    }

    /// Reads [`MediaInfo::encode_list`]'s output; unreadable reads as none.
    pub fn decode_list(stored: &str) -> Vec<MediaInfo> {
        decode_list(stored)
    }
}

/// The quote of the message a reply answers, filled by the server as the
/// viewer may see it (§8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplyQuote {
    /// The quoted message.
    pub seq: u64,
    /// Who wrote it.
    pub sender_id: UserId,
    /// Its kind.
    pub kind: MessageKind,
    /// Its current text, cut to [`ReplyQuote::MAX_TEXT_CHARS`] characters;
    /// absent when deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The quoted message was deleted for everyone.
    pub deleted: bool,
}

impl ReplyQuote {
    /// Longest quoted text, in characters.
    pub const MAX_TEXT_CHARS: usize = 200;
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A stored message, as delivered and as returned by history.
///
/// The fields after `role` are optional on the wire and left out when
/// empty, so a plain text message costs no more bytes than before.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// For events (`edit`, `delete`, `reaction`): the message they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
    /// For `reaction` events: the emoji; `""` removes the sender's reaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// The sender marked this message as forwarded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub forwarded: bool,
    /// When the text was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at_ms: Option<i64>,
    /// Deleted for everyone: only `seq`, `sender_id` and `sent_at_ms` remain.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Current reactions, grouped by emoji.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The quote of the message at `reply_to_seq`, as the viewer may see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyQuote>,
    /// For `image`, `video`, `audio` and `file`: the media (§9).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaInfo>,
}
