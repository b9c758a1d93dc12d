//! Push notifications in SQLite (protocol §12): server secrets, one
//! registration and at most one pending push per device. The rules are
//! `domain::push`; writes run on the writer thread, reads on the pool.

use parley_proto::{ConversationId, DeviceId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::domain::push::{self as rules, target_from_row, target_row};
use crate::error::{StoreError, StoreResult};
use crate::model::{NewPendingPush, PendingPush, PushCandidate, PushTarget};

pub(super) fn server_secret(
    conn: &Connection,
    name: &str,
    candidate: &[u8],
    now_ms: i64,
) -> StoreResult<Vec<u8>> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO server_secrets(name, value, created_at_ms) VALUES(?1, ?2, ?3)",
    )?
    .execute(params![name, candidate, now_ms])?;
    Ok(conn
        .prepare_cached("SELECT value FROM server_secrets WHERE name=?1")?
        .query_row([name], |r| r.get(0))?)
}

pub(super) fn set_target(
    conn: &Connection,
    user: UserId,
    device: DeviceId,
    target: &PushTarget,
    now_ms: i64,
) -> StoreResult<()> {
    let live: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM devices WHERE id=?1 AND user_id=?2 AND revoked_at_ms IS NULL",
        )?
        .query_row(params![device.0, user.0], |r| r.get(0))
        .optional()?;
    if live.is_none() {
        return Err(StoreError::NotFound("device"));
    }
    let row = target_row(target);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO push_registrations(device_id, user_id, kind, address, p256dh, auth, topic, sandbox, created_at_ms)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        device.0,
        user.0,
        row.kind,
        row.address,
        row.p256dh,
        row.auth,
        row.topic,
        row.sandbox,
        now_ms
    ])?;
    Ok(())
}

/// Removes the device's registration and pending push (also on revocation).
/// Drops `device`'s registration and pending push: the one place of the
/// rule that a revoked (or gone) device is woken no more (§12).
pub(super) fn delete_target(conn: &Connection, device: DeviceId) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM push_registrations WHERE device_id=?1")?
        .execute([device.0])?;
    conn.prepare_cached("DELETE FROM push_pending WHERE device_id=?1")?
        .execute([device.0])?;
    Ok(())
}

