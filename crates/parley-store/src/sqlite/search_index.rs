//! The search index's batched upkeep (SQLite).
//!
//! Sends do not touch `message_fts`. Indexing one message per commit
//! made FTS5 flush its pending terms to a new segment and merge segments
//! at every commit: with tokenizing, 36 % of all instructions at 300
//! msg/s (BENCHMARKS.md, "Where the instructions go"). Instead the store
//! keeps a watermark, `search_index_state.indexed_up_to`: every message
//! with `id <= indexed_up_to` is in the index exactly as its current row
//! says (searched kind, not deleted, text present), and none above it is.
//! [`catch_up`] indexes everything above the watermark with one statement
//! and moves it, in the caller's transaction, so the index and the
//! watermark commit (or roll back) together.
//!
//! Who catches up:
//! - the writer thread, once `search_index_batch` sends went unindexed,
//!   inside that batch's transaction, and when it has been idle for
//!   `search_index_delay` with sends unindexed (`writer`);
//! - a search, before it reads, when the watermark is behind: so a
//!   message is searchable as soon as its send is acknowledged
//!   ([`is_behind`], `SqliteStore::search`);
//! - every write that changes or removes index entries of existing
//!   messages (edit, delete, erasure), first: their entry changes then
//!   start from an index that holds the row.
//!
//! Message ids only grow (messages are never deleted, only blanked), so
//! "above the watermark" is exactly "not yet indexed".

use rusqlite::Connection;

use crate::domain::search::SEARCHED_KINDS_SQL;
use crate::error::StoreResult;

/// Indexes every searchable message above the watermark and moves the
/// watermark to the newest message. Returns how many were indexed. Runs
/// in the caller's transaction.
pub(super) fn catch_up(conn: &Connection) -> StoreResult<usize> {
    let (watermark, newest): (i64, i64) = conn
        .prepare_cached(
            "SELECT indexed_up_to, (SELECT COALESCE(MAX(id), 0) FROM messages)
             FROM search_index_state WHERE id=1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if newest <= watermark {
        return Ok(0);
    }
    let indexed = conn
        .prepare_cached(&format!(
            "INSERT INTO message_fts(rowid, text)
             SELECT id, text FROM messages
             WHERE id > ?1 AND id <= ?2 AND kind IN ({SEARCHED_KINDS_SQL})
               AND deleted=0 AND text IS NOT NULL"
        ))?
        .execute([watermark, newest])?;
    conn.prepare_cached("UPDATE search_index_state SET indexed_up_to=?1 WHERE id=1")?
        .execute([newest])?;
    Ok(indexed)
}

/// Whether some message is above the watermark (a read: any connection).
pub(super) fn is_behind(conn: &Connection) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages) > indexed_up_to
             FROM search_index_state WHERE id=1",
        )?
        .query_row([], |r| r.get(0))?)
}
