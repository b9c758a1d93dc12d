//! Media in PostgreSQL (protocol §9), as in SQLite: upload slots and the
//! quota, completion, who may read a media item, what a media message
//! references, and the garbage collector's two steps. Each call outside an
//! append is one statement, so it is atomic without the writer; the
//! quota is kept by a guarded upsert of the owner's `media_usage` row.

use deadpool_postgres::ClientWrapper;
use parley_proto::{ConversationId, MediaId, MediaInfo, UserId};
use tokio_postgres::Row;

use super::errors::{OpResult, execute, query, query_opt};
use crate::domain::media::{self as rules, MEDIA_COLUMNS, MediaRow, encode_thumbnails};
use crate::domain::{to_i64, to_u64};
use crate::error::StoreError;
use crate::model::{MediaRecord, MediaState, MediaVerified, NewMedia, NewMessage};

fn media_from_row(row: &Row) -> OpResult<MediaRecord> {
    Ok(MediaRow {
        id: row.try_get(0)?,
        owner_id: row.try_get(1)?,
        state: row.try_get(2)?,
        content_type: row.try_get(3)?,
        size: row.try_get(4)?,
        sha256: row.try_get(5)?,
        filename: row.try_get(6)?,
        width: row.try_get(7)?,
        height: row.try_get(8)?,
        duration_ms: row.try_get(9)?,
        thumbnails: row.try_get(10)?,
        created_at_ms: row.try_get(11)?,
        expires_at_ms: row.try_get(12)?,
    }
    .into_record())
}

/// The media row `id`, whatever its state.
pub(super) async fn media(conn: &ClientWrapper, id: MediaId) -> OpResult<Option<MediaRecord>> {
    let sql = format!("SELECT {MEDIA_COLUMNS} FROM media WHERE id=$1");
    query_opt(conn, &sql, &[&id.0])
        .await?
        .map(|row| media_from_row(&row))
        .transpose()
}

/// Reserves the bytes in the owner's quota and makes the pending row, in
/// one statement: the upsert's guard refuses bytes over the quota, and no
/// row is made then.
pub(super) async fn create_media(conn: &ClientWrapper, new: NewMedia) -> OpResult<MediaRecord> {
    rules::check_quota(0, new.size, new.quota_bytes)?;
    let (size, quota) = (to_i64(new.size), to_i64(new.quota_bytes));
    let sql = format!(
        "WITH reserved AS (
             INSERT INTO media_usage(user_id, bytes) VALUES($1, $3)
             ON CONFLICT(user_id) DO UPDATE SET bytes = media_usage.bytes + EXCLUDED.bytes
             WHERE media_usage.bytes + EXCLUDED.bytes <= $8
             RETURNING user_id)
         INSERT INTO media(owner_id, state, content_type, size, sha256, filename, created_at_ms, expires_at_ms)
         SELECT $1, 'pending', $2, $3, $4, $5, $6, $7 FROM reserved
         RETURNING {MEDIA_COLUMNS}"
    );
    let row = query_opt(
        conn,
        &sql,
        &[
            &new.owner.0,
            &new.content_type,
            &size,
            &new.sha256,
            &new.filename,
            &new.now_ms,
            &new.expires_at_ms,
            &quota,
        ],
    )
    .await?;
    match row {
        Some(row) => media_from_row(&row),
        None => Err(rules::quota_refusal(new.quota_bytes).into()),
    }
}

/// Marks a pending media ready (a ready one is answered as it is).
pub(super) async fn complete_media(
    conn: &ClientWrapper,
    id: MediaId,
    verified: &MediaVerified,
) -> OpResult<MediaRecord> {
    let (width, height) = (
        verified.width.map(i64::from),
        verified.height.map(i64::from),
    );
    execute(
        conn,
        "UPDATE media SET state='ready', content_type=$2, width=$3, height=$4, duration_ms=$5,
                          thumbnails=$6, orphan_since_ms=$7
         WHERE id=$1 AND state='pending'",
        &[
            &id.0,
            &verified.content_type,
            &width,
            &height,
            &verified.duration_ms.map(to_i64),
            &encode_thumbnails(&verified.thumbnails),
            &verified.now_ms,
        ],
    )
    .await?;
    match media(conn, id).await? {
        Some(record) if record.state == MediaState::Ready => Ok(record),
        _ => Err(StoreError::NotFound("media").into()),
    }
}

/// Marks a pending media rejected.
pub(super) async fn reject_media(conn: &ClientWrapper, id: MediaId, now_ms: i64) -> OpResult<()> {
    execute(
        conn,
        "UPDATE media SET state='rejected', expires_at_ms=$2 WHERE id=$1 AND state='pending'",
        &[&id.0, &now_ms],
    )
    .await?;
    Ok(())
}

