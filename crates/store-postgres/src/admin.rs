//! Operator actions: edits, cancel, retry, manual resolution.
//!
//! They follow the same lock order as the hot path (steps in id order, then
//! the task) so they can only deadlock with it in rare interleavings, which
//! PostgreSQL detects and the retry loop absorbs. Actions that rewrite many
//! steps of a task recount its counters from the steps instead of tracking
//! deltas.

use crate::PgStore;
use crate::decode::{STEP_COLS, TASK_COLS, step_row, step_state, task_row, task_state};
use crate::error::TxError;
use crate::events::{Emit, notify};
use crate::settle::{
    Delta, TaskCounters, TaskWrite, finaliser_path, lock_tasks, recount, settle, write_tasks,
};
use crate::tx;
use crate::work::unblock_children;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgConnection, Row};
use std::collections::BTreeMap;
use tasker_core::{InvalidTransition, StepState, TaskState};
use tasker_store::{StepRow, StepUpdate, StoreError, TaskRow, TaskUpdate};
use uuid::Uuid;

/// A step as read under its row lock.
struct LockedStep {
    task_id: Uuid,
    status: StepState,
    /// Counted in the task's `steps_live` (in progress, or pending and ready).
    live: bool,
    /// The task's status (read without locking the task: it is locked
    /// later, after the step, when it has to change).
    task_status: TaskState,
    /// Claims so far (the attempt its transition names).
    attempts: i32,
    /// The worker holding its lease, if it is running.
    lease_owner: Option<String>,
}

impl LockedStep {
    /// The metadata of an operator's change to this step: the attempt and,
    /// when it was running, the worker that held its lease (what the hot
    /// path and the SQLite store record for every change, and what the
    /// step's event payload is built from), with `extra`'s members.
    fn metadata(&self, extra: Value) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("attempt".into(), json!(self.attempts));
        if self.status == StepState::InProgress
            && let Some(w) = &self.lease_owner
        {
            m.insert("worker".into(), json!(w));
        }
        if let Value::Object(extra) = extra {
            m.extend(extra);
        }
        Value::Object(m)
    }
}

async fn lock_step(conn: &mut PgConnection, id: Uuid) -> Result<LockedStep, TxError> {
    let r = sqlx::query(
        "SELECT s.task_id, s.status, (s.status = 'in_progress' OR s.ready_at IS NOT NULL) AS live, \
                t.status AS task_status, s.attempts, s.lease_owner \
         FROM steps s JOIN tasks t ON t.id = s.task_id WHERE s.id = $1 FOR NO KEY UPDATE OF s",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound { entity: "step", id })?;
    Ok(LockedStep {
        task_id: r.try_get("task_id")?,
        status: step_state(r.try_get("status")?)?,
        live: r.try_get("live")?,
        task_status: task_state(r.try_get("task_status")?)?,
        attempts: r.try_get("attempts")?,
        lease_owner: r.try_get("lease_owner")?,
    })
}

/// Locks the task and returns its status and counters.
pub(crate) async fn lock_task(conn: &mut PgConnection, id: Uuid) -> Result<TaskCounters, TxError> {
    lock_tasks(conn, &[id])
        .await?
        .remove(&id)
        .ok_or_else(|| StoreError::NotFound { entity: "task", id }.into())
}

