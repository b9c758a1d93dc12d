//! Push notifications in PostgreSQL (protocol §12): server secrets, one
//! registration and at most one pending push per device, claimed with
//! `FOR UPDATE SKIP LOCKED` so several processes share the work. The rules
//! are `domain::push`. Each function is one statement or a short sequence
//! on a pool connection (autocommit), like the settings writes.

use deadpool_postgres::ClientWrapper;
use parley_proto::{ConversationId, DeviceId, UserId};

use super::errors::{OpResult, execute, query, query_one, query_opt};
use crate::domain::push::{self as rules, target_from_row, target_row};
use crate::error::StoreError;
use crate::model::{NewPendingPush, PendingPush, PushCandidate, PushTarget};

pub(super) async fn server_secret(
    conn: &ClientWrapper,
    name: &str,
    candidate: &[u8],
    now_ms: i64,
) -> OpResult<Vec<u8>> {
    execute(
        conn,
        "INSERT INTO server_secrets(name, value, created_at_ms) VALUES($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&name, &candidate, &now_ms],
    )
    .await?;
    let row = query_one(
        conn,
        "SELECT value FROM server_secrets WHERE name=$1",
        &[&name],
    )
    .await?;
    Ok(row.try_get(0)?)
}

pub(super) async fn set_target(
    conn: &ClientWrapper,
    user: UserId,
    device: DeviceId,
    target: &PushTarget,
    now_ms: i64,
) -> OpResult<()> {
    let row = target_row(target);
    // One statement: the device must be the user's and not revoked.
    let written = execute(
        conn,
        "INSERT INTO push_registrations(device_id, user_id, kind, address, p256dh, auth, topic, sandbox, created_at_ms)
         SELECT id, user_id, $3, $4, $5, $6, $7, $8, $9 FROM devices
         WHERE id=$1 AND user_id=$2 AND revoked_at_ms IS NULL
         ON CONFLICT(device_id) DO UPDATE SET kind=excluded.kind, address=excluded.address,
             p256dh=excluded.p256dh, auth=excluded.auth, topic=excluded.topic,
             sandbox=excluded.sandbox, created_at_ms=excluded.created_at_ms",
        &[
            &device.0,
            &user.0,
            &row.kind,
            &row.address,
            &row.p256dh,
            &row.auth,
            &row.topic,
            &row.sandbox,
            &now_ms,
        ],
    )
    .await?;
    if written == 0 {
        return Err(StoreError::NotFound("device").into());
    }
    Ok(())
}

/// Removes the device's registration and pending push (also on revocation).
/// Drops `device`'s registration and pending push: the one place of the
/// rule that a revoked (or gone) device is woken no more (§12).
pub(super) async fn delete_target(conn: &ClientWrapper, device: DeviceId) -> OpResult<()> {
    execute(
        conn,
        "DELETE FROM push_registrations WHERE device_id=$1",
        &[&device.0],
    )
    .await?;
    execute(
        conn,
        "DELETE FROM push_pending WHERE device_id=$1",
        &[&device.0],
    )
    .await?;
    Ok(())
}

pub(super) async fn target(conn: &ClientWrapper, device: DeviceId) -> OpResult<Option<PushTarget>> {
    let row = query_opt(
        conn,
        "SELECT kind, address, p256dh, auth, topic, sandbox FROM push_registrations WHERE device_id=$1",
        &[&device.0],
    )
    .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(target_from_row(
            r.try_get::<_, &str>(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
        )?)),
    }
}

pub(super) async fn users(conn: &ClientWrapper) -> OpResult<Vec<UserId>> {
    let rows = query(
        conn,
        "SELECT DISTINCT user_id FROM push_registrations ORDER BY user_id",
        &[],
    )
    .await?;
    rows.iter().map(|r| Ok(UserId(r.try_get(0)?))).collect()
}

pub(super) async fn candidates(
    conn: &ClientWrapper,
    conversation: ConversationId,
    sender: UserId,
    users: &[UserId],
    now_ms: i64,
) -> OpResult<Vec<PushCandidate>> {
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    let rows = query(
        conn,
        "SELECT r.device_id, r.user_id, u.push_previews, m.muted_until_ms,
                EXISTS(SELECT 1 FROM blocks b WHERE b.user_id=r.user_id AND b.blocked_id=$2),
                c.kind='direct'
         FROM push_registrations r
         JOIN users u ON u.id=r.user_id
         JOIN conversations c ON c.id=$1
         JOIN members m ON m.conversation_id=$1 AND m.user_id=r.user_id AND m.active
         WHERE r.user_id = ANY($3)",
        &[&conversation.0, &sender.0, &ids],
    )
    .await?;
    let mut out = Vec::new();
    for r in rows {
        if rules::wakes(r.try_get(3)?, r.try_get(4)?, now_ms) {
            out.push(PushCandidate {
                device_id: DeviceId(r.try_get(0)?),
                user_id: UserId(r.try_get(1)?),
                previews: r.try_get(2)?,
                direct: r.try_get(5)?,
            });
        }
    }
    Ok(out)
}

