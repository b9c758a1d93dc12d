//! Per-user state in SQLite (protocol §11): blocks, a user's own settings
//! of a conversation, profiles, group avatars; the rules are
//! `domain::settings`.

use parley_proto::api::{ConversationKind, ConversationSettings};
use parley_proto::{ConversationId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::conversations::{load_conversation, reload_conversation};
use super::media;
use super::users::{user_by_id, user_exists};
use crate::domain::media::avatar_target;
use crate::domain::{self, settings};
use crate::error::{StoreError, StoreResult};
use crate::model::{ConversationRecord, ProfileChange, SettingsChange, UserRecord};

/// The members who may not send into `conversation`: in a direct
/// conversation, a member the other member blocks. Groups: nobody.
pub(super) fn blocked_senders(
    conn: &Connection,
    conversation: ConversationId,
) -> StoreResult<Vec<UserId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.blocked_id FROM conversations c
         JOIN members blocker ON blocker.conversation_id=c.id AND blocker.active=1
         JOIN blocks b ON b.user_id=blocker.user_id
         JOIN members blocked ON blocked.conversation_id=c.id AND blocked.user_id=b.blocked_id AND blocked.active=1
         WHERE c.id=?1 AND c.kind='direct'",
    )?;
    let ids = stmt
        .query_map([conversation.0], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

pub(super) fn set_block(
    conn: &Connection,
    user: UserId,
    other: UserId,
    blocked: bool,
    now: i64,
) -> StoreResult<()> {
    if user == other {
        return Err(StoreError::Invalid("you cannot block yourself".into()));
    }
    if !user_exists(conn, other)? {
        return Err(StoreError::NotFound("user"));
    }
    if blocked {
        conn.prepare_cached(
            "INSERT INTO blocks(user_id, blocked_id, created_at_ms) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![user.0, other.0, now])?;
    } else {
        conn.prepare_cached("DELETE FROM blocks WHERE user_id=?1 AND blocked_id=?2")?
            .execute(params![user.0, other.0])?;
    }
    Ok(())
}

pub(super) fn blocks(conn: &Connection, user: UserId) -> StoreResult<Vec<UserId>> {
    let mut stmt =
        conn.prepare_cached("SELECT blocked_id FROM blocks WHERE user_id=?1 ORDER BY blocked_id")?;
    let ids = stmt
        .query_map([user.0], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

pub(super) fn set_conversation_settings(
    conn: &Connection,
    user: UserId,
    conversation: ConversationId,
    change: SettingsChange,
) -> StoreResult<ConversationSettings> {
    let current = conn
        .prepare_cached(
            "SELECT muted_until_ms, pinned, archived FROM members WHERE conversation_id=?1 AND user_id=?2",
        )?
        .query_row(params![conversation.0, user.0], |r| {
            Ok(ConversationSettings {
                muted_until_ms: r.get(0)?,
                pinned: r.get::<_, i64>(1)? != 0,
                archived: r.get::<_, i64>(2)? != 0,
            })
        })
        .optional()?;
    let Some(current) = current else {
        let exists = load_conversation(conn, conversation)?.is_some();
        return Err(domain::history_refusal(exists));
    };
    let next = settings::apply_settings(current, change)?;
    conn.prepare_cached(
        "UPDATE members SET muted_until_ms=?3, pinned=?4, archived=?5 WHERE conversation_id=?1 AND user_id=?2",
    )?
    .execute(params![
        conversation.0,
        user.0,
        next.muted_until_ms,
        next.pinned as i64,
        next.archived as i64
    ])?;
    Ok(next)
}

pub(super) fn update_profile(
    conn: &Connection,
    user: UserId,
    change: ProfileChange,
) -> StoreResult<UserRecord> {
    if !user_exists(conn, user)? {
        return Err(StoreError::NotFound("user"));
    }
    if let Some(name) = &change.display_name {
        let name = settings::validate_display_name(name)?;
        conn.prepare_cached("UPDATE users SET display_name=?2 WHERE id=?1")?
            .execute(params![user.0, name])?;
    }
    if let Some(avatar) = &change.avatar_media_id {
        let old: Option<String> = conn
            .prepare_cached("SELECT avatar_media_id FROM users WHERE id=?1")?
            .query_row([user.0], |r| r.get(0))?;
        let new = avatar_target(avatar)
            .map(|id| media::adopt_avatar(conn, user, id))
            .transpose()?;
        conn.prepare_cached("UPDATE users SET avatar_media_id=?2 WHERE id=?1")?
            .execute(params![user.0, new])?;
        if old != new {
            media::release_avatar(conn, old.as_deref(), change.now_ms)?;
        }
    }
    if let Some(on) = change.read_receipts {
        conn.prepare_cached("UPDATE users SET read_receipts=?2 WHERE id=?1")?
            .execute(params![user.0, on as i64])?;
    }
    if let Some(on) = change.push_previews {
        conn.prepare_cached("UPDATE users SET push_previews=?2 WHERE id=?1")?
            .execute(params![user.0, on as i64])?;
    }
    user_by_id(conn, user)?.ok_or(StoreError::NotFound("user"))
}

/// Sets or removes a group's avatar (admins; the media as for a user's
/// avatar); the one it replaces is released.
pub(super) fn set_group_avatar(
    conn: &Connection,
    group: ConversationId,
    actor: UserId,
    avatar: String,
    now_ms: i64,
) -> StoreResult<ConversationRecord> {
    let record = load_conversation(conn, group)?
        .filter(|r| r.kind == ConversationKind::Group)
        .ok_or(StoreError::NotFound("group"))?;
    settings::check_admin(&record, actor)?;
    let new = avatar_target(&avatar)
        .map(|id| media::adopt_avatar(conn, actor, id))
        .transpose()?;
    conn.prepare_cached("UPDATE conversations SET avatar_media_id=?2 WHERE id=?1")?
        .execute(params![group.0, new])?;
    if record.avatar_media_id != new {
        media::release_avatar(conn, record.avatar_media_id.as_deref(), now_ms)?;
    }
    reload_conversation(conn, group)
}

/// Whether an active member of `conversation` turned read receipts off.
pub(super) fn read_receipts_off(
    conn: &Connection,
    conversation: ConversationId,
) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM members m JOIN users u ON u.id=m.user_id
             WHERE m.conversation_id=?1 AND m.active=1 AND u.read_receipts=0 LIMIT 1",
        )?
        .query_row([conversation.0], |_| Ok(()))
        .optional()?
        .is_some())
}