#[allow(clippy::too_many_arguments)]
async fn step_transition(
    conn: &mut PgConnection,
    step_id: Uuid,
    task_id: Uuid,
    from: StepState,
    to: StepState,
    metadata: Value,
    now: DateTime<Utc>,
) -> Result<(), TxError> {
    sqlx::query(
        "INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(step_id)
    .bind(task_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(now)
    .bind(metadata)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies one task's counter delta (finalising the task if that is due)
/// and queues the transaction's NOTIFYs: the tail of every single-step
/// operator action.
async fn settle_task(
    conn: &mut PgConnection,
    task_id: Uuid,
    delta: Delta,
    now: DateTime<Utc>,
    emit: &mut Emit,
    origin: &crate::events::Origin,
) -> Result<(), TxError> {
    settle(conn, &BTreeMap::from([(task_id, delta)]), now, emit, origin).await?;
    notify(conn, emit, origin).await
}

/// Writes `"by"` (who asked) into the metadata of every transition of task
/// `task_id` that this transaction wrote, and into the payload of the
/// lifecycle events their triggers wrote (docs/EVENTS.md): the rows whose
/// `xmin` is this transaction, so concurrent writers' rows are never
/// stamped.
async fn stamp_by(conn: &mut PgConnection, task_id: Uuid, by: Option<&str>) -> Result<(), TxError> {
    let Some(by) = by else { return Ok(()) };
    sqlx::query(
        "WITH s AS (
             UPDATE step_transitions SET metadata = metadata || jsonb_build_object('by', $2::text)
             WHERE step_id IN (SELECT id FROM steps WHERE task_id = $1)
               AND xmin = pg_current_xact_id()::xid
             RETURNING 1),
         e AS (
             UPDATE events SET payload = payload || jsonb_build_object('by', $2::text)
             WHERE task_id = $1 AND xmin = pg_current_xact_id()::xid
             RETURNING 1)
         UPDATE task_transitions SET metadata = metadata || jsonb_build_object('by', $2::text)
         WHERE task_id = $1 AND xmin = pg_current_xact_id()::xid",
    )
    .bind(task_id)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn fetch_step(conn: &mut PgConnection, id: Uuid) -> Result<StepRow, TxError> {
    let r = sqlx::query(AssertSqlSafe(format!(
        "SELECT {STEP_COLS} FROM steps s WHERE s.id = $1"
    )))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    step_row(&r)
}

pub(crate) async fn fetch_task(conn: &mut PgConnection, id: Uuid) -> Result<TaskRow, TxError> {
    let r = sqlx::query(AssertSqlSafe(format!(
        "SELECT {TASK_COLS} FROM tasks WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    task_row(&r)
}

impl PgStore {
    pub(crate) async fn task_update_once(
        &self,
        id: Uuid,
        update: &TaskUpdate,
        now: DateTime<Utc>,
    ) -> Result<(TaskRow, Emit), TxError> {
        let tags = update.tags.clone().map(Value::from);
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE tasks SET reason = COALESCE($2, reason), tags = COALESCE($3, tags), updated_at = $4 \
             WHERE id = $1 RETURNING {TASK_COLS}"
        )))
        .bind(id)
        .bind(update.reason.as_deref())
        .bind(tags)
        .bind(now)
        .fetch_optional(&self.inner.pool)
        .await?
        .ok_or(StoreError::NotFound { entity: "task", id })?;
        Ok((task_row(&row)?, Emit::default()))
    }

    pub(crate) async fn task_cancel_once(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<(TaskRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            // Steps first (id order), then the task: the hot path's lock order.
            let steps = sqlx::query(
                "SELECT id, status, concurrency_key, concurrency_limit, attempts, \
                        CASE WHEN status = 'in_progress' THEN lease_owner END AS worker FROM steps \
                 WHERE task_id = $1 AND status IN ('pending','in_progress') ORDER BY id FOR NO KEY UPDATE",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let task = lock_task(&mut tx, id).await?;
            task.status.check_transition(TaskState::Cancelled)?;

            let mut ids = Vec::with_capacity(steps.len());
            let mut from = Vec::with_capacity(steps.len());
            let mut attempts = Vec::with_capacity(steps.len());
            let mut workers = Vec::with_capacity(steps.len());
            for r in &steps {
                ids.push(r.try_get::<Uuid, _>("id")?);
                from.push(r.try_get::<String, _>("status")?);
                attempts.push(r.try_get::<i32, _>("attempts")?);
                workers.push(r.try_get::<Option<String>, _>("worker")?);
            }
            if !ids.is_empty() {
                sqlx::query(
                    "WITH upd AS ( \
                         UPDATE steps SET status = 'cancelled', ready_at = NULL, lease_owner = NULL, \
                             lease_token = NULL, lease_expires_at = NULL, completed_at = $2, updated_at = $2 \
                         WHERE id = ANY($1) RETURNING id \
                     ), tr AS ( \
                         INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata) \
                         SELECT x.id, $3, x.f, 'cancelled', $2, \
                                jsonb_strip_nulls(jsonb_build_object('attempt', x.a, 'worker', x.w, \
                                                                     'reason', 'task cancelled')) \
                         FROM UNNEST($1::uuid[], $4::text[], $5::int4[], $6::text[]) \
                              WITH ORDINALITY AS x(id, f, a, w, ord) ORDER BY x.ord \
                     ) SELECT count(*) FROM upd",
                )
                .bind(&ids)
                .bind(now)
                .bind(id)
                .bind(&from)
                .bind(&attempts)
                .bind(&workers)
                .execute(&mut *tx)
                .await?;
            }
            // Running steps of a key give their slots back; the key's parked
            // steps (other tasks': this task's are cancelled) may take them.
            let mut freed = Vec::new();
            for (r, f) in steps.iter().zip(&from) {
                freed.extend(crate::flow::released(r, f == "in_progress")?);
            }
            let unparked = crate::flow::release(&mut tx, &freed, now).await?;
            let counts = recount(&mut tx, id).await?;
            let mut emit = Emit {
                work: !unparked.is_empty(),
                ..Emit::default()
            };
            write_tasks(
                &mut tx,
                &[TaskWrite {
                    id,
                    counters: TaskCounters {
                        status: task.status,
                        remaining: counts.remaining,
                        live: counts.live,
                        blocked: counts.blocked,
                    },
                    from: task.status,
                    path: vec![TaskState::Cancelled],
                    metadata: json!({ "reason": "cancelled" }),
                }],
                now,
                &mut emit,
                self.origin(),
            )
            .await?;
            // A cancelled task is no longer paused: nothing of it can resume.
            sqlx::query("UPDATE tasks SET paused_at = NULL WHERE id = $1 AND paused_at IS NOT NULL")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let row = fetch_task(&mut tx, id).await?;
            stamp_by(&mut tx, id, by).await?;
            Ok((row, emit))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn task_retry_once(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<(TaskRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            let failed: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM steps WHERE task_id = $1 AND status = 'error' ORDER BY id FOR NO KEY UPDATE")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            let task = lock_task(&mut tx, id).await?;
            if task.status != TaskState::Error {
                return Err(InvalidTransition {
                    entity: "task",
                    from: task.status.to_string(),
                    to: TaskState::Pending.to_string(),
                    reason: Some("only a task in error can be retried"),
                }
                .into());
            }
            if failed.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "task {id} has no failed step to retry (cancelled steps stay cancelled)"
                ))
                .into());
            }
            let ready: i64 = sqlx::query_scalar(
                "WITH upd AS ( \
                     UPDATE steps SET status = 'pending', max_attempts = attempts + GREATEST(retry_limit, 1), \
                         ready_at = CASE WHEN remaining_parents = 0 THEN $2 END, completed_at = NULL, \
                         updated_at = $2 \
                     WHERE id = ANY($1) RETURNING id, task_id, attempts, max_attempts, ready_at \
                 ), tr AS ( \
                     INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata) \
                     SELECT id, task_id, 'error', 'pending', $2, \
                            jsonb_build_object('attempt', attempts, 'reason', 'task retry', \
                                               'max_attempts', max_attempts) \
                     FROM upd ORDER BY id \
                 ) SELECT count(*) FILTER (WHERE ready_at IS NOT NULL) FROM upd",
            )
            .bind(&failed)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let mut emit = Emit {
                work: ready > 0,
                ..Emit::default()
            };
            let counts = recount(&mut tx, id).await?;
            write_tasks(
                &mut tx,
                &[TaskWrite {
                    id,
                    counters: TaskCounters {
                        status: TaskState::Pending,
                        remaining: counts.remaining,
                        live: counts.live,
                        blocked: counts.blocked,
                    },
                    from: task.status,
                    path: vec![TaskState::Pending],
                    metadata: json!({ "reason": "retry" }),
                }],
                now,
                &mut emit,
                self.origin(),
            )
            .await?;
            let row = fetch_task(&mut tx, id).await?;
            stamp_by(&mut tx, id, by).await?;
            Ok((row, emit))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn step_update_once(
        &self,
        id: Uuid,
        update: &StepUpdate,
        now: DateTime<Utc>,
    ) -> Result<(StepRow, Emit), TxError> {
        if let Some(limit) = update.retry_limit
            && limit < 1
        {
            return Err(StoreError::Conflict(format!(
                "retry limit must be at least 1, got {limit}"
            ))
            .into());
        }
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            let step = lock_step(&mut tx, id).await?;
            if !matches!(step.status, StepState::Pending | StepState::Error) {
                return Err(StoreError::Conflict(format!(
                    "step {id} is {}: only pending or error steps can be edited",
                    step.status
                ))
                .into());
            }
            // The new limit is the total number of attempts. A pending,
            // retryable step keeps at least the attempt it is waiting for; an
            // error step's budget is refilled from the limit when it is retried.
            sqlx::query(
                "UPDATE steps SET \
                     retry_limit = COALESCE($2, retry_limit), \
                     max_attempts = CASE WHEN $2::int IS NOT NULL AND status = 'pending' AND retryable \
                         THEN GREATEST($2::int, attempts + 1) ELSE max_attempts END, \
                     inputs = COALESCE($3, inputs), \
                     updated_at = $4 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(update.retry_limit)
            .bind(update.inputs.as_ref())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let row = fetch_step(&mut tx, id).await?;
            let mut emit = Emit::default();
            emit.changed(step.task_id);
            Ok((row, emit))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn step_resolve_once(
        &self,
        id: Uuid,
        results: &Value,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<(StepRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            let step = lock_step(&mut tx, id).await?;
            step.status.check_transition(StepState::ResolvedManually)?;
            if step.task_status.is_terminal() {
                return Err(StoreError::Conflict(format!(
                    "task {} is {}: its steps can no longer change",
                    step.task_id, step.task_status
                ))
                .into());
            }
            sqlx::query(
                "UPDATE steps SET status = 'resolved_manually', results = $2, ready_at = NULL, \
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                     completed_at = $3, updated_at = $3 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(results)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            step_transition(
                &mut tx,
                id,
                step.task_id,
                step.status,
                StepState::ResolvedManually,
                step.metadata(json!({ "reason": "resolved manually" })),
                now,
            )
            .await?;
            // Resolved counts as done for the children and the counters.
            let mut emit = Emit::default();
            let mut d = Delta {
                remaining: -1,
                live: if step.live { -1 } else { 0 },
                blocked: if step.status == StepState::Error {
                    -1
                } else {
                    0
                },
            };
            for (_, ready) in unblock_children(&mut tx, &[id], now).await?.0 {
                d.live += ready;
                emit.work |= ready > 0;
            }
            emit.changed(step.task_id);
            settle_task(&mut tx, step.task_id, d, now, &mut emit, self.origin()).await?;
            let row = fetch_step(&mut tx, id).await?;
            stamp_by(&mut tx, step.task_id, by).await?;
            Ok((row, emit))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn step_cancel_once(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<(StepRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            let step = lock_step(&mut tx, id).await?;
            step.status.check_transition(StepState::Cancelled)?;
            let cancelled = sqlx::query(
                "UPDATE steps SET status = 'cancelled', ready_at = NULL, lease_owner = NULL, lease_token = NULL, \
                     lease_expires_at = NULL, completed_at = $2, updated_at = $2 \
                 WHERE id = $1 RETURNING concurrency_key, concurrency_limit",
            )
            .bind(id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let freed = crate::flow::released(&cancelled, step.status == StepState::InProgress)?;
            let unparked = crate::flow::release(&mut tx, freed.as_slice(), now).await?;
            step_transition(
                &mut tx,
                id,
                step.task_id,
                step.status,
                StepState::Cancelled,
                step.metadata(json!({ "reason": "cancelled" })),
                now,
            )
            .await?;
            let d = Delta {
                remaining: 0,
                live: if step.live { -1 } else { 0 },
                blocked: 1,
            };
            let mut emit = Emit {
                work: !unparked.is_empty(),
                ..Emit::default()
            };
            emit.changed(step.task_id);
            settle_task(&mut tx, step.task_id, d, now, &mut emit, self.origin()).await?;
            let row = fetch_step(&mut tx, id).await?;
            stamp_by(&mut tx, step.task_id, by).await?;
            Ok((row, emit))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn step_retry_once(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<(StepRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            let step = lock_step(&mut tx, id).await?;
            step.status.check_transition(StepState::Pending)?;
            let task = lock_task(&mut tx, step.task_id).await?;
            // A task in error goes back to pending with its step; a running task
            // just gets the step back; a finished task cannot.
            let reopen = match task.status {
                TaskState::Error => true,
                TaskState::Pending | TaskState::InProgress => false,
                other => {
                    other.check_transition(TaskState::Pending)?;
                    false
                }
            };
            let r = sqlx::query(
                "UPDATE steps SET status = 'pending', max_attempts = attempts + GREATEST(retry_limit, 1), \
                     ready_at = CASE WHEN remaining_parents = 0 THEN $2 END, completed_at = NULL, updated_at = $2 \
                 WHERE id = $1 RETURNING max_attempts, ready_at IS NOT NULL AS ready",
            )
            .bind(id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let ready: bool = r.try_get("ready")?;
            let max_attempts: i32 = r.try_get("max_attempts")?;
            step_transition(
                &mut tx,
                id,
                step.task_id,
                step.status,
                StepState::Pending,
                step.metadata(json!({ "reason": "step retry", "max_attempts": max_attempts })),
                now,
            )
            .await?;
            let status = if reopen {
                TaskState::Pending
            } else {
                task.status
            };
            let delta = Delta {
                remaining: 0,
                live: i64::from(ready),
                blocked: -1,
            };
            let counters = TaskCounters {
                status,
                ..crate::settle::apply_delta(&mut tx, step.task_id, &task, delta).await?
            };
            let mut path = if reopen {
                vec![TaskState::Pending]
            } else {
                Vec::new()
            };
            path.extend(finaliser_path(counters));
            let mut emit = Emit {
                work: ready,
                ..Emit::default()
            };
            write_tasks(
                &mut tx,
                &[TaskWrite {
                    id: step.task_id,
                    counters,
                    from: task.status,
                    path,
                    metadata: json!({ "reason": "step retry", "step_id": id }),
                }],
                now,
                &mut emit,
                self.origin(),
            )
            .await?;
            let row = fetch_step(&mut tx, id).await?;
            stamp_by(&mut tx, step.task_id, by).await?;
            Ok((row, emit))
        }
        .await;
        tx::end(tx, res).await
    }
}