/// Whether `viewer` may read ready media `id` (see `Store::media_visible`).
pub(super) async fn media_visible(
    conn: &ClientWrapper,
    id: MediaId,
    viewer: UserId,
) -> OpResult<bool> {
    let name = id.to_string();
    Ok(query_opt(
        conn,
        "SELECT 1 FROM media WHERE id=$1 AND state='ready' AND (owner_id=$2
           OR EXISTS(SELECT 1 FROM message_media mm JOIN member_periods p
                       ON p.conversation_id=mm.conversation_id AND p.user_id=$2
                      AND mm.seq >= p.from_seq AND (p.to_seq IS NULL OR mm.seq <= p.to_seq)
                     WHERE mm.media_id=$1)
           OR EXISTS(SELECT 1 FROM users WHERE avatar_media_id=$3)
           OR EXISTS(SELECT 1 FROM conversations c JOIN members m
                       ON m.conversation_id=c.id AND m.user_id=$2 AND m.active
                     WHERE c.avatar_media_id=$3))",
        &[&id.0, &viewer.0, &name],
    )
    .await?
    .is_some())
}

/// Which row holds an avatar: a user's, or a group's conversation.
#[derive(Debug, Clone, Copy)]
pub(super) enum AvatarOf {
    User(UserId),
    Group(ConversationId),
}

/// Sets (`Some`) or removes the avatar of `of` to media `new`, which
/// `actor` must be allowed to use (`rules::check_avatar`), and releases
/// the avatar it replaces, in one statement: the avatar's row is locked
/// first (users and conversations before media, the engine's lock
/// order), then the new media is taken off the orphan list only if it is
/// still ready (a collector's claim, which needs `orphan_since_ms` set,
/// cannot take it from under the avatar), then the row is changed and
/// the old avatar, read under the lock, becomes an orphan from `now_ms`
/// unless a message references it.
pub(super) async fn set_avatar(
    conn: &ClientWrapper,
    of: AvatarOf,
    actor: UserId,
    new: Option<MediaId>,
    now_ms: i64,
) -> OpResult<()> {
    if let Some(id) = new {
        rules::check_avatar(actor, media(conn, id).await?.as_ref())?;
    }
    let (table, row) = match of {
        AvatarOf::User(user) => ("users", user.0),
        AvatarOf::Group(group) => ("conversations", group.0),
    };
    let sql = format!(
        "WITH old AS MATERIALIZED (SELECT id, avatar_media_id FROM {table} WHERE id=$1 FOR UPDATE),
              adopted AS (UPDATE media SET orphan_since_ms=NULL
                          WHERE id=$2 AND state='ready' AND EXISTS(SELECT 1 FROM old) RETURNING id),
              changed AS (UPDATE {table} t SET avatar_media_id=$3 FROM old
                          WHERE t.id=old.id AND ($3::TEXT IS NULL OR EXISTS(SELECT 1 FROM adopted))
                          RETURNING old.avatar_media_id AS old_name),
              released AS (UPDATE media SET orphan_since_ms=$4
                           WHERE id=(SELECT CASE WHEN old_name ~ '^f[0-9]{{1,18}}$'
                                             THEN substr(old_name, 2)::BIGINT END FROM changed)
                             AND id<>$2 AND state='ready'
                             AND NOT EXISTS(SELECT 1 FROM message_media r WHERE r.media_id=media.id)
                           RETURNING id)
         SELECT COUNT(*) FROM changed"
    );
    let name = new.map(|id| id.to_string());
    let id = new.map_or(0, |id| id.0);
    let row = query_opt(conn, &sql, &[&row, &id, &name, &now_ms]).await?;
    let changed: i64 = row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
    if changed == 0 {
        // The row went away, or the media was collected meanwhile.
        let what = match (new, of) {
            (Some(_), _) => "media",
            (None, AvatarOf::User(_)) => "user",
            (None, AvatarOf::Group(_)) => "group",
        };
        return Err(StoreError::NotFound(what).into());
    }
    Ok(())
}

/// An avatar removed inside a larger transaction (an erasure): the media
/// `old` named is an orphan from `now_ms` unless a message references it.
pub(super) async fn release_avatar(
    conn: &ClientWrapper,
    old: Option<&str>,
    now_ms: i64,
) -> OpResult<()> {
    let Some(id) = old.and_then(|name| name.parse::<MediaId>().ok()) else {
        return Ok(());
    };
    execute(
        conn,
        "UPDATE media SET orphan_since_ms=$2 WHERE id=$1 AND state='ready'
         AND NOT EXISTS(SELECT 1 FROM message_media WHERE media_id=$1)",
        &[&id.0, &now_ms],
    )
    .await?;
    Ok(())
}

