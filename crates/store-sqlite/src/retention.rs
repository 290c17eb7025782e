//! Retention: selecting and deleting finished tasks (docs/STORAGE.md,
//! "History, retention and maintenance"). One writer at a time is SQLite's
//! rule already, so pruners in several processes take turns by themselves;
//! a batch is one short write transaction between the engine's own.

use crate::SqliteStore;
use crate::codec::{id_list, micros};
use crate::error::DbResultExt;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use tasker_store::{MaintenanceRun, PruneQuery, StorageHealth, StoreResult};
use uuid::Uuid;

/// The WHERE clause of a selection: `?1` the cutoff, `?2` the namespace or
/// NULL, `?3` a JSON array of excluded namespaces. Namespaces only filter
/// the range of `tasks_finished_idx` the cutoff selects. "Finished" is
/// written as the index's predicate (`status NOT IN ('pending',
/// 'in_progress')`, every other status is final) so that SQLite sees the
/// index applies.
const SELECTION: &str = "status NOT IN ('pending', 'in_progress') \
     AND completed_at < ?1 AND (?2 IS NULL OR namespace = ?2) \
     AND namespace NOT IN (SELECT value FROM json_each(?3))";

fn except(q: &PruneQuery) -> String {
    serde_json::Value::from(q.except_namespaces.clone()).to_string()
}

pub(crate) async fn candidates(pool: &SqlitePool, q: &PruneQuery) -> StoreResult<Vec<Uuid>> {
    let limit = if q.limit == 0 { -1 } else { i64::from(q.limit) };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM tasks INDEXED BY tasks_finished_idx WHERE {SELECTION} \
         ORDER BY completed_at, id LIMIT ?4 + 0"
    )))
    .bind(micros(q.finished_before))
    .bind(q.namespace.as_deref())
    .bind(except(q))
    .bind(limit)
    .fetch_all(pool)
    .await
    .db()
}

pub(crate) async fn count(pool: &SqlitePool, q: &PruneQuery) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM tasks INDEXED BY tasks_finished_idx WHERE {SELECTION}"
    )))
    .bind(micros(q.finished_before))
    .bind(q.namespace.as_deref())
    .bind(except(q))
    .fetch_one(pool)
    .await
    .db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn delete(
    store: &SqliteStore,
    ids: &[Uuid],
    finished_before: DateTime<Utc>,
) -> StoreResult<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = store.begin().await?;
    // Under the write lock: only tasks still finished (a retry since the
    // selection reopened the others, and they stay).
    let doomed: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tasks WHERE id IN (SELECT unhex(value) FROM json_each(?1)) \
         AND status NOT IN ('pending', 'in_progress') AND completed_at < ?2",
    )
    .bind(id_list(ids))
    .bind(micros(finished_before))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    if doomed.is_empty() {
        return Ok(Vec::new());
    }
    let list = id_list(&doomed);
    // Children first, each through an index on the task or step id, so the
    // cascading foreign keys find nothing left to do. The task's rows in
    // `events` are its transitions and their events: those the event pruner
    // has passed go with it; the rest are still in the feed, so they stay
    // as plain events (with their namespace, which a step's row took from
    // the task), and the event pruner deletes them in their turn. A row
    // with no event type is only a transition, and goes (never the newest
    // row, whose id would be handed out again: src/events_outbox.rs).
    const OWN_ROWS: &str = "((step_id IS NULL AND task_id IN (SELECT unhex(value) FROM json_each(?1))) \
         OR step_id IN (SELECT id FROM steps WHERE task_id IN (SELECT unhex(value) FROM json_each(?1))))";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE events SET from_state = NULL, to_state = NULL, metadata = NULL,
             namespace = COALESCE(namespace, (SELECT t.namespace FROM tasks t WHERE t.id = events.task_id))
         WHERE {OWN_ROWS} AND to_state IS NOT NULL AND type IS NOT NULL
           AND id > (SELECT floor FROM events_floor WHERE id = 1)"
    )))
    .bind(&list)
    .execute(&mut *tx)
    .await
    .db()?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM events WHERE {OWN_ROWS} AND to_state IS NOT NULL
           AND id < (SELECT max(id) FROM events)"
    )))
    .bind(&list)
    .execute(&mut *tx)
    .await
    .db()?;
    for sql in [
        "DELETE FROM step_transitions WHERE step_id IN \
             (SELECT id FROM steps WHERE task_id IN (SELECT unhex(value) FROM json_each(?1)))",
        "DELETE FROM task_transitions WHERE task_id IN (SELECT unhex(value) FROM json_each(?1))",
        "DELETE FROM step_edges WHERE task_id IN (SELECT unhex(value) FROM json_each(?1))",
        "DELETE FROM steps WHERE task_id IN (SELECT unhex(value) FROM json_each(?1))",
        "DELETE FROM tasks WHERE id IN (SELECT unhex(value) FROM json_each(?1))",
    ] {
        sqlx::query(sql).bind(&list).execute(&mut *tx).await.db()?;
    }
    tx.commit().await.db()?;
    Ok(doomed)
}

/// SQLite has no dead row versions to vacuum (a write replaces the row in
/// place) and no autovacuum to be off; its upkeep is the WAL, which a long
/// reader can keep from being checkpointed. Nothing to warn about here.
pub(crate) async fn health(pool: &SqlitePool) -> StoreResult<StorageHealth> {
    let ready: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM steps WHERE ready_at IS NOT NULL LIMIT 100000)",
    )
    .fetch_one(pool)
    .await
    .db()?;
    Ok(StorageHealth {
        autovacuum: None,
        ready_index_bytes: None,
        ready_steps: u64::try_from(ready).unwrap_or(0),
        warnings: Vec::new(),
    })
}

/// Checkpoints the WAL into the database file and truncates it, on the
/// writer connection (between the engine's write transactions).
pub(crate) async fn upkeep(store: &SqliteStore) -> StoreResult<Vec<MaintenanceRun>> {
    let started = std::time::Instant::now();
    let mut conn = store.writer.acquire().await.db()?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(vec![MaintenanceRun {
        target: "database".into(),
        action: "PRAGMA wal_checkpoint(TRUNCATE)".into(),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }])
}
