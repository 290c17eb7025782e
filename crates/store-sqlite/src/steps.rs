//! Steps: reads, and the operator's manual operations (update, resolve,
//! cancel, retry).

use crate::SqliteStore;
use crate::attribution::Marks;
use crate::codec::{
    json_text, micros, step_cols, step_row, step_state, task_state, transition_row,
};
use crate::effects::{Events, children_ready, task_status};
use crate::error::DbResultExt;
use crate::tasks::{step_exists, task_exists};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::collections::HashMap;
use tasker_core::{StepState, TaskState};
use tasker_store::{StepRow, StepUpdate, StoreError, StoreResult, TransitionRow};
use uuid::Uuid;

/// One step with its parents' names, through any executor.
async fn get_in(conn: &mut SqliteConnection, id: Uuid) -> StoreResult<StepRow> {
    let row = sqlx::query(concat!(
        "SELECT ",
        step_cols!(),
        " FROM steps WHERE id = ?1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    let Some(row) = row else {
        return Err(StoreError::NotFound { entity: "step", id });
    };
    let parents: Vec<String> = sqlx::query_scalar(
        "SELECT p.name FROM step_edges e JOIN steps p ON p.id = e.parent_id
         WHERE e.child_id = ?1 ORDER BY p.position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    step_row(&row, parents)
}

pub(crate) async fn get(pool: &SqlitePool, id: Uuid) -> StoreResult<StepRow> {
    let mut conn = pool.acquire().await.db()?;
    get_in(&mut conn, id).await
}

/// Most ids bound in one `IN (...)` (SQLite's default limit is 32766 variables).
const IN_CHUNK: usize = 500;

/// The steps of many tasks, grouped by task: two statements per chunk of
/// [`IN_CHUNK`] task ids, however many tasks and steps.
pub(crate) async fn list_many(
    pool: &SqlitePool,
    task_ids: &[Uuid],
) -> StoreResult<HashMap<Uuid, Vec<StepRow>>> {
    let mut out: HashMap<Uuid, Vec<StepRow>> = HashMap::new();
    for chunk in task_ids.chunks(IN_CHUNK) {
        // Placeholders only; the ids are bound, never spliced into the text.
        let marks = (1..=chunk.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {} FROM steps WHERE task_id IN ({marks}) ORDER BY task_id, position",
            step_cols!()
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(pool).await.db()?;
        let sql = format!(
            "SELECT e.child_id, p.name FROM steps c
             JOIN step_edges e ON e.child_id = c.id
             JOIN steps p ON p.id = e.parent_id
             WHERE c.task_id IN ({marks}) ORDER BY p.position"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        let edges = q.fetch_all(pool).await.db()?;
        let mut parents: HashMap<Uuid, Vec<String>> = HashMap::new();
        for e in &edges {
            parents
                .entry(e.try_get(0).db()?)
                .or_default()
                .push(e.try_get(1).db()?);
        }
        for r in &rows {
            let id: Uuid = r.try_get("id").db()?;
            let step = step_row(r, parents.remove(&id).unwrap_or_default())?;
            out.entry(step.task_id).or_default().push(step);
        }
    }
    Ok(out)
}

pub(crate) async fn list(pool: &SqlitePool, task_id: Uuid) -> StoreResult<Vec<StepRow>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        step_cols!(),
        " FROM steps WHERE task_id = ?1 ORDER BY position"
    ))
    .bind(task_id)
    .fetch_all(pool)
    .await
    .db()?;
    if rows.is_empty() {
        return if task_exists(pool, task_id).await? {
            Ok(Vec::new())
        } else {
            Err(StoreError::NotFound {
                entity: "task",
                id: task_id,
            })
        };
    }
    let edges = sqlx::query(
        "SELECT e.child_id, p.name FROM steps c
         JOIN step_edges e ON e.child_id = c.id
         JOIN steps p ON p.id = e.parent_id
         WHERE c.task_id = ?1 ORDER BY p.position",
    )
    .bind(task_id)
    .fetch_all(pool)
    .await
    .db()?;
    let mut parents: HashMap<Uuid, Vec<String>> = HashMap::new();
    for e in &edges {
        parents
            .entry(e.try_get(0).db()?)
            .or_default()
            .push(e.try_get(1).db()?);
    }
    rows.iter()
        .map(|r| {
            let id: Uuid = r.try_get("id").db()?;
            step_row(r, parents.remove(&id).unwrap_or_default())
        })
        .collect()
}

/// A step's transitions: the rows of `step_transitions` (written before
/// migration `20261205000000_transitions_are_events.sql`, so older), then
/// its rows in `events` that are transitions.
pub(crate) async fn transitions(pool: &SqlitePool, id: Uuid) -> StoreResult<Vec<TransitionRow>> {
    let rows = sqlx::query(
        "SELECT id, step_id AS entity_id, from_state, to_state, created_at, metadata, 0 AS part
         FROM step_transitions WHERE step_id = ?1
         UNION ALL
         SELECT id, step_id, from_state, to_state, created_at, metadata, 1
         FROM events WHERE step_id = ?1 AND to_state IS NOT NULL
         ORDER BY part, id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .db()?;
    if rows.is_empty() && !step_exists(pool, id).await? {
        return Err(StoreError::NotFound { entity: "step", id });
    }
    rows.iter().map(transition_row).collect()
}

/// What the manual operations need to know about a step and its task.
struct Current {
    task_id: Uuid,
    status: StepState,
    attempts: i64,
    retryable: bool,
    task_status: TaskState,
}

async fn current(conn: &mut SqliteConnection, id: Uuid) -> StoreResult<Current> {
    let r = sqlx::query(
        "SELECT s.task_id, s.status, s.attempts, s.retryable, t.status
         FROM steps s JOIN tasks t ON t.id = s.task_id WHERE s.id = ?1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    let Some(r) = r else {
        return Err(StoreError::NotFound { entity: "step", id });
    };
    Ok(Current {
        task_id: r.try_get(0).db()?,
        status: step_state(r.try_get(1).db()?)?,
        attempts: r.try_get(2).db()?,
        retryable: r.try_get(3).db()?,
        task_status: task_state(r.try_get(4).db()?)?,
    })
}

/// Manual changes to the steps of a finished task would contradict its state.
fn ensure_task_open(c: &Current) -> StoreResult<()> {
    if c.task_status.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "task {} is {}: its steps can no longer change",
            c.task_id, c.task_status
        )));
    }
    Ok(())
}

