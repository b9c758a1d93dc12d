//! Users and their devices, in PostgreSQL. Presence and last-seen writes are
//! deferred to the end of the batch (see [`apply_user_updates`]) so that
//! user rows are locked in the global order.

use deadpool_postgres::ClientWrapper;
use parley_proto::{DeviceId, UserId};
use tokio_postgres::types::ToSql;

use super::batch::UserUpdate;
use super::errors::{OpResult, execute, query, query_one, query_opt};
use super::push;
use super::rows::user_from_row;
use crate::domain::{self, USER_COLUMNS, to_u64};
use crate::error::StoreError;
use crate::model::{DeviceRecord, NewUser, UserRecord};

/// Whether the user exists.
pub(super) async fn user_exists(conn: &ClientWrapper, user: UserId) -> OpResult<bool> {
    Ok(
        query_opt(conn, "SELECT 1 FROM users WHERE id=$1", &[&user.0])
            .await?
            .is_some(),
    )
}

/// Refuses unless every user exists (one round trip for the whole list).
pub(super) async fn check_users_exist(conn: &ClientWrapper, users: &[UserId]) -> OpResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    let found = query_one(
        conn,
        "SELECT COUNT(*) FROM users WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    let found: i64 = found.try_get(0)?;
    if to_u64(found) != users.len() as u64 {
        return Err(StoreError::NotFound("user").into());
    }
    Ok(())
}

async fn load_user(
    conn: &ClientWrapper,
    sql: &str,
    key: &(dyn ToSql + Sync),
) -> OpResult<Option<UserRecord>> {
    query_opt(conn, sql, &[key])
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

pub(super) async fn user_by_id(conn: &ClientWrapper, id: UserId) -> OpResult<Option<UserRecord>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id=$1");
    load_user(conn, &sql, &id.0).await
}

pub(super) async fn user_by_username(
    conn: &ClientWrapper,
    username: &str,
) -> OpResult<Option<UserRecord>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username=$1");
    load_user(conn, &sql, &username).await
}

pub(super) async fn create_user(conn: &ClientWrapper, new: &NewUser) -> OpResult<UserRecord> {
    let taken = query_opt(
        conn,
        "SELECT 1 FROM users WHERE username=$1",
        &[&new.username],
    )
    .await?
    .is_some();
    if taken {
        return Err(StoreError::Conflict("username is taken").into());
    }
    let row = query_one(
        conn,
        "INSERT INTO users(username, display_name, password_hash, created_at_ms, is_admin)
         VALUES($1, $2, $3, $4, $5) RETURNING id",
        &[
            &new.username,
            &new.display_name,
            &new.password_hash,
            &new.now_ms,
            &new.is_admin,
        ],
    )
    .await?;
    Ok(domain::created_user(UserId(row.try_get(0)?), new.clone()))
}

/// Applies the batch's deferred user-row writes (their rows are locked).
pub(super) async fn apply_user_updates(
    conn: &ClientWrapper,
    updates: Vec<UserUpdate>,
) -> OpResult<()> {
    for update in updates {
        match update {
            UserUpdate::LastSeen(user, at_ms) => {
                execute(
                    conn,
                    "UPDATE users SET last_seen_ms = GREATEST(COALESCE(last_seen_ms, 0), $2::BIGINT) WHERE id=$1",
                    &[&user.0, &at_ms],
                )
                .await?;
            }
            UserUpdate::Presence(user, visibility) => {
                execute(
                    conn,
                    "UPDATE users SET presence_visibility=$2 WHERE id=$1",
                    &[&user.0, &visibility.as_str()],
                )
                .await?;
            }
        }
    }
    Ok(())
}

pub(super) async fn create_device(
    conn: &ClientWrapper,
    user: UserId,
    name: &str,
    now: i64,
) -> OpResult<DeviceRecord> {
    let disabled = query_opt(
        conn,
        "SELECT disabled_at_ms FROM users WHERE id=$1",
        &[&user.0],
    )
    .await?
    .map(|r| r.try_get::<_, Option<i64>>(0))
    .transpose()?;
    domain::admin::check_may_log_in(disabled)?;
    let row = query_one(
        conn,
        "INSERT INTO devices(user_id, name, created_at_ms) VALUES($1, $2, $3) RETURNING id",
        &[&user.0, &name, &now],
    )
    .await?;
    Ok(DeviceRecord {
        id: DeviceId(row.try_get(0)?),
        user_id: user,
        name: name.to_owned(),
        created_at_ms: now,
    })
}

pub(super) async fn devices(conn: &ClientWrapper, user: UserId) -> OpResult<Vec<DeviceRecord>> {
    let rows = query(
        conn,
        "SELECT id, name, created_at_ms FROM devices WHERE user_id=$1 AND revoked_at_ms IS NULL ORDER BY id",
        &[&user.0],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeviceRecord {
                id: DeviceId(r.try_get(0)?),
                user_id: user,
                name: r.try_get(1)?,
                created_at_ms: r.try_get(2)?,
            })
        })
        .collect()
}

pub(super) async fn revoke_device(
    conn: &ClientWrapper,
    user: UserId,
    device: DeviceId,
    now: i64,
) -> OpResult<()> {
    let owner: Option<i64> = query_opt(
        conn,
        "SELECT user_id FROM devices WHERE id=$1",
        &[&device.0],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?;
    if owner != Some(user.0) {
        return Err(StoreError::NotFound("device").into());
    }
    execute(
        conn,
        "UPDATE devices SET revoked_at_ms=COALESCE(revoked_at_ms, $2) WHERE id=$1",
        &[&device.0, &now],
    )
    .await?;
    push::delete_target(conn, device).await
}

pub(super) async fn revoked_devices(conn: &ClientWrapper) -> OpResult<Vec<DeviceId>> {
    let rows = query(
        conn,
        "SELECT id FROM devices WHERE revoked_at_ms IS NOT NULL",
        &[],
    )
    .await?;
    rows.iter().map(|r| Ok(DeviceId(r.try_get(0)?))).collect()
}

/// Revokes every device of `user` that is not yet revoked; returns them.
pub(super) async fn revoke_all_devices(
    conn: &ClientWrapper,
    user: UserId,
    now: i64,
) -> OpResult<Vec<DeviceId>> {
    let rows = query(
        conn,
        "UPDATE devices SET revoked_at_ms=$2 WHERE user_id=$1 AND revoked_at_ms IS NULL RETURNING id",
        &[&user.0, &now],
    )
    .await?;
    let ids = rows
        .iter()
        .map(|r| Ok(DeviceId(r.try_get(0)?)))
        .collect::<OpResult<Vec<_>>>()?;
    for &device in &ids {
        push::delete_target(conn, device).await?;
    }
    Ok(ids)
}
