//! What a write caused, read back inside its transaction.
//!
//! The schema's triggers (`migrations/*_triggers.sql`) write the transition
//! rows, unblock children, keep the task counters and finalise tasks inside
//! the statement that changed a step. The writer then only needs to learn
//! what happened, for its report and its events.
//!
//! The `tasks_settle` trigger is the finaliser rule stated once in
//! `tasker_core::execution` (module docs, "The finaliser rule") and pinned on
//! both stores by the conformance test `finaliser::finaliser_table`. (The
//! migration's own comment is left as it was: editing an applied migration,
//! even a comment, changes its checksum and existing databases would refuse it.)

use crate::codec::{id_list, task_state};
use crate::error::DbResultExt;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use std::collections::BTreeSet;
use tasker_core::TaskState;
use tasker_store::StoreResult;
use uuid::Uuid;

/// The tasks among the parameter `$ids` (a JSON list of ids) that are in a
/// final state: `id, status`.
macro_rules! finished_among {
    ($ids:literal) => {
        concat!(
            "SELECT id, status FROM tasks \
             WHERE id IN (SELECT unhex(value) FROM json_each(",
            $ids,
            ")) \
               AND +status IN ('complete', 'error', 'cancelled', 'resolved_manually')"
        )
    };
}

/// Where the children of the parameter `$parents` (a JSON list of parent
/// ids) that are ready now are found (`c`, once per edge).
macro_rules! ready_children_of {
    ($parents:literal) => {
        concat!(
            "FROM step_edges e JOIN steps c ON c.id = e.child_id \
             WHERE e.parent_id IN (SELECT unhex(value) FROM json_each(",
            $parents,
            ")) \
               AND c.ready_at IS NOT NULL"
        )
    };
}

/// What a committed write announces.
#[derive(Debug, Default)]
pub(crate) struct Events {
    /// Steps became claimable now.
    pub work_available: bool,
    /// Tasks whose steps changed.
    pub changed: BTreeSet<Uuid>,
    /// Tasks that reached a final state.
    pub finished: Vec<Uuid>,
}

/// Tasks among `ids` now in a final state. Called after a write that only
/// touched open tasks (its steps were running), these are the tasks it
/// finished.
pub(crate) async fn finished_among(
    conn: &mut SqliteConnection,
    ids: &BTreeSet<Uuid>,
) -> StoreResult<Vec<(Uuid, TaskState)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(finished_among!("?1"))
        .bind(id_list(ids))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    finished_rows(&rows)
}

/// The rows of [`finished_among!`] as `(task, final state)`.
pub(crate) fn finished_rows(rows: &[SqliteRow]) -> StoreResult<Vec<(Uuid, TaskState)>> {
    rows.iter()
        .map(|r| Ok((r.try_get(0).db()?, task_state(r.try_get(1).db()?)?)))
        .collect()
}

/// The children of ?1 (a JSON list of parent ids) that are ready now.
pub(crate) const CHILDREN_READY_SQL: &str =
    concat!("SELECT DISTINCT c.id ", ready_children_of!("?1"));

/// The children of `parents` that are ready. Called right after those
/// parents became done, these are the children that write unblocked: a
/// child with an unfinished parent is never ready, so none was before.
pub(crate) async fn children_ready(
    conn: &mut SqliteConnection,
    parents: &[Uuid],
) -> StoreResult<Vec<Uuid>> {
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(CHILDREN_READY_SQL)
        .bind(id_list(parents))
        .fetch_all(&mut *conn)
        .await
        .db()
}

/// The status of a task, inside a transaction.
pub(crate) async fn task_status(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> StoreResult<Option<TaskState>> {
    let s: Option<String> = sqlx::query_scalar("SELECT status FROM tasks WHERE id = ?1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    s.map(|s| task_state(&s)).transpose()
}
