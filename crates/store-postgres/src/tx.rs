//! Ending a transaction: commit on success, and on an error roll back
//! *before* returning it.
//!
//! A `sqlx::Transaction` that is only dropped does not roll back then: it
//! queues the `ROLLBACK` on its connection, which sqlx sends from a task it
//! spawns when the connection goes back to the pool. Until that task runs,
//! the row locks the transaction took stay, so a claim on another
//! connection skips those steps (`SKIP LOCKED`) and an operator action on
//! the same task waits. An error PostgreSQL raised has already aborted the
//! transaction on the server, which releases its locks; an error decided
//! in Rust after a locking statement (a refused transition, a name already
//! taken, a row that does not decode) has not. So every operation that
//! locks or writes rows ends its transaction here, whatever the outcome:
//!
//! ```text
//! let mut tx = self.inner.pool.begin().await?;
//! let res = async {
//!     // statements on `&mut *tx`, `?` as usual
//!     Ok(value)
//! }
//! .await;
//! tx::end(tx, res).await
//! ```
//!
//! Checked by `a_refused_action_leaves_no_lock_behind` (tests/postgres.rs).
//! Not through here: the event sequencer (one statement; only PostgreSQL
//! can fail it), partition maintenance (its DDL fails in PostgreSQL; it
//! rolls back by hand where it gives up holding the prune lock), and the
//! plan checks of `explain.rs` and `webhooks_plan.rs`, which always roll
//! back.

use crate::error::store_err;
use sqlx::{Postgres, Transaction};
use tasker_store::StoreResult;

/// Commits when `r` is `Ok`; otherwise rolls back, waiting for the server,
/// and returns the error of `r`.
pub(crate) async fn end<T, E>(tx: Transaction<'_, Postgres>, r: Result<T, E>) -> Result<T, E>
where
    E: From<sqlx::Error>,
{
    end_with(tx, r, E::from).await
}

/// [`end`] for the paths that report [`tasker_store::StoreError`] directly.
pub(crate) async fn end_store<T>(
    tx: Transaction<'_, Postgres>,
    r: StoreResult<T>,
) -> StoreResult<T> {
    end_with(tx, r, store_err).await
}

/// Both of the above: `commit_err` maps a failed commit to `E`.
async fn end_with<T, E>(
    tx: Transaction<'_, Postgres>,
    r: Result<T, E>,
    commit_err: impl FnOnce(sqlx::Error) -> E,
) -> Result<T, E> {
    match r {
        Ok(v) => {
            tx.commit().await.map_err(commit_err)?;
            Ok(v)
        }
        Err(e) => {
            // The error of `r` is the one worth reporting; a failed rollback
            // means the connection is gone, and the server ends the
            // transaction with it.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}
