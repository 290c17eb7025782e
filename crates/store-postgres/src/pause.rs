//! Pause / resume a task (docs/FLOW_CONTROL.md).
//!
//! One statement flips `steps.paused` for the task's steps (locked in id
//! order, the hot path's lock order, before the task), which takes them out
//! of (or back into) the partial ready index the claim scans; then the task's
//! `paused_at` and a transition. A claimer that locked a step first wins it
//! (it runs and finishes); one that comes after the commit no longer sees it.

use crate::PgStore;
use crate::decode::{TASK_COLS, task_row, task_state};
use crate::error::TxError;
use crate::events::{Emit, notify};
use crate::tx;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};
use tasker_store::pause::{action_metadata, check_pause, check_resume};
use tasker_store::{StoreError, TaskRow};
use uuid::Uuid;

impl PgStore {
    pub(crate) async fn task_set_paused_once(
        &self,
        id: Uuid,
        pause: bool,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> Result<(TaskRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            // Resuming releases the steps unless the task's namespace or
            // template is paused too (read under that namespace's lock).
            let held = if pause {
                true
            } else {
                let namespace: String = sqlx::query_scalar("SELECT namespace FROM tasks WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound { entity: "task", id })?;
                crate::flow_pause::lock_namespace(&mut tx, &namespace, false).await?;
                crate::flow_pause::holds_task(&mut tx, id).await?
            };
            // Steps first, in id order; `ready` counts those claimable now once
            // resumed (for the wake-up). A resumed step that waited for its
            // template's task slot goes back to the ready index: the next claim
            // decides again (no release would unpark it while nothing of the
            // template runs).
            let ready: i64 = sqlx::query_scalar(
                "WITH lk AS ( \
                     SELECT id FROM steps WHERE task_id = $1 ORDER BY id FOR NO KEY UPDATE \
                 ), upd AS ( \
                     UPDATE steps s SET paused = $2, \
                         parked = CASE WHEN NOT $2 AND s.flow_wait = 'task_slot' THEN false ELSE s.parked END, \
                         flow_wait = CASE WHEN NOT $2 AND s.flow_wait = 'task_slot' THEN NULL ELSE s.flow_wait END \
                     FROM lk WHERE s.id = lk.id AND s.paused <> $2 \
                     RETURNING s.ready_at \
                 ) SELECT count(*) FROM upd WHERE ready_at <= $3",
            )
            .bind(id)
            .bind(held)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let t = sqlx::query("SELECT status, paused_at FROM tasks WHERE id = $1 FOR NO KEY UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound { entity: "task", id })?;
            let status = task_state(t.try_get("status")?)?;
            let paused = t
                .try_get::<Option<DateTime<Utc>>, _>("paused_at")?
                .is_some();
            if pause {
                check_pause(id, status, paused)?;
            } else {
                check_resume(id, paused)?;
            }
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE tasks SET paused_at = $2, updated_at = $3 WHERE id = $1 RETURNING {TASK_COLS}"
            )))
            .bind(id)
            .bind(pause.then_some(now))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let action = if pause { "pause" } else { "resume" };
            sqlx::query(
                "INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata) \
                 VALUES ($1, $2, $2, $3, $4)",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(now)
            .bind(action_metadata(action, by))
            .execute(&mut *tx)
            .await?;
            let mut emit = Emit::default();
            emit.changed(id);
            emit.work = !held && ready > 0;
            notify(&mut tx, &mut emit, self.origin()).await?;
            Ok((task_row(&row)?, emit))
        }
        .await;
        tx::end(tx, res).await
    }
}
