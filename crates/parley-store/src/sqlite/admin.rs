//! Server administration in SQLite (protocol §14): the user list, disabling,
//! password resets, erasure and the counts for stats. The rules (paging,
//! what erasure keeps) are `domain::admin`.

use parley_proto::api::PresenceVisibility;
use parley_proto::{ConversationId, DeviceId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::media;
use super::rows::user_from_row;
use super::search_index;
use super::users::{revoke_all_devices, user_by_id};
use crate::domain::admin::{ERASED_DISPLAY_NAME, UserListPlan, erased_username};
use crate::domain::search::SEARCHED_KINDS_SQL;
use crate::domain::{USER_COLUMNS, to_u64};
use crate::error::{StoreError, StoreResult};
use crate::model::{StoreStats, UserRecord};

/// A page of users by id, and whether more follow.
pub(super) fn list_users(
    conn: &Connection,
    plan: &UserListPlan,
) -> StoreResult<(Vec<UserRecord>, bool)> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id > ?1
         AND (?2 IS NULL OR lower(username) LIKE ?2 ESCAPE '\\' OR lower(display_name) LIKE ?2 ESCAPE '\\')
         ORDER BY id LIMIT ?3"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![plan.after, plan.like, plan.fetch()], user_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(plan.finish(rows))
}

/// Refuses with `NotFound` when there is no such user or it was erased (an
/// erased account is gone for administration too).
fn check_live(conn: &Connection, user: UserId) -> StoreResult<()> {
    let erased: Option<Option<i64>> = conn
        .prepare_cached("SELECT erased_at_ms FROM users WHERE id=?1")?
        .query_row([user.0], |r| r.get(0))
        .optional()?;
    match erased {
        Some(None) => Ok(()),
        _ => Err(StoreError::NotFound("user")),
    }
}

/// Disables (revoking every device) or enables `user`.
pub(super) fn set_disabled(
    conn: &Connection,
    user: UserId,
    disabled: bool,
    now_ms: i64,
) -> StoreResult<(UserRecord, Vec<DeviceId>)> {
    check_live(conn, user)?;
    let revoked = if disabled {
        conn.prepare_cached(
            "UPDATE users SET disabled_at_ms=COALESCE(disabled_at_ms, ?2) WHERE id=?1",
        )?
        .execute(params![user.0, now_ms])?;
        revoke_all_devices(conn, user, now_ms)?
    } else {
        conn.prepare_cached("UPDATE users SET disabled_at_ms=NULL WHERE id=?1")?
            .execute([user.0])?;
        Vec::new()
    };
    let record = user_by_id(conn, user)?.ok_or(StoreError::NotFound("user"))?;
    Ok((record, revoked))
}

/// Replaces the password hash and revokes every device.
pub(super) fn set_password(
    conn: &Connection,
    user: UserId,
    password_hash: &str,
    now_ms: i64,
) -> StoreResult<Vec<DeviceId>> {
    check_live(conn, user)?;
    conn.prepare_cached("UPDATE users SET password_hash=?2 WHERE id=?1")?
        .execute(params![user.0, password_hash])?;
    revoke_all_devices(conn, user, now_ms)
}

/// Erases the account as `domain::admin` describes; returns the devices
/// revoked now.
pub(super) fn erase_user(
    conn: &Connection,
    user: UserId,
    now_ms: i64,
) -> StoreResult<Vec<DeviceId>> {
    check_live(conn, user)?;
    let revoked = revoke_all_devices(conn, user, now_ms)?;
    conn.prepare_cached("UPDATE devices SET name='' WHERE user_id=?1")?
        .execute([user.0])?;
    conn.prepare_cached("DELETE FROM blocks WHERE user_id=?1 OR blocked_id=?1")?
        .execute([user.0])?;
    conn.prepare_cached(
        "UPDATE members SET muted_until_ms=0, pinned=0, archived=0 WHERE user_id=?1",
    )?
    .execute([user.0])?;
    // Its messages (text and media) become deleted exactly as a delete
    // event leaves them (sqlite::events): search entries and media
    // references dropped (media left unreferenced becomes an orphan), text
    // and captions purged; its edits lose their text.
    search_index::sender_changed(conn, user.0)?;
    let with_media: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT conversation_id, seq FROM messages WHERE sender_id=?1 AND media IS NOT NULL",
        )?
        .query_map([user.0], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (conversation, seq) in with_media {
        media::unlink(conn, ConversationId(conversation), to_u64(seq), now_ms)?;
    }
    conn.prepare_cached(&format!(
        "UPDATE messages SET text=NULL, reply_to_seq=NULL, forwarded=0, edited_at_ms=NULL,
         reactions=NULL, media=NULL, deleted=1 WHERE sender_id=?1 AND kind IN ({SEARCHED_KINDS_SQL})"
    ))?
    .execute([user.0])?;
    conn.prepare_cached("UPDATE messages SET text=NULL WHERE sender_id=?1 AND kind='edit'")?
        .execute([user.0])?;
    let avatar: Option<String> = conn
        .prepare_cached("SELECT avatar_media_id FROM users WHERE id=?1")?
        .query_row([user.0], |r| r.get(0))?;
    media::release_avatar(conn, avatar.as_deref(), now_ms)?;
    conn.prepare_cached(
        "UPDATE users SET username=?2, display_name=?3, password_hash='', avatar_media_id=NULL,
         presence_visibility=?4, read_receipts=1, push_previews=0, last_seen_ms=NULL, is_admin=0,
         disabled_at_ms=COALESCE(disabled_at_ms, ?5), erased_at_ms=?5 WHERE id=?1",
    )?
    .execute(params![
        user.0,
        erased_username(user),
        ERASED_DISPLAY_NAME,
        PresenceVisibility::Nobody.as_str(),
        now_ms
    ])?;
    Ok(revoked)
}

/// The counts of `GET /v1/admin/stats`.
pub(super) fn stats(conn: &Connection) -> StoreResult<StoreStats> {
    Ok(conn.prepare_cached(
        "SELECT (SELECT COUNT(*) FROM users WHERE erased_at_ms IS NULL),
                (SELECT COUNT(*) FROM users WHERE erased_at_ms IS NULL AND disabled_at_ms IS NOT NULL),
                (SELECT COUNT(*) FROM devices WHERE revoked_at_ms IS NULL),
                (SELECT COUNT(*) FROM conversations),
                (SELECT COUNT(*) FROM messages WHERE kind='text')",
    )?
    .query_row([], |r| {
        Ok(StoreStats {
            users: to_u64(r.get(0)?),
            disabled_users: to_u64(r.get(1)?),
            devices: to_u64(r.get(2)?),
            conversations: to_u64(r.get(3)?),
            messages: to_u64(r.get(4)?),
        })
    })?)
}
