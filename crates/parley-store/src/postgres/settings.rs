//! Per-user state in PostgreSQL (protocol §11): blocks, a user's own
//! settings of a conversation, profiles, group avatars; the rules are
//! `domain::settings`.
//!
//! These writes bypass the group-commit writer: each is one autocommit
//! statement (durable with `synchronous_commit=on`) that locks a single
//! row and nothing else, so it cannot join a lock cycle with a batch, and
//! each is idempotent, so the read path's one retry on a broken
//! connection is safe.

use deadpool_postgres::ClientWrapper;
use parley_proto::api::{ConversationKind, ConversationSettings};
use parley_proto::{ConversationId, UserId};

use super::conversations::load_conversation;
use super::errors::{OpResult, execute, query, query_opt};
use super::media::{self, AvatarOf};
use super::users::{user_by_id, user_exists};
use crate::domain::media::avatar_target;
use crate::domain::{self, settings};
use crate::error::StoreError;
use crate::model::{ConversationRecord, ProfileChange, SettingsChange, UserRecord};

pub(super) async fn set_block(
    conn: &ClientWrapper,
    user: UserId,
    other: UserId,
    blocked: bool,
    now: i64,
) -> OpResult<()> {
    if user == other {
        return Err(StoreError::Invalid("you cannot block yourself".into()).into());
    }
    if !user_exists(conn, other).await? {
        return Err(StoreError::NotFound("user").into());
    }
    if blocked {
        execute(
            conn,
            "INSERT INTO blocks(user_id, blocked_id, created_at_ms) VALUES($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&user.0, &other.0, &now],
        )
        .await?;
    } else {
        execute(
            conn,
            "DELETE FROM blocks WHERE user_id=$1 AND blocked_id=$2",
            &[&user.0, &other.0],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn blocks(conn: &ClientWrapper, user: UserId) -> OpResult<Vec<UserId>> {
    let rows = query(
        conn,
        "SELECT blocked_id FROM blocks WHERE user_id=$1 ORDER BY blocked_id",
        &[&user.0],
    )
    .await?;
    rows.iter().map(|r| Ok(UserId(r.try_get(0)?))).collect()
}

pub(super) async fn set_conversation_settings(
    conn: &ClientWrapper,
    user: UserId,
    conversation: ConversationId,
    change: SettingsChange,
) -> OpResult<ConversationSettings> {
    // Validate once against the defaults; the update below applies only
    // the given fields, so it needs no read-modify-write.
    settings::apply_settings(ConversationSettings::default(), change)?;
    let row = query_opt(
        conn,
        "UPDATE members SET muted_until_ms=COALESCE($3, muted_until_ms), pinned=COALESCE($4, pinned),
                archived=COALESCE($5, archived)
         WHERE conversation_id=$1 AND user_id=$2 RETURNING muted_until_ms, pinned, archived",
        &[
            &conversation.0,
            &user.0,
            &change.muted_until_ms,
            &change.pinned,
            &change.archived,
        ],
    )
    .await?;
    match row {
        Some(row) => Ok(ConversationSettings {
            muted_until_ms: row.try_get(0)?,
            pinned: row.try_get(1)?,
            archived: row.try_get(2)?,
        }),
        None => {
            let exists = load_conversation(conn, conversation).await?.is_some();
            Err(domain::history_refusal(exists).into())
        }
    }
}

pub(super) async fn update_profile(
    conn: &ClientWrapper,
    user: UserId,
    change: &ProfileChange,
) -> OpResult<UserRecord> {
    let name = change
        .display_name
        .as_deref()
        .map(settings::validate_display_name)
        .transpose()?;
    if let Some(avatar) = &change.avatar_media_id {
        let target = avatar_target(avatar);
        media::set_avatar(conn, AvatarOf::User(user), user, target, change.now_ms).await?;
    }
    let updated = execute(
        conn,
        "UPDATE users SET display_name=COALESCE($2, display_name),
                read_receipts=COALESCE($3, read_receipts), push_previews=COALESCE($4, push_previews)
         WHERE id=$1",
        &[&user.0, &name, &change.read_receipts, &change.push_previews],
    )
    .await?;
    if updated == 0 {
        return Err(StoreError::NotFound("user").into());
    }
    Ok(user_by_id(conn, user)
        .await?
        .ok_or(StoreError::NotFound("user"))?)
}

/// Sets or removes a group's avatar (admins; the media as for a user's
/// avatar); the one it replaces is released.
pub(super) async fn set_group_avatar(
    conn: &ClientWrapper,
    group: ConversationId,
    actor: UserId,
    avatar: String,
    now_ms: i64,
) -> OpResult<ConversationRecord> {
    let record = load_conversation(conn, group)
        .await?
        .filter(|r| r.kind == ConversationKind::Group)
        .ok_or(StoreError::NotFound("group"))?;
    settings::check_admin(&record, actor)?;
    let target = avatar_target(&avatar);
    media::set_avatar(conn, AvatarOf::Group(group), actor, target, now_ms).await?;
    Ok(load_conversation(conn, group)
        .await?
        .ok_or(StoreError::NotFound("group"))?)
}

/// Whether an active member of `conversation` turned read receipts off.
pub(super) async fn read_receipts_off(
    conn: &ClientWrapper,
    conversation: ConversationId,
) -> OpResult<bool> {
    Ok(query_opt(
        conn,
        "SELECT 1 FROM members m JOIN users u ON u.id=m.user_id
         WHERE m.conversation_id=$1 AND m.active AND NOT u.read_receipts LIMIT 1",
        &[&conversation.0],
    )
    .await?
    .is_some())
}
