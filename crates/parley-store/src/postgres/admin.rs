//! Server administration in PostgreSQL (protocol §14): the user list,
//! disabling, password resets, erasure and the counts for stats, as in
//! SQLite. The rules (paging, what erasure keeps) are `domain::admin`.

use deadpool_postgres::ClientWrapper;
use parley_proto::api::PresenceVisibility;
use parley_proto::{ConversationId, DeviceId, UserId};

use super::errors::{OpResult, execute, query, query_one, query_opt};
use super::media;
use super::rows::user_from_row;
use super::users::{revoke_all_devices, user_by_id};
use crate::domain::admin::{ERASED_DISPLAY_NAME, UserListPlan, erased_username};
use crate::domain::search::SEARCHED_KINDS_SQL;
use crate::domain::{USER_COLUMNS, to_u64};
use crate::error::StoreError;
use crate::model::{StoreStats, UserRecord};

/// A page of users by id, and whether more follow.
pub(super) async fn list_users(
    conn: &ClientWrapper,
    plan: &UserListPlan,
) -> OpResult<(Vec<UserRecord>, bool)> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id > $1
         AND ($2::TEXT IS NULL OR lower(username) LIKE $2 ESCAPE '\\' OR lower(display_name) LIKE $2 ESCAPE '\\')
         ORDER BY id LIMIT $3"
    );
    let rows = query(conn, &sql, &[&plan.after, &plan.like, &plan.fetch()]).await?;
    let users = rows
        .iter()
        .map(user_from_row)
        .collect::<OpResult<Vec<_>>>()?;
    Ok(plan.finish(users))
}

/// Refuses with `NotFound` when there is no such user or it was erased;
/// locks its row for the rest of the op.
async fn check_live(conn: &ClientWrapper, user: UserId) -> OpResult<()> {
    let row = query_opt(
        conn,
        "SELECT erased_at_ms FROM users WHERE id=$1 FOR NO KEY UPDATE",
        &[&user.0],
    )
    .await?;
    match row.map(|r| r.try_get::<_, Option<i64>>(0)).transpose()? {
        Some(None) => Ok(()),
        _ => Err(StoreError::NotFound("user").into()),
    }
}

/// Disables (revoking every device) or enables `user`.
pub(super) async fn set_disabled(
    conn: &ClientWrapper,
    user: UserId,
    disabled: bool,
    now_ms: i64,
) -> OpResult<(UserRecord, Vec<DeviceId>)> {
    check_live(conn, user).await?;
    let revoked = if disabled {
        execute(
            conn,
            "UPDATE users SET disabled_at_ms=COALESCE(disabled_at_ms, $2) WHERE id=$1",
            &[&user.0, &now_ms],
        )
        .await?;
        revoke_all_devices(conn, user, now_ms).await?
    } else {
        execute(
            conn,
            "UPDATE users SET disabled_at_ms=NULL WHERE id=$1",
            &[&user.0],
        )
        .await?;
        Vec::new()
    };
    let record = user_by_id(conn, user)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    Ok((record, revoked))
}

/// Replaces the password hash and revokes every device.
pub(super) async fn set_password(
    conn: &ClientWrapper,
    user: UserId,
    password_hash: &str,
    now_ms: i64,
) -> OpResult<Vec<DeviceId>> {
    check_live(conn, user).await?;
    execute(
        conn,
        "UPDATE users SET password_hash=$2 WHERE id=$1",
        &[&user.0, &password_hash],
    )
    .await?;
    revoke_all_devices(conn, user, now_ms).await
}

/// Erases the account as `domain::admin` describes; returns the devices
/// revoked now.
pub(super) async fn erase_user(
    conn: &ClientWrapper,
    user: UserId,
    now_ms: i64,
) -> OpResult<Vec<DeviceId>> {
    check_live(conn, user).await?;
    let revoked = revoke_all_devices(conn, user, now_ms).await?;
    execute(
        conn,
        "UPDATE devices SET name='' WHERE user_id=$1",
        &[&user.0],
    )
    .await?;
    execute(
        conn,
        "DELETE FROM blocks WHERE user_id=$1 OR blocked_id=$1",
        &[&user.0],
    )
    .await?;
    execute(
        conn,
        "UPDATE members SET muted_until_ms=0, pinned=FALSE, archived=FALSE WHERE user_id=$1",
        &[&user.0],
    )
    .await?;
    // Its messages (text and media) become deleted exactly as a delete
    // event leaves them (postgres::events; the partial search index drops
    // them by itself): media references dropped (media left unreferenced
    // becomes an orphan), text and captions purged; its edits lose their
    // text.
    let with_media = query(
        conn,
        "SELECT conversation_id, seq FROM messages WHERE sender_id=$1 AND media IS NOT NULL",
        &[&user.0],
    )
    .await?;
    for row in with_media {
        let (conversation, seq): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        media::unlink(conn, ConversationId(conversation), to_u64(seq), now_ms).await?;
    }
    execute(
        conn,
        &format!(
            "UPDATE messages SET text=NULL, reply_to_seq=NULL, forwarded=FALSE, edited_at_ms=NULL,
             reactions=NULL, media=NULL, deleted=TRUE WHERE sender_id=$1 AND kind IN ({SEARCHED_KINDS_SQL})"
        ),
        &[&user.0],
    )
    .await?;
    execute(
        conn,
        "UPDATE messages SET text=NULL WHERE sender_id=$1 AND kind='edit'",
        &[&user.0],
    )
    .await?;
    let avatar: Option<String> = query_one(
        conn,
        "SELECT avatar_media_id FROM users WHERE id=$1",
        &[&user.0],
    )
    .await?
    .try_get(0)?;
    media::release_avatar(conn, avatar.as_deref(), now_ms).await?;
    execute(
        conn,
        "UPDATE users SET username=$2, display_name=$3, password_hash='', avatar_media_id=NULL,
         presence_visibility=$4, read_receipts=TRUE, push_previews=FALSE, last_seen_ms=NULL,
         is_admin=FALSE, disabled_at_ms=COALESCE(disabled_at_ms, $5), erased_at_ms=$5 WHERE id=$1",
        &[
            &user.0,
            &erased_username(user),
            &ERASED_DISPLAY_NAME,
            &PresenceVisibility::Nobody.as_str(),
            &now_ms,
        ],
    )
    .await?;
    Ok(revoked)
}

/// The counts of `GET /v1/admin/stats`.
pub(super) async fn stats(conn: &ClientWrapper) -> OpResult<StoreStats> {
    let row = query_one(
        conn,
        "SELECT (SELECT COUNT(*) FROM users WHERE erased_at_ms IS NULL),
                (SELECT COUNT(*) FROM users WHERE erased_at_ms IS NULL AND disabled_at_ms IS NOT NULL),
                (SELECT COUNT(*) FROM devices WHERE revoked_at_ms IS NULL),
                (SELECT COUNT(*) FROM conversations),
                (SELECT COUNT(*) FROM messages WHERE kind='text')",
        &[],
    )
    .await?;
    Ok(StoreStats {
        users: to_u64(row.try_get(0)?),
        disabled_users: to_u64(row.try_get(1)?),
        devices: to_u64(row.try_get(2)?),
        conversations: to_u64(row.try_get(3)?),
        messages: to_u64(row.try_get(4)?),
    })
}
