//! Media in SQLite (protocol §9): upload slots and the quota, completion,
//! who may read a media item, what a media message references, and the
//! garbage collector's two steps. The rules are `domain::media`'s.

use parley_proto::{ConversationId, MediaId, MediaInfo, UserId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::media::{self as rules, MEDIA_COLUMNS, MediaRow, encode_thumbnails};
use crate::domain::to_i64;
use crate::error::{StoreError, StoreResult};
use crate::model::{MediaRecord, MediaVerified, NewMedia, NewMessage};

fn media_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MediaRecord> {
    Ok(MediaRow {
        id: row.get(0)?,
        owner_id: row.get(1)?,
        state: row.get(2)?,
        content_type: row.get(3)?,
        size: row.get(4)?,
        sha256: row.get(5)?,
        filename: row.get(6)?,
        width: row.get(7)?,
        height: row.get(8)?,
        duration_ms: row.get(9)?,
        thumbnails: row.get(10)?,
        created_at_ms: row.get(11)?,
        expires_at_ms: row.get(12)?,
    }
    .into_record())
}

/// The media row `id`, whatever its state.
pub(super) fn media(conn: &Connection, id: MediaId) -> StoreResult<Option<MediaRecord>> {
    let sql = format!("SELECT {MEDIA_COLUMNS} FROM media WHERE id=?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.0], media_from_row)
        .optional()?)
}

/// Reserves the bytes in the owner's quota and makes the pending row.
pub(super) fn create_media(conn: &Connection, new: NewMedia) -> StoreResult<MediaRecord> {
    let used: i64 = conn
        .prepare_cached("SELECT bytes FROM media_usage WHERE user_id=?1")?
        .query_row([new.owner.0], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    rules::check_quota(crate::domain::to_u64(used), new.size, new.quota_bytes)?;
    let size = to_i64(new.size);
    conn.prepare_cached(
        "INSERT INTO media_usage(user_id, bytes) VALUES(?1, ?2)
         ON CONFLICT(user_id) DO UPDATE SET bytes = bytes + excluded.bytes",
    )?
    .execute(params![new.owner.0, size])?;
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO media(owner_id, state, content_type, size, sha256, filename, created_at_ms, expires_at_ms)
             VALUES(?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(
            params![
                new.owner.0,
                new.content_type,
                size,
                new.sha256,
                new.filename,
                new.now_ms,
                new.expires_at_ms
            ],
            |r| r.get(0),
        )?;
    media(conn, MediaId(id))?.ok_or_else(|| StoreError::Internal("media row vanished".into()))
}

/// Marks a pending media ready (a ready one is answered as it is).
pub(super) fn complete_media(
    conn: &Connection,
    id: MediaId,
    verified: MediaVerified,
) -> StoreResult<MediaRecord> {
    conn.prepare_cached(
        "UPDATE media SET state='ready', content_type=?2, width=?3, height=?4, duration_ms=?5,
                          thumbnails=?6, orphan_since_ms=?7
         WHERE id=?1 AND state='pending'",
    )?
    .execute(params![
        id.0,
        verified.content_type,
        verified.width,
        verified.height,
        verified.duration_ms.map(to_i64),
        encode_thumbnails(&verified.thumbnails),
        verified.now_ms
    ])?;
    match media(conn, id)? {
        Some(record) if record.state == crate::model::MediaState::Ready => Ok(record),
        _ => Err(StoreError::NotFound("media")),
    }
}

/// Marks a pending media rejected: never usable, collected after the
/// grace period from `now_ms`.
pub(super) fn reject_media(conn: &Connection, id: MediaId, now_ms: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE media SET state='rejected', expires_at_ms=?2 WHERE id=?1 AND state='pending'",
    )?
    .execute(params![id.0, now_ms])?;
    Ok(())
}

/// Whether `viewer` may read ready media `id`: its owner; a member whose
/// membership periods include a message referencing it (the history
/// rule); anyone for a user's avatar; a member for a group's avatar.
pub(super) fn media_visible(conn: &Connection, id: MediaId, viewer: UserId) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM media WHERE id=?1 AND state='ready' AND (owner_id=?2
               OR EXISTS(SELECT 1 FROM message_media mm JOIN member_periods p
                           ON p.conversation_id=mm.conversation_id AND p.user_id=?2
                          AND mm.seq >= p.from_seq AND (p.to_seq IS NULL OR mm.seq <= p.to_seq)
                         WHERE mm.media_id=?1)
               OR EXISTS(SELECT 1 FROM users WHERE avatar_media_id=?3)
               OR EXISTS(SELECT 1 FROM conversations c JOIN members m
                           ON m.conversation_id=c.id AND m.user_id=?2 AND m.active
                         WHERE c.avatar_media_id=?3))",
        )?
        .query_row(params![id.0, viewer.0, id.to_string()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Makes media `id` an avatar set by `actor` once `rules::check_avatar`
/// allows it: it is no longer an orphan (the collector also checks every
/// avatar before taking media). Returns the id as the avatar column
/// keeps it.
pub(super) fn adopt_avatar(conn: &Connection, actor: UserId, id: MediaId) -> StoreResult<String> {
    rules::check_avatar(actor, media(conn, id)?.as_ref())?;
    conn.prepare_cached("UPDATE media SET orphan_since_ms=NULL WHERE id=?1")?
        .execute([id.0])?;
    Ok(id.to_string())
}

/// An avatar was replaced or removed: the media it named is an orphan
/// from `now_ms` unless a message references it (then the message's
/// delete makes it one). It may still be another avatar; the collector
/// checks that before taking it.
pub(super) fn release_avatar(conn: &Connection, old: Option<&str>, now_ms: i64) -> StoreResult<()> {
    let Some(id) = old.and_then(|name| name.parse::<MediaId>().ok()) else {
        return Ok(());
    };
    conn.prepare_cached(
        "UPDATE media SET orphan_since_ms=?2 WHERE id=?1 AND state='ready'
         AND NOT EXISTS(SELECT 1 FROM message_media WHERE media_id=?1)",
    )?
    .execute(params![id.0, now_ms])?;
    Ok(())
}

/// Checks what a media message references (before its insert) and
/// returns the media as the message carries it.
pub(super) fn attach(conn: &Connection, new: &NewMessage) -> StoreResult<Vec<MediaInfo>> {
    let mut out = Vec::with_capacity(new.media.len());
    for &id in &new.media {
        let record = media(conn, id)?;
        let sees = match &record {
            Some(r) if r.owner != new.sender_id => media_visible(conn, id, new.sender_id)?,
            _ => false,
        };
        out.push(rules::check_attach(
            new.kind,
            new.sender_id,
            record.as_ref(),
            sees,
        )?);
    }
    Ok(out)
}

/// Records the references of the message at `seq` (after its insert): the
/// media is no longer an orphan.
pub(super) fn link(
    conn: &Connection,
    conversation: ConversationId,
    seq: u64,
    media: &[MediaInfo],
) -> StoreResult<()> {
    for item in media {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO message_media(conversation_id, seq, media_id) VALUES(?1, ?2, ?3)",
        )?
        .execute(params![conversation.0, to_i64(seq), item.media_id.0])?;
        conn.prepare_cached("UPDATE media SET orphan_since_ms=NULL WHERE id=?1")?
            .execute([item.media_id.0])?;
    }
    Ok(())
}

/// Drops the references of a message deleted for everyone; media left
/// with none becomes an orphan now.
pub(super) fn unlink(
    conn: &Connection,
    conversation: ConversationId,
    seq: u64,
    now_ms: i64,
) -> StoreResult<()> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "DELETE FROM message_media WHERE conversation_id=?1 AND seq=?2 RETURNING media_id",
        )?
        .query_map(params![conversation.0, to_i64(seq)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        conn.prepare_cached(
            "UPDATE media SET orphan_since_ms=?2 WHERE id=?1
             AND NOT EXISTS(SELECT 1 FROM message_media WHERE media_id=?1)",
        )?
        .execute(params![id, now_ms])?;
    }
    Ok(())
}

/// The collector's first step: marks up to `limit` collectable media
/// `deleting` (pending or rejected past `expires_at_ms`, and ready media
/// unreferenced since, both before `before_ms`; avatars are references
/// too), then returns up to `limit` media in that state, including ones a
/// crashed run left behind.
pub(super) fn claim_media_garbage(
    conn: &Connection,
    before_ms: i64,
    limit: usize,
) -> StoreResult<Vec<MediaId>> {
    let limit = limit as i64;
    conn.prepare_cached(
        "UPDATE media SET state='deleting' WHERE id IN (
             SELECT id FROM media g WHERE
               (g.state IN ('pending', 'rejected') AND g.expires_at_ms < ?1)
               OR (g.state='ready' AND g.orphan_since_ms IS NOT NULL AND g.orphan_since_ms < ?1
                   AND NOT EXISTS(SELECT 1 FROM message_media WHERE media_id=g.id)
                   AND NOT EXISTS(SELECT 1 FROM users WHERE avatar_media_id='f' || g.id)
                   AND NOT EXISTS(SELECT 1 FROM conversations WHERE avatar_media_id='f' || g.id))
             LIMIT ?2)",
    )?
    .execute(params![before_ms, limit])?;
    let ids = conn
        .prepare_cached("SELECT id FROM media WHERE state='deleting' ORDER BY id LIMIT ?1")?
        .query_map([limit], |r| r.get(0).map(MediaId))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// The collector's last step, after the objects are gone: deletes the
/// claimed rows and gives their bytes back to their owners' quotas.
pub(super) fn forget_media(conn: &Connection, ids: &[MediaId]) -> StoreResult<u64> {
    let mut forgotten = 0;
    for id in ids {
        let gone: Option<(i64, i64)> = conn
            .prepare_cached(
                "DELETE FROM media WHERE id=?1 AND state='deleting' RETURNING owner_id, size",
            )?
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((owner, size)) = gone {
            conn.prepare_cached(
                "UPDATE media_usage SET bytes = MAX(0, bytes - ?2) WHERE user_id=?1",
            )?
            .execute(params![owner, size])?;
            forgotten += 1;
        }
    }
    Ok(forgotten)
}

/// The bytes counted against `user`'s quota.
pub(super) fn media_usage(conn: &Connection, user: UserId) -> StoreResult<u64> {
    let bytes: Option<i64> = conn
        .prepare_cached("SELECT bytes FROM media_usage WHERE user_id=?1")?
        .query_row([user.0], |r| r.get(0))
        .optional()?;
    Ok(crate::domain::to_u64(bytes.unwrap_or(0)))
}
