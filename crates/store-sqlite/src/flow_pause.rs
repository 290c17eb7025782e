//! Pausing a whole namespace or template (docs/FLOW_CONTROL.md). One write
//! transaction records the pause and flips `steps.paused` for the scope's
//! open tasks; SQLite's single writer orders it against task creation, so
//! a task created after the pause commits starts paused (`paused_in`).

use crate::SqliteStore;
use crate::codec::{micros, time};
use crate::effects::Events;
use crate::error::DbResultExt;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};
use tasker_store::flow_pause::{already_paused, not_paused};
use tasker_store::{FlowPauseRow, FlowScope, NewTask, StoreResult};

fn row(r: &sqlx::sqlite::SqliteRow) -> StoreResult<FlowPauseRow> {
    let name: String = r.try_get("name").db()?;
    Ok(FlowPauseRow {
        scope: FlowScope {
            namespace: r.try_get("namespace").db()?,
            name: (!name.is_empty()).then_some(name),
        },
        paused_at: time(r.try_get("paused_at").db()?)?,
        paused_by: r.try_get("paused_by").db()?,
        reason: r.try_get("reason").db()?,
    })
}

async fn find(conn: &mut SqliteConnection, scope: &FlowScope) -> StoreResult<Option<FlowPauseRow>> {
    let r = sqlx::query(
        "SELECT namespace, name, paused_at, paused_by, reason FROM flow_pauses
         WHERE namespace = ?1 AND name = ?2",
    )
    .bind(&scope.namespace)
    .bind(scope.name_key())
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    r.as_ref().map(row).transpose()
}

pub(crate) async fn pause(
    store: &SqliteStore,
    scope: &FlowScope,
    now: DateTime<Utc>,
    by: Option<&str>,
    reason: Option<&str>,
) -> StoreResult<FlowPauseRow> {
    let mut tx = store.begin().await?;
    if find(&mut tx, scope).await?.is_some() {
        return Err(already_paused(scope));
    }
    sqlx::query(
        "INSERT INTO flow_pauses (namespace, name, paused_at, paused_by, reason)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(&scope.namespace)
    .bind(scope.name_key())
    .bind(micros(now))
    .bind(by)
    .bind(reason)
    .execute(&mut *tx)
    .await
    .db()?;
    sqlx::query(
        "UPDATE steps SET paused = 1 WHERE paused = 0 AND task_id IN (
             SELECT id FROM tasks WHERE namespace = ?1 AND (?2 = '' OR name = ?2)
               AND status IN ('pending', 'in_progress', 'error'))",
    )
    .bind(&scope.namespace)
    .bind(scope.name_key())
    .execute(&mut *tx)
    .await
    .db()?;
    let out = find(&mut tx, scope)
        .await?
        .ok_or_else(|| crate::error::corrupt("flow pause vanished"))?;
    tx.commit().await.db()?;
    Ok(out)
}

pub(crate) async fn resume(store: &SqliteStore, scope: &FlowScope) -> StoreResult<FlowPauseRow> {
    let mut tx = store.begin().await?;
    let Some(found) = find(&mut tx, scope).await? else {
        return Err(not_paused(scope));
    };
    sqlx::query("DELETE FROM flow_pauses WHERE namespace = ?1 AND name = ?2")
        .bind(&scope.namespace)
        .bind(scope.name_key())
        .execute(&mut *tx)
        .await
        .db()?;
    // Only steps no other pause holds: the task's own, or another scope's.
    let released = sqlx::query(
        "UPDATE steps SET paused = 0,
             parked = CASE WHEN flow_wait = 'task_slot' THEN 0 ELSE parked END,
             flow_wait = CASE WHEN flow_wait = 'task_slot' THEN NULL ELSE flow_wait END
         WHERE paused = 1 AND task_id IN (
             SELECT t.id FROM tasks t WHERE t.namespace = ?1 AND (?2 = '' OR t.name = ?2)
               AND t.status IN ('pending', 'in_progress', 'error') AND t.paused_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM flow_pauses f
                               WHERE f.namespace = t.namespace AND f.name IN ('', t.name)))",
    )
    .bind(&scope.namespace)
    .bind(scope.name_key())
    .execute(&mut *tx)
    .await
    .db()?
    .rows_affected();
    tx.commit().await.db()?;
    store.emit(Events {
        work_available: released > 0,
        ..Default::default()
    });
    Ok(found)
}

pub(crate) async fn list(store: &SqliteStore) -> StoreResult<Vec<FlowPauseRow>> {
    let rows = sqlx::query(
        "SELECT namespace, name, paused_at, paused_by, reason FROM flow_pauses
         ORDER BY namespace, name",
    )
    .fetch_all(&store.reader)
    .await
    .db()?;
    rows.iter().map(row).collect()
}

/// Whether a pause of its namespace or template holds task `id` (inside a
/// write transaction).
pub(crate) async fn holds_task(conn: &mut SqliteConnection, id: uuid::Uuid) -> StoreResult<bool> {
    let held: i64 = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks t JOIN flow_pauses f
                        ON f.namespace = t.namespace AND f.name IN ('', t.name)
                        WHERE t.id = ?1)",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    Ok(held != 0)
}

/// New tasks of a paused scope start with their steps paused (called in
/// the creating transaction, after the insert). Costs one probe of the
/// (small) pause table when nothing is paused.
pub(crate) async fn pause_new(conn: &mut SqliteConnection, tasks: &[NewTask]) -> StoreResult<()> {
    let pauses: Vec<(String, String)> = sqlx::query_as(PAUSES_SQL)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    pause_held(conn, tasks, &pauses).await
}

/// Every pause: `namespace, name` (an empty name pauses the namespace).
pub(crate) const PAUSES_SQL: &str = "SELECT namespace, name FROM flow_pauses";

/// [`pause_new`] with the pauses already read (`PAUSES_SQL`, in the
/// creating transaction).
pub(crate) async fn pause_held(
    conn: &mut SqliteConnection,
    tasks: &[NewTask],
    pauses: &[(String, String)],
) -> StoreResult<()> {
    if pauses.is_empty() {
        return Ok(());
    }
    let held: Vec<&uuid::Uuid> = tasks
        .iter()
        .filter(|t| {
            pauses
                .iter()
                .any(|(ns, n)| *ns == t.namespace && (n.is_empty() || *n == t.name))
        })
        .map(|t| &t.id)
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE steps SET paused = 1
         WHERE task_id IN (SELECT unhex(value) FROM json_each(?1))",
    )
    .bind(crate::codec::id_list(held))
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}
