//! Opening SQLite connections, and the pool of reader connections that
//! serve reads on Tokio's blocking pool (with the search index's file
//! attached).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::SqliteOptions;
use crate::error::{StoreError, StoreResult};

/// Opens a connection with the store's pragmas (WAL, the chosen
/// `synchronous`, foreign keys, in-memory temp store).
pub(super) fn open_connection(path: &Path, options: &SqliteOptions) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        if options.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every job runs in a savepoint; with temp files the savepoint journal
    // is written through the kernel on every job (the profile showed it).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Delete for everyone must purge text from the file, not only unlink
    // it: freed cells and pages are overwritten with zeros.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cache_size", cache_size(options))?;
    conn.set_prepared_statement_cache_capacity(96);
    Ok(conn)
}

/// `PRAGMA cache_size` for `cache_kib` (a negative size is in KiB).
/// Every connection has one cache per database file it opens, and keeps
/// it full once the store is larger: the writer, the checkpoint thread,
/// the indexer's two, and two per reader ([`ReaderPool::MAX_READERS`]),
/// so the caches take at most 20 times `cache_kib`.
fn cache_size(options: &SqliteOptions) -> i64 {
    -i64::from(options.cache_kib.max(1))
}

/// The search index's file beside the message database (`search_index`):
/// `parley.db` -> `parley.db.search` (its WAL `parley.db.search-wal`).
pub(super) fn index_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(super::SEARCH_INDEX_SUFFIX);
    PathBuf::from(name)
}

/// Reader connections, kept open between reads.
pub(super) struct ReaderPool {
    path: PathBuf,
    /// The search index's file, attached to every reader as `search`
    /// (`ATTACH` takes the name as text; checked once, at open).
    index: String,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl ReaderPool {
    /// Reads at once; every one keeps its connection afterwards.
    const MAX_READERS: usize = 8;
    const MAX_IDLE: usize = Self::MAX_READERS;

    /// A pool for the database at `path`; connections open on first use.
    /// Refuses a path `ATTACH` cannot name (not UTF-8), at open rather
    /// than at every read.
    pub(super) fn new(path: PathBuf, options: SqliteOptions) -> StoreResult<ReaderPool> {
        let index = index_path(&path)
            .into_os_string()
            .into_string()
            .map_err(|name| {
                StoreError::Internal(format!(
                    "the database path {} is not UTF-8, which SQLite's ATTACH needs",
                    Path::new(&name).display()
                ))
            })?;
        Ok(ReaderPool {
            path,
            index,
            options,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(Self::MAX_READERS)),
        })
    }

    /// Runs `f` on a reader connection on the blocking pool.
    pub(super) async fn run<T, F>(self: Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        // At most MAX_READERS reads run at once: a reconnect storm queues
        // here instead of opening (and then dropping) hundreds of
        // connections on hundreds of blocking threads.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("store is shutting down".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = self.take()?;
            let result = f(&conn);
            self.put(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("reader task failed: {e}")))?
    }

    fn take(&self) -> StoreResult<Connection> {
        // A std mutex: held only to pop, never across an await.
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let conn = open_connection(&self.path, &self.options)?;
                // Searches read the index file too (`search_index`).
                conn.execute("ATTACH DATABASE ?1 AS search", [&self.index])?;
                conn.pragma_update(Some("search"), "cache_size", cache_size(&self.options))?;
                Ok(conn)
            }
        }
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < Self::MAX_IDLE {
            idle.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_sizes(conn: &Connection) -> (i64, i64) {
        let size = |schema: &str| {
            conn.query_row(&format!("PRAGMA {schema}.cache_size"), [], |r| r.get(0))
                .unwrap()
        };
        (size("main"), size("search"))
    }

    /// Every file a reader opens gets the configured cache, the attached
    /// search index included (it would otherwise keep SQLite's default).
    #[tokio::test]
    async fn readers_use_the_configured_cache_for_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            cache_kib: 300,
            ..SqliteOptions::default()
        };
        let pool = Arc::new(ReaderPool::new(dir.path().join("parley.db"), options).unwrap());
        let sizes = pool.run(|conn| Ok(cache_sizes(conn))).await.unwrap();
        assert_eq!(sizes, (-300, -300));
    }
}