pub(super) async fn queue(conn: &ClientWrapper, pushes: &[NewPendingPush]) -> OpResult<()> {
    for push in pushes {
        let (sender, text) = match &push.preview {
            Some((sender, text)) => (Some(sender.0), Some(text.as_str())),
            None => (None, None),
        };
        execute(
            conn,
            "INSERT INTO push_pending(device_id, user_id, conversation_id, unread, urgent,
                                      preview_sender, preview_text, due_at_ms, created_at_ms)
             SELECT $1, $2, $3, 1, $4, $5, $6, $7, $8 FROM push_registrations WHERE device_id=$1
             ON CONFLICT(device_id) DO UPDATE SET
                 conversation_id=excluded.conversation_id,
                 unread=push_pending.unread + 1,
                 urgent=push_pending.urgent OR excluded.urgent,
                 preview_sender=excluded.preview_sender,
                 preview_text=excluded.preview_text,
                 due_at_ms=CASE WHEN push_pending.attempts > 0 THEN push_pending.due_at_ms
                                ELSE LEAST(push_pending.due_at_ms, excluded.due_at_ms) END,
                 generation=push_pending.generation + 1",
            &[
                &push.device_id.0,
                &push.user_id.0,
                &push.conversation_id.0,
                &push.urgent,
                &sender,
                &text,
                &push.due_at_ms,
                &push.now_ms,
            ],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn claim(
    conn: &ClientWrapper,
    now_ms: i64,
    lease_until_ms: i64,
    limit: usize,
) -> OpResult<Vec<PendingPush>> {
    let rows = query(
        conn,
        "UPDATE push_pending p SET due_at_ms=$2
         FROM push_registrations r
         WHERE r.device_id=p.device_id AND p.device_id IN (
             SELECT device_id FROM push_pending WHERE due_at_ms<=$1
             ORDER BY due_at_ms LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING p.device_id, p.user_id, p.conversation_id, p.unread, p.urgent, p.preview_sender,
                   p.preview_text, p.created_at_ms, p.attempts, p.generation,
                   r.kind, r.address, r.p256dh, r.auth, r.topic, r.sandbox",
        &[&now_ms, &lease_until_ms, &(limit as i64)],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let sender: Option<i64> = r.try_get(5)?;
        let text: Option<String> = r.try_get(6)?;
        let attempts: i32 = r.try_get(8)?;
        let unread: i64 = r.try_get(3)?;
        out.push(PendingPush {
            device_id: DeviceId(r.try_get(0)?),
            user_id: UserId(r.try_get(1)?),
            conversation_id: ConversationId(r.try_get(2)?),
            unread: unread.max(1) as u64,
            urgent: r.try_get(4)?,
            preview: sender.zip(text).map(|(s, t)| (UserId(s), t)),
            created_at_ms: r.try_get(7)?,
            attempts: attempts.max(0) as u32,
            generation: r.try_get(9)?,
            target: target_from_row(
                r.try_get::<_, &str>(10)?,
                r.try_get(11)?,
                r.try_get(12)?,
                r.try_get(13)?,
                r.try_get(14)?,
                r.try_get(15)?,
            )?,
        });
    }
    Ok(out)
}

pub(super) async fn finish(
    conn: &ClientWrapper,
    device: DeviceId,
    generation: i64,
    sent_unread: u64,
) -> OpResult<()> {
    let deleted = execute(
        conn,
        "DELETE FROM push_pending WHERE device_id=$1 AND generation=$2",
        &[&device.0, &generation],
    )
    .await?;
    if deleted == 0 {
        let row = query_opt(
            conn,
            "SELECT unread FROM push_pending WHERE device_id=$1",
            &[&device.0],
        )
        .await?;
        if let Some(row) = row {
            let left = rules::unread_after_send(row.try_get(0)?, sent_unread);
            execute(
                conn,
                "UPDATE push_pending SET unread=$2, attempts=0 WHERE device_id=$1",
                &[&device.0, &left],
            )
            .await?;
        }
    }
    Ok(())
}

pub(super) async fn retry(conn: &ClientWrapper, device: DeviceId, due_at_ms: i64) -> OpResult<()> {
    execute(
        conn,
        "UPDATE push_pending SET due_at_ms=$2, attempts=attempts + 1 WHERE device_id=$1",
        &[&device.0, &due_at_ms],
    )
    .await?;
    Ok(())
}

pub(super) async fn next_due(conn: &ClientWrapper) -> OpResult<Option<i64>> {
    let row = query_one(conn, "SELECT MIN(due_at_ms) FROM push_pending", &[]).await?;
    Ok(row.try_get(0)?)
}
