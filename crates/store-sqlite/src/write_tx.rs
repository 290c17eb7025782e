//! A write transaction whose `BEGIN IMMEDIATE` travels with its first
//! statement: one hop to SQLite's thread fewer than `SqlitePool::begin`.
//!
//! Each statement sqlx runs on SQLite is a hand-off to the connection's
//! worker thread and back (about 0.06 ms on this machine, more than most
//! statements of the hot path take to run), so the finish of a chain stage
//! sends `BEGIN IMMEDIATE; <finish>` as one query ([`WriteTx::begin_with`]).
//! sqlx does not know such a transaction is open, so this type ends it
//! itself: [`WriteTx::end`] commits or rolls back, and a transaction
//! dropped while open (its future cancelled) closes its connection instead
//! of returning it to the pool, which rolls the transaction back and never
//! hands an open transaction to the next writer.

use crate::SqliteStore;
use crate::error::DbResultExt;
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Either, Sqlite, SqliteConnection};
use std::ops::{Deref, DerefMut};
use tasker_store::StoreResult;

/// The writer connection inside a transaction it began itself.
pub(crate) struct WriteTx {
    conn: PoolConnection<Sqlite>,
    open: bool,
}

impl WriteTx {
    /// Takes the writer connection and runs `query`, whose SQL is
    /// `BEGIN IMMEDIATE; ` and then one statement, in one hop; returns the
    /// transaction and that statement's rows. On an error nothing is left
    /// open.
    pub(crate) async fn begin_with(
        store: &SqliteStore,
        query: sqlx::query::Query<'_, Sqlite, SqliteArguments>,
    ) -> StoreResult<(WriteTx, Vec<SqliteRow>)> {
        let conn = store.writer.acquire().await.db()?;
        let mut tx = WriteTx { conn, open: false };
        let mut rows = Vec::new();
        let result = {
            // Two statements in one prepared query: only SQLite's driver
            // runs them, which is why sqlx marks `fetch_many` deprecated.
            #[allow(deprecated)]
            let mut results = query.fetch_many(&mut *tx.conn);
            loop {
                match results.try_next().await {
                    // The first statement done is the `BEGIN`.
                    Ok(Some(Either::Left(_))) => tx.open = true,
                    Ok(Some(Either::Right(row))) => rows.push(row),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
        };
        match result {
            Ok(()) if tx.open => Ok((tx, rows)),
            Ok(()) => Err(crate::error::corrupt("the write transaction did not begin")),
            Err(e) => {
                tx.rollback().await;
                Err(e).db()
            }
        }
    }

    /// Runs `query`, whose last statement is `COMMIT`, in one hop, and
    /// returns the rows of each of its statements. On an error the
    /// transaction is rolled back.
    pub(crate) async fn commit_with(
        mut self,
        query: sqlx::query::Query<'_, Sqlite, SqliteArguments>,
    ) -> StoreResult<Vec<Vec<SqliteRow>>> {
        let mut out = vec![Vec::new()];
        let result = {
            #[allow(deprecated)]
            let mut results = query.fetch_many(&mut *self.conn);
            loop {
                match results.try_next().await {
                    Ok(Some(Either::Left(_))) => out.push(Vec::new()),
                    Ok(Some(Either::Right(row))) => {
                        if let Some(rows) = out.last_mut() {
                            rows.push(row);
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
        };
        match result {
            Ok(()) => {
                self.open = false;
                Ok(out)
            }
            Err(e) => {
                self.rollback().await;
                Err(e).db()
            }
        }
    }

    /// Commits when `r` is `Ok`; otherwise rolls back and returns the error
    /// of `r`.
    pub(crate) async fn end<T>(mut self, r: StoreResult<T>) -> StoreResult<T> {
        match r {
            Ok(v) => match sqlx::query("COMMIT").execute(&mut *self.conn).await {
                Ok(_) => {
                    self.open = false;
                    Ok(v)
                }
                Err(e) => {
                    self.rollback().await;
                    Err(e).db()
                }
            },
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    /// Rolls back if a transaction is open. A rollback that fails leaves it
    /// open, and the connection is then closed when dropped.
    async fn rollback(&mut self) {
        if self.open
            && sqlx::query("ROLLBACK")
                .execute(&mut *self.conn)
                .await
                .is_ok()
        {
            self.open = false;
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sqlx::Row;

    async fn count(store: &SqliteStore) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM scratch")
            .fetch_one(&store.writer)
            .await
            .unwrap()
    }

    /// Whatever way a transaction ends (commit, rollback on an error, its
    /// future dropped while open, a statement that fails after the `BEGIN`),
    /// only a commit keeps its writes, and the writer begins again at once.
    #[tokio::test]
    async fn every_end_leaves_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE scratch (x INTEGER NOT NULL)")
            .execute(&store.writer)
            .await
            .unwrap();
        let insert = "BEGIN IMMEDIATE; INSERT INTO scratch VALUES (?1) RETURNING x";

        let (tx, rows) = WriteTx::begin_with(&store, sqlx::query(insert).bind(1_i64))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].try_get::<i64, _>(0).unwrap(), 1);
        tx.end(Ok(())).await.unwrap();
        assert_eq!(count(&store).await, 1, "committed");

        let (tx, _) = WriteTx::begin_with(&store, sqlx::query(insert).bind(2_i64))
            .await
            .unwrap();
        let err = tx.end::<()>(Err(crate::error::corrupt("refused"))).await;
        assert!(err.is_err());
        assert_eq!(count(&store).await, 1, "rolled back on an error");

        let (tx, _) = WriteTx::begin_with(&store, sqlx::query(insert).bind(3_i64))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(count(&store).await, 1, "rolled back when dropped open");

        // NOT NULL fails the insert after its BEGIN succeeded.
        let failed = WriteTx::begin_with(&store, sqlx::query(insert).bind(None::<i64>)).await;
        assert!(failed.is_err());
        // sqlx's own transactions (every other write) still begin.
        let tx = store.begin().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&store).await, 1);
    }
}
