//! A write transaction whose `BEGIN IMMEDIATE` travels with its first
//! statement: one hop to SQLite's thread fewer than `SqlitePool::begin`.
//!
//! Each statement sqlx runs on SQLite is a hand-off to the connection's
//! worker thread and back (about 0.06 ms on this machine, more than most
//! statements of the hot path take to run), so the finish of a chain stage
//! sends `BEGIN IMMEDIATE; <finish>` as one query ([`WriteTx::begin_with`]);
//! a claim and a task's creation do the same with their first statements.
//! sqlx does not know such a transaction is open, so this type ends it
//! itself: [`WriteTx::commit_with`] ends it with its last statement,
//! [`WriteTx::abort`] rolls it back, and a transaction
//! dropped while open or while its first query runs (its future cancelled,
//! as a claim is at shutdown) closes its connection instead
//! of returning it to the pool, which rolls the transaction back and never
//! hands an open transaction to the next writer.

use crate::SqliteStore;
use crate::error::{DbResultExt, map};
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Either, Sqlite, SqliteConnection};
use tasker_store::{StoreError, StoreResult};

/// A query of several statements, sqlx's SQLite `Query`.
pub(crate) type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

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
        query: Query<'_>,
    ) -> StoreResult<(WriteTx, Vec<SqliteRow>)> {
        let (tx, mut statements) = WriteTx::begin_with_all(store, query).await?;
        Ok((tx, statements.swap_remove(1)))
    }

    /// [`WriteTx::begin_with`] for a query of `BEGIN IMMEDIATE; ` and then
    /// several statements: the rows of each statement of the query (the
    /// `BEGIN`'s, empty, first).
    pub(crate) async fn begin_with_all(
        store: &SqliteStore,
        query: Query<'_>,
    ) -> StoreResult<(WriteTx, Vec<Vec<SqliteRow>>)> {
        let conn = store.writer.acquire().await.db()?;
        // Open until the query says otherwise: a future dropped while the
        // query runs (a claim cancelled at shutdown) may leave the `BEGIN`
        // done, so its connection must be closed, not handed to the next
        // writer with a transaction open.
        let mut tx = WriteTx { conn, open: true };
        let (statements, result) = run(&mut tx.conn, query).await;
        // The `BEGIN` is done once a second statement has started.
        tx.open = statements.len() > 1;
        match result {
            Ok(()) if tx.open => Ok((tx, statements)),
            Ok(()) => Err(crate::error::corrupt("the write transaction did not begin")),
            Err(e) => tx.abort(map(e)).await,
        }
    }

    /// The connection, for statements of the transaction run one by one.
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// Runs `query`, whose last statement is `COMMIT`, in one hop, and
    /// returns the rows of each of its statements. On an error the
    /// transaction is rolled back.
    pub(crate) async fn commit_with(
        mut self,
        query: Query<'_>,
    ) -> StoreResult<Vec<Vec<SqliteRow>>> {
        let (statements, result) = run(&mut self.conn, query).await;
        match result {
            Ok(()) => {
                self.open = false;
                Ok(statements)
            }
            Err(e) => self.abort(map(e)).await,
        }
    }

    /// Rolls back and returns `e`. A rollback that fails leaves the
    /// transaction open, and the connection is then closed when dropped.
    pub(crate) async fn abort<T>(mut self, e: StoreError) -> StoreResult<T> {
        if self.open
            && sqlx::query("ROLLBACK")
                .execute(&mut *self.conn)
                .await
                .is_ok()
        {
            self.open = false;
        }
        Err(e)
    }
}

/// Runs the statements of `query` in one hop: the rows of each statement
/// begun (a statement's list starts when the one before it is done), and
/// the error that stopped them, if any.
async fn run(
    conn: &mut SqliteConnection,
    query: Query<'_>,
) -> (Vec<Vec<SqliteRow>>, Result<(), sqlx::Error>) {
    let mut statements = vec![Vec::new()];
    // Several statements in one prepared query: only SQLite's driver runs
    // them, which is why sqlx marks `fetch_many` deprecated.
    #[allow(deprecated)]
    let mut results = query.fetch_many(conn);
    loop {
        match results.try_next().await {
            Ok(Some(Either::Left(_))) => statements.push(Vec::new()),
            Ok(Some(Either::Right(row))) => {
                if let Some(rows) = statements.last_mut() {
                    rows.push(row);
                }
            }
            Ok(None) => return (statements, Ok(())),
            Err(e) => return (statements, Err(e)),
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

    /// Whatever way a transaction ends (commit, abort on an error, its
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
        tx.commit_with(sqlx::query("COMMIT")).await.unwrap();
        assert_eq!(count(&store).await, 1, "committed");

        let (tx, _) = WriteTx::begin_with(&store, sqlx::query(insert).bind(2_i64))
            .await
            .unwrap();
        let err = tx.abort::<()>(crate::error::corrupt("refused")).await;
        assert!(err.is_err());
        assert_eq!(count(&store).await, 1, "rolled back on an error");

        let (tx, _) = WriteTx::begin_with(&store, sqlx::query(insert).bind(3_i64))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(count(&store).await, 1, "rolled back when dropped open");

        // A future dropped while its query runs, after the BEGIN and an
        // insert (a claim cancelled at shutdown): the connection is not
        // handed on with the transaction open.
        let slow = "BEGIN IMMEDIATE; INSERT INTO scratch VALUES (4); \
                    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                    WHERE x < 5000000) SELECT count(*) FROM c";
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            WriteTx::begin_with_all(&store, sqlx::query(slow)),
        )
        .await;
        assert!(cancelled.is_err(), "the slow query was still running");
        let tx = store.begin().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&store).await, 1, "rolled back when dropped mid-query");

        // NOT NULL fails the insert after its BEGIN succeeded.
        let failed = WriteTx::begin_with(&store, sqlx::query(insert).bind(None::<i64>)).await;
        assert!(failed.is_err());
        // sqlx's own transactions (every other write) still begin.
        let tx = store.begin().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&store).await, 1);
    }
}