pub(crate) async fn update(
    store: &SqliteStore,
    id: Uuid,
    update: StepUpdate,
    now: DateTime<Utc>,
) -> StoreResult<StepRow> {
    let mut tx = store.begin().await?;
    let c = current(&mut tx, id).await?;
    if !matches!(c.status, StepState::Pending | StepState::Error) {
        return Err(StoreError::Conflict(format!(
            "step {id} is {}: only pending or error steps can be edited",
            c.status
        )));
    }
    if let Some(limit) = update.retry_limit {
        if limit < 1 {
            return Err(StoreError::Conflict(format!(
                "retry limit {limit} must be at least 1"
            )));
        }
        // A pending step keeps at least the attempt it is waiting for; an
        // error step's budget is refilled from the limit when it is retried.
        let max_attempts = (c.status == StepState::Pending && c.retryable)
            .then(|| i64::from(limit).max(c.attempts + 1));
        sqlx::query(
            "UPDATE steps SET retry_limit = ?2, max_attempts = COALESCE(?3, max_attempts), updated_at = ?4
             WHERE id = ?1",
        )
        .bind(id)
        .bind(limit)
        .bind(max_attempts)
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .db()?;
    }
    if let Some(inputs) = &update.inputs {
        sqlx::query("UPDATE steps SET inputs = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id)
            .bind(json_text(inputs))
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .db()?;
    }
    let row = get_in(&mut tx, id).await?;
    tx.commit().await.db()?;
    store.emit(Events {
        changed: [c.task_id].into(),
        ..Default::default()
    });
    Ok(row)
}

/// Reads the step back and what the change did to its task, commits, and
/// announces it.
async fn finish_manual(
    store: &SqliteStore,
    mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    id: Uuid,
    c: &Current,
    work_available: bool,
    marks: Option<Marks<'_>>,
) -> StoreResult<StepRow> {
    if let Some(m) = marks {
        m.stamp(&mut tx).await?;
    }
    let row = get_in(&mut tx, id).await?;
    let after = task_status(&mut tx, c.task_id).await?;
    tx.commit().await.db()?;
    let finished = match after {
        Some(s) if s != c.task_status && tasker_store::is_final(s) => vec![c.task_id],
        _ => Vec::new(),
    };
    // A task an operator brought back to pending has work to do.
    let revived = after == Some(TaskState::Pending) && c.task_status == TaskState::Error;
    store.emit(Events {
        work_available: work_available || revived,
        changed: [c.task_id].into(),
        finished,
    });
    Ok(row)
}

pub(crate) async fn resolve(
    store: &SqliteStore,
    id: Uuid,
    results: Value,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> StoreResult<StepRow> {
    let mut tx = store.begin().await?;
    let marks = Marks::take(&mut tx, by).await?;
    let c = current(&mut tx, id).await?;
    c.status.check_transition(StepState::ResolvedManually)?;
    ensure_task_open(&c)?;
    // Counts as a success: the triggers unblock the children and settle the task.
    sqlx::query(
        "UPDATE steps SET status = 'resolved_manually', results = ?2, ready_at = NULL,
                completed_at = ?3, updated_at = ?3
         WHERE id = ?1",
    )
    .bind(id)
    .bind(json_text(&results))
    .bind(micros(now))
    .execute(&mut *tx)
    .await
    .db()?;
    let unblocked = children_ready(&mut tx, &[id]).await?;
    finish_manual(store, tx, id, &c, !unblocked.is_empty(), marks).await
}

pub(crate) async fn cancel(
    store: &SqliteStore,
    id: Uuid,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> StoreResult<StepRow> {
    let mut tx = store.begin().await?;
    let marks = Marks::take(&mut tx, by).await?;
    let c = current(&mut tx, id).await?;
    c.status.check_transition(StepState::Cancelled)?;
    sqlx::query(
        "UPDATE steps SET status = 'cancelled', ready_at = NULL, lease_owner = NULL,
                lease_token = NULL, lease_expires_at = NULL, completed_at = ?2, updated_at = ?2
         WHERE id = ?1",
    )
    .bind(id)
    .bind(micros(now))
    .execute(&mut *tx)
    .await
    .db()?;
    finish_manual(store, tx, id, &c, false, marks).await
}

pub(crate) async fn retry(
    store: &SqliteStore,
    id: Uuid,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> StoreResult<StepRow> {
    let mut tx = store.begin().await?;
    let marks = Marks::take(&mut tx, by).await?;
    let c = current(&mut tx, id).await?;
    c.status.check_transition(StepState::Pending)?;
    if !matches!(
        c.task_status,
        TaskState::Error | TaskState::Pending | TaskState::InProgress
    ) {
        c.task_status.check_transition(TaskState::Pending)?;
    }
    let ready: bool = sqlx::query_scalar(
        "UPDATE steps SET status = 'pending',
                max_attempts = attempts + MAX(retry_limit, 1),
                ready_at = CASE WHEN remaining_parents = 0 THEN ?2 ELSE NULL END,
                completed_at = NULL, updated_at = ?2
         WHERE id = ?1
         RETURNING ready_at IS NOT NULL",
    )
    .bind(id)
    .bind(micros(now))
    .fetch_one(&mut *tx)
    .await
    .db()?;
    // The triggers revive a task in error once the step is ready; make sure
    // it is pending even when the step still waits.
    sqlx::query(
        "UPDATE tasks SET status = 'pending', completed_at = NULL, updated_at = ?2
         WHERE id = ?1 AND status = 'error'",
    )
    .bind(c.task_id)
    .bind(micros(now))
    .execute(&mut *tx)
    .await
    .db()?;
    finish_manual(store, tx, id, &c, ready, marks).await
}