pub(super) fn target(conn: &Connection, device: DeviceId) -> StoreResult<Option<PushTarget>> {
    let row = conn
        .prepare_cached(
            "SELECT kind, address, p256dh, auth, topic, sandbox FROM push_registrations WHERE device_id=?1",
        )?
        .query_row([device.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    row.map(|(kind, address, p256dh, auth, topic, sandbox)| {
        target_from_row(&kind, address, p256dh, auth, topic, sandbox)
    })
    .transpose()
}

pub(super) fn users(conn: &Connection) -> StoreResult<Vec<UserId>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT user_id FROM push_registrations ORDER BY user_id")?;
    let ids = stmt
        .query_map([], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

pub(super) fn candidates(
    conn: &Connection,
    conversation: ConversationId,
    sender: UserId,
    users: &[UserId],
    now_ms: i64,
) -> StoreResult<Vec<PushCandidate>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.device_id, u.push_previews, m.muted_until_ms,
                EXISTS(SELECT 1 FROM blocks b WHERE b.user_id=r.user_id AND b.blocked_id=?2),
                c.kind='direct'
         FROM push_registrations r
         JOIN users u ON u.id=r.user_id
         JOIN conversations c ON c.id=?1
         JOIN members m ON m.conversation_id=?1 AND m.user_id=r.user_id AND m.active=1
         WHERE r.user_id=?3",
    )?;
    let mut out = Vec::new();
    for &user in users {
        let rows = stmt.query_map(params![conversation.0, sender.0, user.0], |r| {
            Ok((
                DeviceId(r.get(0)?),
                r.get::<_, bool>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?;
        for row in rows {
            let (device_id, previews, muted_until_ms, blocks_sender, direct) = row?;
            if rules::wakes(muted_until_ms, blocks_sender, now_ms) {
                out.push(PushCandidate {
                    device_id,
                    user_id: user,
                    previews,
                    direct,
                });
            }
        }
    }
    Ok(out)
}

pub(super) fn queue(conn: &Connection, pushes: &[NewPendingPush]) -> StoreResult<()> {
    // Only for a device that still has a registration (the SELECT's WHERE
    // also keeps SQLite from reading ON CONFLICT as a join constraint).
    let mut stmt = conn.prepare_cached(
        "INSERT INTO push_pending(device_id, user_id, conversation_id, unread, urgent,
                                  preview_sender, preview_text, due_at_ms, created_at_ms)
         SELECT ?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8 FROM push_registrations WHERE device_id=?1
         ON CONFLICT(device_id) DO UPDATE SET
             conversation_id=excluded.conversation_id,
             unread=unread + 1,
             urgent=MAX(urgent, excluded.urgent),
             preview_sender=excluded.preview_sender,
             preview_text=excluded.preview_text,
             due_at_ms=CASE WHEN attempts > 0 THEN due_at_ms ELSE MIN(due_at_ms, excluded.due_at_ms) END,
             generation=generation + 1",
    )?;
    for push in pushes {
        let (sender, text) = match &push.preview {
            Some((sender, text)) => (Some(sender.0), Some(text.as_str())),
            None => (None, None),
        };
        stmt.execute(params![
            push.device_id.0,
            push.user_id.0,
            push.conversation_id.0,
            push.urgent,
            sender,
            text,
            push.due_at_ms,
            push.now_ms
        ])?;
    }
    Ok(())
}

fn pending_from_row(r: &Row<'_>) -> rusqlite::Result<(PendingRow, Option<String>)> {
    Ok((
        PendingRow {
            device_id: DeviceId(r.get(0)?),
            user_id: UserId(r.get(1)?),
            conversation_id: ConversationId(r.get(2)?),
            unread: r.get(3)?,
            urgent: r.get(4)?,
            preview_sender: r.get(5)?,
            created_at_ms: r.get(7)?,
            attempts: r.get(8)?,
            generation: r.get(9)?,
        },
        r.get(6)?,
    ))
}

/// A pending row before its registration is read.
struct PendingRow {
    device_id: DeviceId,
    user_id: UserId,
    conversation_id: ConversationId,
    unread: i64,
    urgent: bool,
    preview_sender: Option<i64>,
    created_at_ms: i64,
    attempts: u32,
    generation: i64,
}

pub(super) fn claim(
    conn: &Connection,
    now_ms: i64,
    lease_until_ms: i64,
    limit: usize,
) -> StoreResult<Vec<PendingPush>> {
    let claimed = conn
        .prepare_cached(
            "UPDATE push_pending SET due_at_ms=?2
             WHERE device_id IN (SELECT device_id FROM push_pending WHERE due_at_ms<=?1 ORDER BY due_at_ms LIMIT ?3)
             RETURNING device_id, user_id, conversation_id, unread, urgent, preview_sender, preview_text,
                       created_at_ms, attempts, generation",
        )?
        .query_map(params![now_ms, lease_until_ms, limit as i64], pending_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(claimed.len());
    for (row, text) in claimed {
        let Some(target) = target(conn, row.device_id)? else {
            // Registrations are removed with their pending push; this is
            // only a guard.
            delete_target(conn, row.device_id)?;
            continue;
        };
        out.push(PendingPush {
            device_id: row.device_id,
            user_id: row.user_id,
            conversation_id: row.conversation_id,
            unread: row.unread.max(1) as u64,
            urgent: row.urgent,
            preview: row.preview_sender.zip(text).map(|(s, t)| (UserId(s), t)),
            created_at_ms: row.created_at_ms,
            attempts: row.attempts,
            generation: row.generation,
            target,
        });
    }
    Ok(out)
}

pub(super) fn finish(
    conn: &Connection,
    device: DeviceId,
    generation: i64,
    sent_unread: u64,
) -> StoreResult<()> {
    let deleted = conn
        .prepare_cached("DELETE FROM push_pending WHERE device_id=?1 AND generation=?2")?
        .execute(params![device.0, generation])?;
    if deleted == 0 {
        let unread: Option<i64> = conn
            .prepare_cached("SELECT unread FROM push_pending WHERE device_id=?1")?
            .query_row([device.0], |r| r.get(0))
            .optional()?;
        if let Some(unread) = unread {
            conn.prepare_cached(
                "UPDATE push_pending SET unread=?2, attempts=0 WHERE device_id=?1",
            )?
            .execute(params![
                device.0,
                rules::unread_after_send(unread, sent_unread)
            ])?;
        }
    }
    Ok(())
}

pub(super) fn retry(conn: &Connection, device: DeviceId, due_at_ms: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE push_pending SET due_at_ms=?2, attempts=attempts + 1 WHERE device_id=?1",
    )?
    .execute(params![device.0, due_at_ms])?;
    Ok(())
}

pub(super) fn next_due(conn: &Connection) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MIN(due_at_ms) FROM push_pending")?
        .query_row([], |r| r.get(0))?)
}
