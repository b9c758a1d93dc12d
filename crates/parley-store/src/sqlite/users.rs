//! Users and their devices, in SQLite.

use parley_proto::api::PresenceVisibility;
use parley_proto::{DeviceId, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use super::push;
use super::rows::user_from_row;
use crate::domain::{self, USER_COLUMNS};
use crate::error::{StoreError, StoreResult};
use crate::model::{DeviceRecord, NewUser, UserRecord};

/// Whether the user exists.
pub(super) fn user_exists(conn: &Connection, user: UserId) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM users WHERE id=?1")?
        .query_row([user.0], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Refuses unless every user exists.
pub(super) fn check_users_exist(conn: &Connection, users: &[UserId]) -> StoreResult<()> {
    for &user in users {
        if !user_exists(conn, user)? {
            return Err(StoreError::NotFound("user"));
        }
    }
    Ok(())
}

pub(super) fn create_user(conn: &Connection, new: NewUser) -> StoreResult<UserRecord> {
    let taken = conn
        .prepare_cached("SELECT 1 FROM users WHERE username=?1")?
        .query_row([&new.username], |_| Ok(()))
        .optional()?
        .is_some();
    if taken {
        return Err(StoreError::Conflict("username is taken"));
    }
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO users(username, display_name, password_hash, created_at_ms, is_admin)
             VALUES(?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(
            params![
                new.username,
                new.display_name,
                new.password_hash,
                new.now_ms,
                new.is_admin
            ],
            |r| r.get(0),
        )?;
    Ok(domain::created_user(UserId(id), new))
}

pub(super) fn user_by_id(conn: &Connection, id: UserId) -> StoreResult<Option<UserRecord>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id=?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.0], user_from_row)
        .optional()?)
}

pub(super) fn user_by_username(
    conn: &Connection,
    username: &str,
) -> StoreResult<Option<UserRecord>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username=?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([username], user_from_row)
        .optional()?)
}

pub(super) fn set_presence_visibility(
    conn: &Connection,
    user: UserId,
    visibility: PresenceVisibility,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE users SET presence_visibility=?2 WHERE id=?1")?
        .execute(params![user.0, visibility.as_str()])?;
    Ok(())
}

pub(super) fn set_last_seen(conn: &Connection, user: UserId, at_ms: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE users SET last_seen_ms=MAX(COALESCE(last_seen_ms, 0), ?2) WHERE id=?1",
    )?
    .execute(params![user.0, at_ms])?;
    Ok(())
}

pub(super) fn create_device(
    conn: &Connection,
    user: UserId,
    name: String,
    now_ms: i64,
) -> StoreResult<DeviceRecord> {
    let disabled: Option<Option<i64>> = conn
        .prepare_cached("SELECT disabled_at_ms FROM users WHERE id=?1")?
        .query_row([user.0], |r| r.get(0))
        .optional()?;
    domain::admin::check_may_log_in(disabled)?;
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO devices(user_id, name, created_at_ms) VALUES(?1, ?2, ?3) RETURNING id",
        )?
        .query_row(params![user.0, name, now_ms], |r| r.get(0))?;
    Ok(DeviceRecord {
        id: DeviceId(id),
        user_id: user,
        name,
        created_at_ms: now_ms,
    })
}

pub(super) fn devices(conn: &Connection, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, created_at_ms FROM devices WHERE user_id=?1 AND revoked_at_ms IS NULL ORDER BY id",
    )?;
    let devices = stmt
        .query_map([user.0], |r| {
            Ok(DeviceRecord {
                id: DeviceId(r.get(0)?),
                user_id: user,
                name: r.get(1)?,
                created_at_ms: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(devices)
}

pub(super) fn revoke_device(
    conn: &Connection,
    user: UserId,
    device: DeviceId,
    now_ms: i64,
) -> StoreResult<()> {
    let owner: Option<i64> = conn
        .prepare_cached("SELECT user_id FROM devices WHERE id=?1")?
        .query_row([device.0], |r| r.get(0))
        .optional()?;
    if owner != Some(user.0) {
        return Err(StoreError::NotFound("device"));
    }
    conn.prepare_cached(
        "UPDATE devices SET revoked_at_ms=COALESCE(revoked_at_ms, ?2) WHERE id=?1",
    )?
    .execute(params![device.0, now_ms])?;
    push::delete_target(conn, device)
}

pub(super) fn revoked_devices(conn: &Connection) -> StoreResult<Vec<DeviceId>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM devices WHERE revoked_at_ms IS NOT NULL")?;
    let ids = stmt
        .query_map([], |r| Ok(DeviceId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Revokes every device of `user` that is not yet revoked; returns them.
pub(super) fn revoke_all_devices(
    conn: &Connection,
    user: UserId,
    now_ms: i64,
) -> StoreResult<Vec<DeviceId>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE devices SET revoked_at_ms=?2 WHERE user_id=?1 AND revoked_at_ms IS NULL RETURNING id",
    )?;
    let ids = stmt
        .query_map(params![user.0, now_ms], |r| Ok(DeviceId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for &device in &ids {
        push::delete_target(conn, device)?;
    }
    Ok(ids)
}
