//! What every write transaction shares: task counter deltas, the finaliser,
//! and transition rows, collected while a transaction runs and written in a
//! few set-based statements at its end ([`Journal::flush`]).

use crate::Events;
use crate::codec::{hex, micros, task_state};
use crate::error::DbResultExt;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;
use tasker_core::{StepState, TaskState};
use tasker_store::StoreResult;
use uuid::Uuid;

/// Changes to a task's counters (docs/STORAGE.md, Invariants).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delta {
    /// `steps_remaining`: steps not complete / resolved_manually.
    pub remaining: i64,
    /// `steps_live`: in_progress, or pending with `ready_at` set.
    pub live: i64,
    /// `steps_blocked`: error or cancelled.
    pub blocked: i64,
}

/// The writes of one transaction that are batched until its end.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    /// `[step, task, from, to, at, metadata]` rows.
    step_transitions: Vec<Value>,
    /// `[task, from, to, at, metadata]` rows.
    task_transitions: Vec<Value>,
    /// Counter changes per touched task.
    deltas: HashMap<Uuid, Delta>,
    /// What to announce after the commit.
    pub events: Events,
    /// Tasks that reached a final state, with that state.
    pub finished: Vec<(Uuid, TaskState)>,
}

impl Journal {
    /// Records a step transition at `at`.
    pub fn step(
        &mut self,
        step: Uuid,
        task: Uuid,
        from: Option<StepState>,
        to: StepState,
        at: DateTime<Utc>,
        metadata: Value,
    ) {
        self.step_transitions.push(json!([
            hex(&step).to_string(),
            hex(&task).to_string(),
            from.map(StepState::as_str),
            to.as_str(),
            micros(at),
            metadata
        ]));
        self.events.changed.insert(task);
    }

    /// Records a task transition at `at`.
    pub fn task(
        &mut self,
        task: Uuid,
        from: Option<TaskState>,
        to: TaskState,
        at: DateTime<Utc>,
        metadata: Value,
    ) {
        self.task_transitions.push(json!([
            hex(&task).to_string(),
            from.map(TaskState::as_str),
            to.as_str(),
            micros(at),
            metadata
        ]));
    }

    /// Adds to a task's counter changes; the task is finalised if needed at
    /// [`Journal::flush`].
    pub fn delta(&mut self, task: Uuid, remaining: i64, live: i64, blocked: i64) {
        let d = self.deltas.entry(task).or_default();
        d.remaining += remaining;
        d.live += live;
        d.blocked += blocked;
        self.events.changed.insert(task);
    }

    /// Applies the counter changes, finalises the touched tasks, and writes the
    /// transition rows.
    pub async fn flush(
        &mut self,
        conn: &mut SqliteConnection,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if !self.deltas.is_empty() {
            self.apply_deltas(conn, now).await?;
        }
        if !self.step_transitions.is_empty() {
            let rows = Value::Array(std::mem::take(&mut self.step_transitions)).to_string();
            sqlx::query(
                "INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata)
                 SELECT unhex(value->>0), unhex(value->>1), value->>2, value->>3, value->>4, value->5
                 FROM json_each(?1)",
            )
            .bind(rows)
            .execute(&mut *conn)
            .await
            .db()?;
        }
        if !self.task_transitions.is_empty() {
            let rows = Value::Array(std::mem::take(&mut self.task_transitions)).to_string();
            sqlx::query(
                "INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata)
                 SELECT unhex(value->>0), value->>1, value->>2, value->>3, value->4
                 FROM json_each(?1)",
            )
            .bind(rows)
            .execute(&mut *conn)
            .await
            .db()?;
        }
        Ok(())
    }

