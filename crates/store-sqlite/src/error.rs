//! `sqlx::Error` → [`StoreError`]. Nothing from sqlx leaves the crate.

use tasker_store::{StoreError, StoreResult};

/// SQLite primary result codes that mean "try again later".
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

/// Maps a database error to the store's error kinds.
pub(crate) fn map(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(d) => {
            // Extended result codes carry the primary code in the low byte.
            let primary = d
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            match primary {
                Some(
                    SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN,
                ) => StoreError::Unavailable(e.to_string()),
                _ if d.is_unique_violation() => StoreError::Conflict(e.to_string()),
                _ => StoreError::Internal(e.to_string()),
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// `.db()?` instead of `.map_err(error::map)?`.
pub(crate) trait DbResultExt<T> {
    /// Maps the error.
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(map)
    }
}

/// A value read back that the schema should have made impossible.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt row: {what}"))
}
