//! PostgreSQL error classification: which failures re-run a batch, which
//! re-run one op, which mean the database is unreachable, and how each
//! becomes a [`StoreError`]. Also the statement helpers every module uses,
//! so that each statement is prepared once per connection.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::error::StoreError;

/// Why an op or a statement failed: a domain refusal, or the engine.
#[derive(Debug)]
pub(super) enum OpError {
    /// A refusal by the rules, or an engine failure already mapped.
    Domain(StoreError),
    /// A statement failed; [`classify`] says how to react.
    Pg(tokio_postgres::Error),
    /// The connection could not be had or the operation took too long.
    Unavailable(String),
}

pub(super) type OpResult<T> = Result<T, OpError>;

impl From<tokio_postgres::Error> for OpError {
    fn from(err: tokio_postgres::Error) -> Self {
        OpError::Pg(err)
    }
}

impl From<StoreError> for OpError {
    fn from(err: StoreError) -> Self {
        OpError::Domain(err)
    }
}

/// How the writer reacts to an engine error.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PgClass {
    /// Deadlock or serialization failure: re-run the batch.
    Retry,
    /// A unique index refused a row another transaction committed first.
    Unique,
    /// The connection or the server is gone.
    Connection,
    /// Anything else: a bug or a broken database.
    Other,
}

pub(super) fn classify(err: &tokio_postgres::Error) -> PgClass {
    match err.code() {
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            PgClass::Retry
        }
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => PgClass::Unique,
        // 08: connection exception; 57P0x: the server is shutting down or
        // starting; 53: out of resources (connections, disk, memory).
        Some(code)
            if code.code().starts_with("08")
                || code.code().starts_with("57P")
                || code.code().starts_with("53") =>
        {
            PgClass::Connection
        }
        Some(_) => PgClass::Other,
        None if err.is_closed() => PgClass::Connection,
        None => {
            // Without a server error code: I/O and connect failures carry an
            // io::Error; conversion errors (a bug) do not.
            let io =
                std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>());
            if io {
                PgClass::Connection
            } else {
                PgClass::Other
            }
        }
    }
}

impl OpError {
    pub(super) fn is_connection(&self) -> bool {
        match self {
            OpError::Pg(err) => classify(err) == PgClass::Connection,
            OpError::Unavailable(_) => true,
            OpError::Domain(_) => false,
        }
    }

    pub(super) fn into_store(self) -> StoreError {
        match self {
            OpError::Domain(err) => err,
            OpError::Unavailable(why) => StoreError::Unavailable(why),
            OpError::Pg(err) => match classify(&err) {
                PgClass::Connection | PgClass::Retry => StoreError::Unavailable(describe(&err)),
                PgClass::Unique | PgClass::Other => StoreError::Internal(describe(&err)),
            },
        }
    }
}

/// The server's code and message when there is one: `Display` of a
/// server error says only "db error".
pub(super) fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => err.to_string(),
    }
}

pub(super) fn pool_error(err: deadpool_postgres::PoolError) -> OpError {
    OpError::Unavailable(format!("cannot get a database connection: {err}"))
}

/// Why a whole batch failed.
pub(super) enum BatchFailure {
    /// Deadlock or serialization failure: roll back and run it again.
    Retry(String),
    /// Every op of the batch fails with this.
    Fail(StoreError),
}

impl From<OpError> for BatchFailure {
    fn from(err: OpError) -> Self {
        match err {
            OpError::Pg(pg) if classify(&pg) == PgClass::Retry => {
                BatchFailure::Retry(describe(&pg))
            }
            other => BatchFailure::Fail(other.into_store()),
        }
    }
}

/// Parameters of one statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub(super) async fn query(
    conn: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> OpResult<Vec<Row>> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query(&stmt, params).await?)
}

pub(super) async fn query_opt(
    conn: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> OpResult<Option<Row>> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query_opt(&stmt, params).await?)
}

pub(super) async fn query_one(
    conn: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> OpResult<Row> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query_one(&stmt, params).await?)
}

pub(super) async fn execute(conn: &ClientWrapper, sql: &str, params: Params<'_>) -> OpResult<u64> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.execute(&stmt, params).await?)
}
