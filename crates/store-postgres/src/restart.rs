//! Restart a task from a step (docs/FLOW_CONTROL.md).
//!
//! One transaction: the task's steps are locked in id order (the hot path's
//! order), then the task; the chosen step and its descendants are reset in
//! one statement (the chosen step ready now, the others waiting for their
//! parents, counted from the snapshot before the reset), each status change
//! gets a transition, and the task's counters are recounted and written
//! with its `→ pending` transition, all carrying the restart's metadata.

use crate::PgStore;
use crate::admin::{fetch_task, lock_task};
use crate::error::TxError;
use crate::events::Emit;
use crate::settle::{TaskCounters, TaskWrite, recount, write_tasks};
use crate::tx;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};
use tasker_core::TaskState;
use tasker_store::restart::{check_restart, metadata, parents_not_done};
use tasker_store::{StoreError, TaskRow};
use uuid::Uuid;

impl PgStore {
    pub(crate) async fn task_restart_once(
        &self,
        id: Uuid,
        step_id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(TaskRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        // Ended by `tx::end`, which rolls back before returning a refusal:
        // the step locks `restart_in` took must not outlive it.
        let res = self.restart_in(&mut tx, id, step_id, now, by, reason).await;
        tx::end(tx, res).await
    }

    async fn restart_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        id: Uuid,
        step_id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(TaskRow, Emit), TxError> {
        let steps = sqlx::query(
            "SELECT id, name, status FROM steps WHERE task_id = $1 ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        let task = lock_task(tx, id).await?;
        check_restart(task.status)?;
        let mut name = None;
        for r in &steps {
            if r.try_get::<Uuid, _>("id")? == step_id {
                name = Some(r.try_get::<String, _>("name")?);
            }
        }
        let name = name.ok_or(StoreError::NotFound {
            entity: "step",
            id: step_id,
        })?;
        let waiting: Vec<String> = sqlx::query_scalar(
            "SELECT p.name FROM step_edges e JOIN steps p ON p.id = e.parent_id \
             WHERE e.child_id = $1 AND p.status NOT IN ('complete', 'resolved_manually') \
             ORDER BY p.position",
        )
        .bind(step_id)
        .fetch_all(&mut **tx)
        .await?;
        if !waiting.is_empty() {
            return Err(parents_not_done(&name, &waiting).into());
        }
        let meta = metadata(&name, by, reason);
        // The step and its descendants; each one's unfinished parents are
        // counted before the reset, its reset parents included.
        let reset = sqlx::query(
            "WITH RECURSIVE r(id) AS ( \
                 SELECT $1::uuid UNION SELECT e.child_id FROM step_edges e JOIN r ON e.parent_id = r.id \
             ), old AS ( \
                 SELECT s.id, s.status FROM steps s JOIN r ON r.id = s.id \
             ), upd AS ( \
                 UPDATE steps s SET status = 'pending', results = NULL, last_error = NULL, \
                     completed_at = NULL, lease_owner = NULL, lease_token = NULL, \
                     lease_expires_at = NULL, max_attempts = s.attempts + s.retry_limit, \
                     ready_at = CASE WHEN s.id = $1 THEN $2 END, \
                     remaining_parents = CASE WHEN s.id = $1 THEN 0 ELSE ( \
                         SELECT count(*) FROM step_edges e JOIN steps p ON p.id = e.parent_id \
                         WHERE e.child_id = s.id \
                           AND (p.id IN (SELECT id FROM r) \
                                OR p.status NOT IN ('complete', 'resolved_manually'))) END, \
                     updated_at = $2 \
                 FROM old WHERE s.id = old.id \
                 RETURNING s.id \
             ), tr AS ( \
                 INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata) \
                 SELECT old.id, $3, old.status, 'pending', $2, $4 FROM old \
                 WHERE old.status <> 'pending' ORDER BY old.id \
             ) SELECT count(*) AS n FROM upd",
        )
        .bind(step_id)
        .bind(now)
        .bind(id)
        .bind(&meta)
        .fetch_one(&mut **tx)
        .await?;
        let _reset: i64 = reset.try_get("n")?;
        let counts = recount(tx, id).await?;
        let mut emit = Emit {
            work: true,
            ..Emit::default()
        };
        write_tasks(
            tx,
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
                metadata: meta,
            }],
            now,
            &mut emit,
            self.origin(),
        )
        .await?;
        let row = fetch_task(tx, id).await?;
        Ok((row, emit))
    }
}
