//! The SQLite schema: its migrations, applied in order at open.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{StoreError, StoreResult};

/// The schema, one entry per version. Never edit an entry once released;
/// append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users(
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    presence_visibility TEXT NOT NULL DEFAULT 'everyone',
    last_seen_ms INTEGER,
    created_at_ms INTEGER NOT NULL,
    inbox_head INTEGER NOT NULL DEFAULT 0,
    inbox_floor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE devices(
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX devices_by_user ON devices(user_id);
CREATE TABLE conversations(
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT,
    direct_key TEXT UNIQUE,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_activity_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    summary_delivered INTEGER NOT NULL DEFAULT 0,
    summary_read INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE members(
    conversation_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    role TEXT NOT NULL,
    active INTEGER NOT NULL,
    delivered_up_to INTEGER NOT NULL DEFAULT 0,
    read_up_to INTEGER NOT NULL DEFAULT 0,
    joined_seq INTEGER NOT NULL,
    joined_at_ms INTEGER NOT NULL,
    PRIMARY KEY(conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, active);
CREATE TABLE member_periods(
    conversation_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    from_seq INTEGER NOT NULL,
    to_seq INTEGER,
    PRIMARY KEY(conversation_id, user_id, from_seq)
) WITHOUT ROWID;
CREATE TABLE messages(
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    sender_id INTEGER NOT NULL,
    sender_device_id INTEGER,
    client_msg_id TEXT,
    sent_at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT,
    reply_to_seq INTEGER,
    event TEXT,
    user_ids TEXT,
    name TEXT,
    role TEXT,
    UNIQUE(conversation_id, seq)
);
CREATE UNIQUE INDEX messages_dedup ON messages(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE TABLE inbox(
    user_id INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY(user_id, cursor)
) WITHOUT ROWID;
CREATE INDEX inbox_by_age ON inbox(created_at_ms);
"#,
    // v2: the inbox as runs ("segments") instead of one row per user and
    // message. A user's cursors c in [first_cursor, next segment's first_cursor)
    // are the messages first_seq + (c - first_cursor) of one conversation, so a
    // member of a busy group costs no row per message, only one per switch of
    // conversation. Existing rows are folded into runs.
    r#"
CREATE TABLE inbox_segments(
    user_id INTEGER NOT NULL,
    first_cursor INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY(user_id, first_cursor)
) WITHOUT ROWID;
CREATE INDEX inbox_segments_by_age ON inbox_segments(created_at_ms);
INSERT INTO inbox_segments(user_id, first_cursor, conversation_id, first_seq, created_at_ms)
SELECT user_id, cursor, conversation_id, seq, created_at_ms FROM (
    SELECT user_id, cursor, conversation_id, seq, created_at_ms,
           LAG(conversation_id) OVER w AS prev_conversation,
           LAG(seq) OVER w AS prev_seq,
           LAG(cursor) OVER w AS prev_cursor
    FROM inbox WINDOW w AS (PARTITION BY user_id ORDER BY cursor)
)
WHERE prev_cursor IS NULL OR prev_cursor != cursor - 1
   OR prev_conversation != conversation_id OR prev_seq != seq - 1;
DROP TABLE inbox;
"#,
    // v3: message events (§8), per-user state and blocking (§11), search
    // (§10). Events carry target_seq/emoji; their target keeps the
    // aggregated state (edited_at_ms, deleted, reactions as JSON). The
    // search index is a contentless FTS5 trigram table over the current
    // text of text messages, keyed by message id, written by the writer in
    // the message's transaction; existing messages are indexed here.
    // `secure-delete` makes FTS5 remove a deleted entry's terms at once.
    r#"
ALTER TABLE messages ADD COLUMN target_seq INTEGER;
ALTER TABLE messages ADD COLUMN emoji TEXT;
ALTER TABLE messages ADD COLUMN forwarded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN edited_at_ms INTEGER;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN reactions TEXT;
CREATE INDEX messages_by_target ON messages(conversation_id, target_seq) WHERE target_seq IS NOT NULL;
ALTER TABLE users ADD COLUMN avatar_media_id TEXT;
ALTER TABLE users ADD COLUMN read_receipts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN push_previews INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN avatar_media_id TEXT;
ALTER TABLE members ADD COLUMN muted_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
CREATE TABLE blocks(
    user_id INTEGER NOT NULL,
    blocked_id INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY(user_id, blocked_id)
) WITHOUT ROWID;
CREATE INDEX blocks_by_blocked ON blocks(blocked_id);
CREATE VIRTUAL TABLE message_fts USING fts5(text, content='', contentless_delete=1, tokenize='trigram');
INSERT INTO message_fts(message_fts, rank) VALUES('secure-delete', 1);
INSERT INTO message_fts(rowid, text) SELECT id, text FROM messages WHERE kind='text' AND text IS NOT NULL;
"#,
    // v4: administration (§14): server administrators, disabled and erased
    // accounts. Erasure finds a user's messages through `messages_by_sender`
    // (one index entry per message written; without it an erasure would
    // scan every message inside the writer's transaction).
    r#"
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled_at_ms INTEGER;
ALTER TABLE users ADD COLUMN erased_at_ms INTEGER;
CREATE INDEX messages_by_sender ON messages(sender_id);
"#,
    // v5: push notifications (§12). `server_secrets` keeps values every
    // process sharing the database must agree on (the VAPID key), written
    // once with INSERT OR IGNORE. One registration and at most one pending
    // push per device: a burst of messages coalesces into that row
    // (`unread` counts them, `generation` tells a claimed push from newer
    // messages). Pending pushes are rows, so they survive a restart.
    r#"
CREATE TABLE server_secrets(
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE push_registrations(
    device_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    p256dh TEXT,
    auth TEXT,
    topic TEXT,
    sandbox INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX push_registrations_by_user ON push_registrations(user_id);
CREATE TABLE push_pending(
    device_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    unread INTEGER NOT NULL,
    urgent INTEGER NOT NULL,
    preview_sender INTEGER,
    preview_text TEXT,
    due_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX push_pending_by_due ON push_pending(due_at_ms);
"#,
    // v6: media (§9). `media` holds every upload from its slot to its
    // collection; `message_media` the references garbage collection counts;
    // `media_usage` each owner's pending and ready bytes, for the quota.
    // `orphan_since_ms` is when a ready media last had no reference (set at
    // completion and when a delete drops the last one; cleared by a
    // message referencing it); the collector takes it after the grace
    // period. A message's media (as sent) is JSON on its row, like its
    // reactions.
    r#"
CREATE TABLE media(
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    filename TEXT,
    width INTEGER,
    height INTEGER,
    duration_ms INTEGER,
    thumbnails TEXT,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    orphan_since_ms INTEGER
);
CREATE INDEX media_by_state ON media(state, expires_at_ms);
CREATE TABLE message_media(
    conversation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    media_id INTEGER NOT NULL,
    PRIMARY KEY(conversation_id, seq, media_id)
) WITHOUT ROWID;
CREATE INDEX message_media_by_media ON message_media(media_id);
CREATE TABLE media_usage(
    user_id INTEGER PRIMARY KEY,
    bytes INTEGER NOT NULL
);
ALTER TABLE messages ADD COLUMN media TEXT;
"#,
    // v7: captions are searched like text (§10). New media messages were
    // already indexed by the send path; this (re)indexes the caption of
    // every media message that is not deleted, whatever wrote it.
    r#"
DELETE FROM message_fts WHERE rowid IN
    (SELECT id FROM messages WHERE kind IN ('image','video','audio','file'));
INSERT INTO message_fts(rowid, text) SELECT id, text FROM messages
    WHERE kind IN ('image','video','audio','file') AND deleted=0 AND text IS NOT NULL;
"#,
    // v8: avatars are media references (`avatar_media_id`, the media id as
    // a string). Downloads and the collector look media up by avatar, so
    // both columns are indexed where set.
    r#"
CREATE INDEX users_by_avatar ON users(avatar_media_id) WHERE avatar_media_id IS NOT NULL;
CREATE INDEX conversations_by_avatar ON conversations(avatar_media_id) WHERE avatar_media_id IS NOT NULL;
"#,
    // v9: the search index is kept in batches (`sqlite::search_index`):
    // `indexed_up_to` is the newest message id whose row the index
    // reflects. Every message written so far was indexed by its own send.
    r#"
CREATE TABLE search_index_state(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_up_to INTEGER NOT NULL
);
INSERT INTO search_index_state(id, indexed_up_to) SELECT 1, COALESCE(MAX(id), 0) FROM messages;
"#,
    // v10: one index per sender instead of two. `messages_dedup` becomes a
    // plain (not partial) unique index on (sender_id, client_msg_id): NULL
    // keys stay distinct, so it refuses the same duplicates, and its
    // sender_id prefix now serves erasure's `WHERE sender_id=?` for every
    // message, so `messages_by_sender` goes. Every send wrote a leaf page
    // of both: one B-tree page fewer per sender in each commit's WAL.
    r#"
DROP INDEX messages_by_sender;
DROP INDEX messages_dedup;
CREATE UNIQUE INDEX messages_dedup ON messages(sender_id, client_msg_id);
"#,
    // v11: the search index moves to a file of its own, kept by a thread
    // of its own (`sqlite::search_index`): FTS5's merges held the one
    // writer of this file. What stays here is the list of messages whose
    // searchable text changed (edits, deletes, erasure) for the indexer to
    // apply; the index is built anew in its file from the messages.
    r#"
DROP TABLE message_fts;
DROP TABLE search_index_state;
CREATE TABLE search_changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL
);
"#,
];

/// Brings the schema up to the newest version this binary knows; refuses a
/// newer one.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    )?;
    let current: i64 = conn
        .query_row(
            "SELECT value FROM schema_meta WHERE key='version'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Internal(format!(
            "the database schema is version {current}, newer than this binary knows ({known}); \
             run a newer parley or restore a matching backup"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_meta(key, value) VALUES('version', ?1)
             ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![index as i64 + 1],
        )?;
        tx.commit()?;
        tracing::info!(version = index + 1, "applied SQLite schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use parley_proto::UserId;

    use super::super::{SqliteOptions, SqliteStore, inbox_runs};
    use super::*;
    use crate::Store;

    /// A version-1 database (one inbox row per message) is folded into
    /// runs by migration 2 and replays exactly as before.
    #[tokio::test]
    async fn migration_folds_inbox_rows_into_segments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO schema_meta VALUES('version', 1);",
            )
            .unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "INSERT INTO users(id, username, display_name, password_hash, created_at_ms, inbox_head)
                     VALUES(1, 'alice', 'alice', 'x', 1, 5), (2, 'bob', 'bob', 'x', 1, 0);
                 INSERT INTO conversations(id, kind, last_seq, last_activity_ms, created_at_ms)
                     VALUES(1, 'group', 3, 1, 1), (2, 'group', 2, 1, 1);
                 INSERT INTO messages(conversation_id, seq, sender_id, sent_at_ms, kind, text) VALUES
                     (1, 1, 2, 1, 'text', 'a'), (1, 2, 2, 1, 'text', 'b'), (1, 3, 2, 1, 'text', 'd'),
                     (2, 1, 2, 1, 'text', 'c'), (2, 2, 2, 1, 'text', 'e');
                 INSERT INTO inbox(user_id, cursor, conversation_id, seq, created_at_ms) VALUES
                     (1, 1, 1, 1, 1), (1, 2, 1, 2, 1), (1, 3, 2, 1, 1), (1, 4, 1, 3, 1), (1, 5, 2, 2, 1);",
            )
            .unwrap();
        }
        let (store, _events) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let entries = store.inbox_since(UserId(1), 0, 10).await.unwrap();
        let texts: Vec<(u64, String)> = entries
            .into_iter()
            .map(|e| (e.cursor, e.message.text.unwrap()))
            .collect();
        let expected: Vec<(u64, String)> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64 + 1, t.to_string()))
            .collect();
        assert_eq!(texts, expected);
        let segments = store
            .read(|conn| Ok(inbox_runs::segments_from(conn, UserId(1), 0)?.len()))
            .await
            .unwrap();
        assert_eq!(segments, 4, "(c1,1..2) (c2,1) (c1,3) (c2,2)");
        store.shutdown().await;
    }

    /// A version-6 database whose media captions are not in the search
    /// index (as if written before captions were searched) has them
    /// indexed by migration 7; a deleted one stays out.
    #[tokio::test]
    async fn migration_indexes_existing_captions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v6.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO schema_meta VALUES('version', 6);",
            )
            .unwrap();
            for sql in &MIGRATIONS[..6] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "INSERT INTO users(id, username, display_name, password_hash, created_at_ms)
                     VALUES(1, 'alice', 'alice', 'x', 1);
                 INSERT INTO conversations(id, kind, last_seq, last_activity_ms, created_at_ms)
                     VALUES(1, 'group', 3, 1, 1);
                 INSERT INTO member_periods(conversation_id, user_id, from_seq) VALUES(1, 1, 1);
                 INSERT INTO messages(conversation_id, seq, sender_id, sent_at_ms, kind, text, deleted) VALUES
                     (1, 1, 1, 1, 'image', 'a harbour at dusk', 0),
                     (1, 2, 1, 1, 'file', NULL, 1),
                     (1, 3, 1, 1, 'video', 'harbour, deleted', 1);",
            )
            .unwrap();
        }
        let (store, _events) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let (found, more) = store
            .search(crate::model::SearchQuery {
                viewer: UserId(1),
                text: "HARBOUR".into(),
                conversation: None,
                before_seq: None,
                before_id: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert!(!more);
        assert_eq!(
            found.iter().map(|m| m.text.clone()).collect::<Vec<_>>(),
            [Some("a harbour at dusk".to_owned())]
        );
        // The index itself holds it (not only a scan would find it).
        let indexed: i64 = store
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT COUNT(*) FROM search.message_fts WHERE message_fts MATCH '\"harbour\"'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(indexed, 1);
        store.shutdown().await;
    }

    /// After migration 10, one index per sender does both of its jobs: it
    /// refuses a repeated (sender, client_msg_id) but not repeated NULL
    /// keys (messages written without one), and erasure's lookup of every
    /// message of a sender is an index search, not a scan.
    #[test]
    fn one_sender_index_dedups_and_serves_erasure() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let insert = |key: Option<&str>| {
            conn.execute(
                "INSERT INTO messages(conversation_id, seq, sender_id, client_msg_id, sent_at_ms, kind)
                 VALUES(1, (SELECT COUNT(*) + 1 FROM messages), 7, ?1, 1, 'text')",
                [key],
            )
        };
        insert(Some("k1")).unwrap();
        assert!(insert(Some("k1")).is_err(), "a repeated key is refused");
        insert(None).unwrap();
        insert(None).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT id FROM messages
                 WHERE sender_id=?1 AND kind IN ({}) AND deleted=0",
                crate::domain::search::SEARCHED_KINDS_SQL
            ))
            .unwrap()
            .query_map([7], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX messages_dedup (sender_id=?)")),
            "{plan:?}"
        );
    }
}