    /// One UPDATE for the counters of every touched task, then one for the
    /// tasks whose status follows from their new counters.
    ///
    /// The writer lock is held (`BEGIN IMMEDIATE`), so the statuses returned
    /// by the first statement cannot change before the second; the second is
    /// still conditional on them, as on PostgreSQL.
    async fn apply_deltas(
        &mut self,
        conn: &mut SqliteConnection,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let deltas: Vec<Value> = self
            .deltas
            .drain()
            .map(|(id, d)| json!([hex(&id).to_string(), d.remaining, d.live, d.blocked]))
            .collect();
        let rows = sqlx::query(
            "UPDATE tasks SET
                steps_remaining = steps_remaining + j.r,
                steps_live = steps_live + j.l,
                steps_blocked = steps_blocked + j.b,
                updated_at = ?2
             FROM (SELECT unhex(value->>0) AS id, value->>1 AS r, value->>2 AS l, value->>3 AS b
                   FROM json_each(?1)) AS j
             WHERE tasks.id = j.id
             RETURNING tasks.id, tasks.status, tasks.steps_remaining, tasks.steps_live, tasks.steps_blocked",
        )
        .bind(Value::Array(deltas).to_string())
        .bind(micros(now))
        .fetch_all(&mut *conn)
        .await
        .db()?;

        let mut changes = Vec::new();
        for r in &rows {
            let id: Uuid = r.try_get(0).db()?;
            let status = task_state(r.try_get(1).db()?)?;
            let remaining: i64 = r.try_get(2).db()?;
            let live: i64 = r.try_get(3).db()?;
            let blocked: i64 = r.try_get(4).db()?;
            let Some(to) = next_state(status, remaining, live, blocked) else {
                continue;
            };
            if status == TaskState::Pending && to == TaskState::Complete {
                // The table has no pending → complete (every step resolved by
                // hand before any claim): pass through in_progress.
                self.task(id, Some(status), TaskState::InProgress, now, json!({}));
                self.task(id, Some(TaskState::InProgress), to, now, json!({}));
            } else {
                self.task(id, Some(status), to, now, json!({}));
            }
            let is_final = tasker_store::is_final(to);
            if is_final {
                self.finished.push((id, to));
                self.events.finished.push(id);
            } else {
                // Back to pending: its steps can move again.
                self.events.work_available |= live > 0;
            }
            changes.push(json!([
                hex(&id).to_string(),
                to.as_str(),
                is_final,
                status.as_str()
            ]));
        }
        if !changes.is_empty() {
            sqlx::query(
                "UPDATE tasks SET
                    status = j.st,
                    completed_at = CASE WHEN j.fin THEN ?2 ELSE NULL END
                 FROM (SELECT unhex(value->>0) AS id, value->>1 AS st, value->>2 AS fin, value->>3 AS old
                       FROM json_each(?1)) AS j
                 WHERE tasks.id = j.id AND tasks.status = j.old",
            )
            .bind(Value::Array(changes).to_string())
            .bind(micros(now))
            .execute(&mut *conn)
            .await
            .db()?;
        }
        Ok(())
    }
}

/// The finaliser's rule: the status a task moves to given its counters, if any.
///
/// - running (pending / in_progress): every step done → `complete`; nothing
///   can move and something is blocked → `error`;
/// - `error`: every step done (the last blockers resolved by hand) →
///   `resolved_manually`; work can move again (a resolved step unblocked its
///   children) → `pending`.
pub(crate) fn next_state(
    status: TaskState,
    remaining: i64,
    live: i64,
    blocked: i64,
) -> Option<TaskState> {
    match status {
        TaskState::Pending | TaskState::InProgress => {
            if remaining == 0 {
                Some(TaskState::Complete)
            } else if live == 0 && blocked > 0 {
                Some(TaskState::Error)
            } else {
                None
            }
        }
        TaskState::Error => {
            if remaining == 0 {
                Some(TaskState::ResolvedManually)
            } else if live > 0 {
                Some(TaskState::Pending)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Unblocks the children of steps that just became done (complete or
/// resolved_manually): `remaining_parents` drops by the number of those
/// parents (a child with two parents finishing together drops by two), and a
/// pending child reaching 0 becomes ready at `now`. Adds the newly ready
/// children to their tasks' live counters; returns how many there were.
pub(crate) async fn unblock_children(
    conn: &mut SqliteConnection,
    journal: &mut Journal,
    done: &[Uuid],
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    if done.is_empty() {
        return Ok(0);
    }
    let rows = sqlx::query(
        "UPDATE steps SET
            remaining_parents = steps.remaining_parents - c.n,
            ready_at = CASE WHEN steps.remaining_parents - c.n = 0 AND steps.status = 'pending'
                            THEN ?2 ELSE steps.ready_at END,
            updated_at = ?2
         FROM (SELECT e.child_id AS id, COUNT(*) AS n FROM step_edges e
               WHERE e.parent_id IN (SELECT unhex(value) FROM json_each(?1))
               GROUP BY e.child_id) AS c
         WHERE steps.id = c.id
         RETURNING steps.task_id, steps.remaining_parents = 0 AND steps.status = 'pending'",
    )
    .bind(crate::codec::id_list(done))
    .bind(micros(now))
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut ready = 0;
    for r in &rows {
        let task: Uuid = r.try_get(0).db()?;
        let became_ready: bool = r.try_get(1).db()?;
        if became_ready {
            journal.delta(task, 0, 1, 0);
            ready += 1;
        }
    }
    if ready > 0 {
        journal.events.work_available = true;
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    #[test]
    fn finaliser_rule() {
        assert_eq!(next_state(InProgress, 0, 0, 0), Some(Complete));
        assert_eq!(next_state(Pending, 0, 0, 0), Some(Complete));
        assert_eq!(next_state(InProgress, 2, 0, 1), Some(Error));
        assert_eq!(next_state(InProgress, 2, 1, 1), None);
        assert_eq!(next_state(InProgress, 2, 1, 0), None);
        assert_eq!(next_state(Error, 0, 0, 0), Some(ResolvedManually));
        assert_eq!(next_state(Error, 2, 1, 0), Some(Pending));
        assert_eq!(next_state(Error, 2, 0, 1), None);
        assert_eq!(next_state(Cancelled, 0, 0, 0), None);
        assert_eq!(next_state(Complete, 0, 0, 0), None);
    }
}
