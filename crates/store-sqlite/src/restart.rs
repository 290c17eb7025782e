//! Restart a task from a step (docs/FLOW_CONTROL.md).
//!
//! One write transaction. The triggers keep the counters and write the
//! transitions: the downstream steps are reset first (the task is still
//! finished or in error with nothing live, so the finaliser stays quiet),
//! then the chosen step, made ready now (a task in error goes back to
//! pending through the finaliser as it becomes live), then a finished task
//! is set back to pending. Every transition written since the start is
//! then stamped with the restart's metadata.

use crate::SqliteStore;
use crate::codec::{id_list, json_text, micros};
use crate::effects::Events;
use crate::error::DbResultExt;
use crate::tasks::{get_in, status_in};
use chrono::{DateTime, Utc};
use tasker_core::TaskState;
use tasker_store::restart::{check_restart, metadata, parents_not_done};
use tasker_store::{StoreError, StoreResult, TaskRow};
use uuid::Uuid;

pub(crate) async fn restart(
    store: &SqliteStore,
    id: Uuid,
    step_id: Uuid,
    now: DateTime<Utc>,
    by: Option<&str>,
    reason: Option<&str>,
) -> StoreResult<TaskRow> {
    let mut tx = store.begin().await?;
    let status = status_in(&mut tx, id).await?;
    check_restart(status)?;
    let name: String = sqlx::query_scalar("SELECT name FROM steps WHERE id = ?1 AND task_id = ?2")
        .bind(step_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .db()?
        .ok_or(StoreError::NotFound {
            entity: "step",
            id: step_id,
        })?;
    let waiting: Vec<String> = sqlx::query_scalar(
        "SELECT p.name FROM step_edges e JOIN steps p ON p.id = e.parent_id
         WHERE e.child_id = ?1 AND p.status NOT IN ('complete', 'resolved_manually')
         ORDER BY p.position",
    )
    .bind(step_id)
    .fetch_all(&mut *tx)
    .await
    .db()?;
    if !waiting.is_empty() {
        return Err(parents_not_done(&name, &waiting));
    }
    let below: Vec<Uuid> = sqlx::query_scalar(
        "WITH RECURSIVE r(id) AS (
             SELECT child_id FROM step_edges WHERE parent_id = ?1
             UNION SELECT e.child_id FROM step_edges e JOIN r ON e.parent_id = r.id)
         SELECT id FROM r",
    )
    .bind(step_id)
    .fetch_all(&mut *tx)
    .await
    .db()?;
    // The transitions this restart writes are the rows of `events` above
    // this mark (src/attribution.rs).
    let mark: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
        .fetch_one(&mut *tx)
        .await
        .db()?;
    let t = micros(now);
    const RESET: &str = "status = 'pending', results = NULL, last_error = NULL,
         completed_at = NULL, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
         max_attempts = attempts + retry_limit, updated_at = ?2";
    if !below.is_empty() {
        let ids = id_list(&below);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE steps SET {RESET}, ready_at = NULL
             WHERE id IN (SELECT unhex(value) FROM json_each(?1))"
        )))
        .bind(&ids)
        .bind(t)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE steps SET {RESET}, ready_at = ?2, remaining_parents = 0 WHERE id = ?1"
    )))
    .bind(step_id)
    .bind(t)
    .execute(&mut *tx)
    .await
    .db()?;
    if !below.is_empty() {
        // Once every reset step is pending: the parents each waits for.
        sqlx::query(
            "UPDATE steps SET remaining_parents = (
                 SELECT COUNT(*) FROM step_edges e JOIN steps p ON p.id = e.parent_id
                 WHERE e.child_id = steps.id AND p.status NOT IN ('complete', 'resolved_manually'))
             WHERE id IN (SELECT unhex(value) FROM json_each(?1))",
        )
        .bind(id_list(&below))
        .execute(&mut *tx)
        .await
        .db()?;
    }
    if status != TaskState::Error {
        sqlx::query(
            "UPDATE tasks SET status = 'pending', completed_at = NULL, updated_at = ?2
             WHERE id = ?1",
        )
        .bind(id)
        .bind(t)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    let patch = json_text(&metadata(&name, by, reason));
    sqlx::query(
        "UPDATE events SET metadata = json_patch(metadata, ?1)
         WHERE id > ?2 AND to_state IS NOT NULL",
    )
    .bind(&patch)
    .bind(mark)
    .execute(&mut *tx)
    .await
    .db()?;
    let row = get_in(&mut *tx, id).await?;
    if row.status != TaskState::Pending {
        return Err(StoreError::Internal(format!(
            "task {id} is {} after a restart",
            row.status
        )));
    }
    tx.commit().await.db()?;
    store.emit(Events {
        work_available: true,
        changed: [id].into(),
        ..Default::default()
    });
    Ok(row)
}