/// Checks what a media message references (before its insert) and
/// returns the media as the message carries it.
pub(super) async fn attach(conn: &ClientWrapper, new: &NewMessage) -> OpResult<Vec<MediaInfo>> {
    let mut out = Vec::with_capacity(new.media.len());
    for &id in &new.media {
        let record = media(conn, id).await?;
        let sees = match &record {
            Some(r) if r.owner != new.sender_id => media_visible(conn, id, new.sender_id).await?,
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

/// After the insert of the message at `seq`: stores its media and its
/// references. Clearing `orphan_since_ms` also locks the media row and
/// re-checks it is still ready, so a collector's claim (which requires
/// `orphan_since_ms` set) cannot take it from under the message.
pub(super) async fn link(
    conn: &ClientWrapper,
    message_id: i64,
    conversation: ConversationId,
    seq: u64,
    media: &[MediaInfo],
) -> OpResult<()> {
    if media.is_empty() {
        return Ok(());
    }
    execute(
        conn,
        "UPDATE messages SET media=$2 WHERE id=$1",
        &[&message_id, &MediaInfo::encode_list(media)],
    )
    .await?;
    for item in media {
        let still_ready = execute(
            conn,
            "UPDATE media SET orphan_since_ms=NULL WHERE id=$1 AND state='ready'",
            &[&item.media_id.0],
        )
        .await?;
        if still_ready != 1 {
            return Err(StoreError::NotFound("media").into());
        }
        execute(
            conn,
            "INSERT INTO message_media(conversation_id, seq, media_id) VALUES($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&conversation.0, &to_i64(seq), &item.media_id.0],
        )
        .await?;
    }
    Ok(())
}

/// Drops the references of a message deleted for everyone; media left
/// with none becomes an orphan now.
pub(super) async fn unlink(
    conn: &ClientWrapper,
    conversation: ConversationId,
    seq: u64,
    now_ms: i64,
) -> OpResult<()> {
    execute(
        conn,
        "WITH gone AS (DELETE FROM message_media WHERE conversation_id=$1 AND seq=$2 RETURNING media_id)
         UPDATE media SET orphan_since_ms=$3 WHERE id IN (SELECT media_id FROM gone)
           AND NOT EXISTS(SELECT 1 FROM message_media r WHERE r.media_id=media.id
                          AND NOT (r.conversation_id=$1 AND r.seq=$2))",
        &[&conversation.0, &to_i64(seq), &now_ms],
    )
    .await?;
    Ok(())
}

/// The collector's first step (see `Store::claim_media_garbage`).
pub(super) async fn claim_media_garbage(
    conn: &ClientWrapper,
    before_ms: i64,
    limit: usize,
) -> OpResult<Vec<MediaId>> {
    let limit = limit as i64;
    // The outer SELECT reads the snapshot before the UPDATE, so it sees
    // what earlier runs left; the union adds what this one claimed.
    let rows = query(
        conn,
        "WITH claimed AS (
             UPDATE media SET state='deleting' WHERE id IN (
                 SELECT id FROM media g WHERE
                   (g.state IN ('pending', 'rejected') AND g.expires_at_ms < $1)
                   OR (g.state='ready' AND g.orphan_since_ms IS NOT NULL AND g.orphan_since_ms < $1
                       AND NOT EXISTS(SELECT 1 FROM message_media WHERE media_id=g.id)
                       AND NOT EXISTS(SELECT 1 FROM users WHERE avatar_media_id='f' || g.id)
                       AND NOT EXISTS(SELECT 1 FROM conversations WHERE avatar_media_id='f' || g.id))
                 LIMIT $2 FOR UPDATE SKIP LOCKED)
               AND (state <> 'ready' OR orphan_since_ms IS NOT NULL)
             RETURNING id)
         SELECT id FROM (SELECT id FROM claimed UNION SELECT id FROM media WHERE state='deleting') d
         ORDER BY id LIMIT $2",
        &[&before_ms, &limit],
    )
    .await?;
    rows.iter().map(|r| Ok(MediaId(r.try_get(0)?))).collect()
}

/// The collector's last step: deletes the claimed rows and gives their
/// bytes back to their owners' quotas, in one statement.
pub(super) async fn forget_media(conn: &ClientWrapper, ids: &[MediaId]) -> OpResult<u64> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = query(
        conn,
        "WITH gone AS (DELETE FROM media WHERE id = ANY($1) AND state='deleting' RETURNING owner_id, size),
              totals AS (SELECT owner_id, SUM(size)::BIGINT AS bytes, COUNT(*) AS n FROM gone GROUP BY owner_id),
              released AS (UPDATE media_usage u SET bytes = GREATEST(0, u.bytes - t.bytes)
                           FROM totals t WHERE u.user_id = t.owner_id RETURNING t.n)
         SELECT COALESCE(SUM(n), 0)::BIGINT FROM totals",
        &[&ids],
    )
    .await?;
    Ok(rows
        .first()
        .map(|r| r.try_get::<_, i64>(0))
        .transpose()?
        .map(to_u64)
        .unwrap_or(0))
}

/// The bytes counted against `user`'s quota.
pub(super) async fn media_usage(conn: &ClientWrapper, user: UserId) -> OpResult<u64> {
    let row = query_opt(
        conn,
        "SELECT bytes FROM media_usage WHERE user_id=$1",
        &[&user.0],
    )
    .await?;
    Ok(row
        .map(|r| r.try_get::<_, i64>(0))
        .transpose()?
        .map(to_u64)
        .unwrap_or(0))
}
