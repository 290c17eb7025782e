//! Pause / resume a task (docs/FLOW_CONTROL.md).
//!
//! One write transaction flips `steps.paused` for the task's steps, which
//! takes them out of (or back into) the partial ready index the claim scans,
//! then sets the task's `paused_at` and writes a transition and its event
//! (`task.paused` / `task.resumed`). Steps already claimed keep running and
//! finish normally; no trigger fires (none watches `paused`), so counters
//! and the finaliser are untouched.

use crate::SqliteStore;
use crate::codec::{json_text, micros};
use crate::effects::Events;
use crate::error::DbResultExt;
use crate::tasks::{get_in, status_in};
use chrono::{DateTime, Utc};
use tasker_store::pause::{action_metadata, check_pause, check_resume};
use tasker_store::{StoreResult, TaskRow};
use uuid::Uuid;

/// Pauses (`pause = true`) or resumes a task.
pub(crate) async fn set_paused(
    store: &SqliteStore,
    id: Uuid,
    pause: bool,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> StoreResult<TaskRow> {
    let mut tx = store.begin().await?;
    let status = status_in(&mut tx, id).await?;
    let paused_at: Option<i64> = sqlx::query_scalar("SELECT paused_at FROM tasks WHERE id = ?1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .db()?;
    let paused = paused_at.is_some();
    if pause {
        check_pause(id, status, paused)?;
    } else {
        check_resume(id, paused)?;
    }
    // How many steps are claimable now once resumed (for the wake-up).
    let ready: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM steps WHERE task_id = ?1 AND ready_at <= ?2")
            .bind(id)
            .bind(micros(now))
            .fetch_one(&mut *tx)
            .await
            .db()?;
    // Resuming releases the steps unless the task's namespace or template
    // is paused too (then they wait for that resume).
    let held = pause || crate::flow_pause::holds_task(&mut tx, id).await?;
    // A resumed step that waited for its template's task slot goes back to
    // the ready index: the next claim decides again (no release would
    // unpark it while nothing of the template runs).
    sqlx::query(
        "UPDATE steps SET paused = ?2,
             parked = CASE WHEN NOT ?2 AND flow_wait = 'task_slot' THEN 0 ELSE parked END,
             flow_wait = CASE WHEN NOT ?2 AND flow_wait = 'task_slot' THEN NULL ELSE flow_wait END
         WHERE task_id = ?1",
    )
    .bind(id)
    .bind(held)
    .execute(&mut *tx)
    .await
    .db()?;
    sqlx::query("UPDATE tasks SET paused_at = ?2, updated_at = ?3 WHERE id = ?1")
        .bind(id)
        .bind(pause.then_some(micros(now)))
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .db()?;
    let action = if pause { "pause" } else { "resume" };
    // Its event, which is its transition (from and to the same status: the
    // status triggers write the others, and none of them fires for this).
    sqlx::query(
        "INSERT INTO events (type, task_id, step_id, namespace, created_at, payload,
                             from_state, to_state, metadata)
         SELECT ?2, id, NULL, namespace, ?3,
                json_object('name', name, 'version', version, 'from', ?5, 'to', ?5,
                            'by', ?4),
                ?5, ?5, ?6
         FROM tasks WHERE id = ?1",
    )
    .bind(id)
    .bind(if pause { "task.paused" } else { "task.resumed" })
    .bind(micros(now))
    .bind(by)
    .bind(status.as_str())
    .bind(json_text(&action_metadata(action, by)))
    .execute(&mut *tx)
    .await
    .db()?;
    let row = get_in(&mut *tx, id).await?;
    tx.commit().await.db()?;
    store.emit(Events {
        work_available: !held && ready > 0,
        changed: [id].into(),
        ..Default::default()
    });
    Ok(row)
}
