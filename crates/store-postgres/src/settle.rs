//! The task side of every step change: counters and finalisation.
//!
//! Locking discipline (the reason the hot path cannot deadlock with itself):
//! a transaction locks step rows first — its own steps, then children, each
//! set in id order — and task rows last, in id order ([`lock_tasks`]). Claims
//! never wait on a step (`SKIP LOCKED`) and lock tasks last, in id order too.
//!
//! Finalisation is race-free because the task rows are locked (`FOR NO KEY
//! UPDATE`, which still lets other transactions insert transition rows that
//! reference the task) before the counters are read: of two transactions
//! finishing the last two steps of a task, the second waits for the first to
//! commit, then reads the counters it left, so exactly one of them sees
//! `steps_remaining` reach 0 and writes the `complete` transition. The status
//! write is additionally conditional on the status read under the lock.

use crate::decode::task_state;
use crate::error::TxError;
use crate::events::Emit;
use crate::events_outbox::events_on;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, Row};
use std::collections::BTreeMap;
use tasker_core::TaskState;
use tasker_core::execution::finalise;
use tasker_store::is_final;
use uuid::Uuid;

/// A task's status and counters as read under its row lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskCounters {
    pub status: TaskState,
    pub remaining: i64,
    pub live: i64,
    pub blocked: i64,
}

/// Counter changes for one task, accumulated over a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub remaining: i64,
    pub live: i64,
    pub blocked: i64,
}

/// What to write back for one task.
#[derive(Debug, Clone)]
pub(crate) struct TaskWrite {
    pub id: Uuid,
    pub counters: TaskCounters,
    /// Status before this transaction touched it.
    pub from: TaskState,
    /// Statuses to go through, in order (empty: status unchanged).
    pub path: Vec<TaskState>,
    /// Metadata of the transitions.
    pub metadata: Value,
}

/// The finaliser's rule ([`tasker_core::execution::finalise`], whose module
/// docs are the one statement of it), applied to counters read under the task
/// lock, as the path of states to record: a `pending` task that completes goes
/// through `in_progress`, since the state machine has no `pending → complete`.
pub(crate) fn finaliser_path(c: TaskCounters) -> Vec<TaskState> {
    match finalise(c.status, c.remaining, c.live, c.blocked) {
        Some(TaskState::Complete) if c.status == TaskState::Pending => {
            vec![TaskState::InProgress, TaskState::Complete]
        }
        Some(to) => vec![to],
        None => Vec::new(),
    }
}

fn finaliser_metadata(path: &[TaskState]) -> Value {
    match path.last() {
        Some(TaskState::Complete) | Some(TaskState::ResolvedManually) => {
            json!({ "reason": "all steps done" })
        }
        Some(TaskState::Error) => json!({ "reason": "blocked by failed or cancelled steps" }),
        Some(TaskState::Pending) => json!({ "reason": "steps can run again" }),
        _ => json!({}),
    }
}

/// The lifecycle events of task state changes (`task.started`,
/// `task.completed`, …), as one `INSERT`: `$tr` names a CTE of the task
/// transitions just inserted (`RETURNING id, task_id, from_state, to_state,
/// created_at, metadata`), `$also` a further condition (`"… AND "`, or
/// empty). Each transition's task is read by primary key for its name,
/// version and namespace (they never change, so the statement's snapshot
/// is right), not joined with the CTE of the tasks just written: the
/// planner estimates both CTEs at a row or so, and that join was a nested
/// loop reading one in full per row of the other, quadratic in the batch
/// (`auto_explain`: 4 ms of a 64-task finish). Shared by
/// [`WRITE_TASKS_SQL`] and the finish statement (`finish.rs`), so a task
/// change becomes an event one way. The caller has `events_on` in scope.
macro_rules! task_change_events {
    ($tr:literal, $also:literal) => {
        concat!(
            "INSERT INTO events (type, task_id, step_id, namespace, created_at, payload) \
             SELECT x.type, r.task_id, NULL, k.namespace, r.created_at, \
                    tasker_task_change_payload(k.name, k.version, r.from_state, r.to_state) \
             FROM ",
            $tr,
            " r \
             CROSS JOIN LATERAL (SELECT namespace, name, version FROM tasks \
                                 WHERE tasks.id = r.task_id OFFSET 0) k \
             CROSS JOIN LATERAL (SELECT tasker_task_event_type(r.from_state, r.to_state, r.metadata) AS type) x \
             WHERE x.type IS NOT NULL AND ",
            $also,
            events_on!(),
            " ORDER BY r.id"
        )
    };
}
pub(crate) use task_change_events;

/// Locks tasks in id order and reads their status and counters.
pub(crate) const LOCK_TASKS_SQL: &str = "SELECT id, status, steps_remaining, steps_live, steps_blocked FROM tasks \
     WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE";

/// Writes counters, statuses and transitions of many tasks with their
/// lifecycle events (`ev`; the transitions are marked `evented`, so the
/// outbox trigger skips them), and queues the transaction's NOTIFYs (`$12`
/// work?, `$13` origin, `$14` finished payloads).
///
/// Every transition written here is a state change (`task.started`,
/// `task.completed`, …, `task.retry_requested`), never a creation or a
/// pause / resume (those have writers of their own), so its payload is
/// the one family's `tasker_task_change_payload` (migration
/// `20261206000000_lean_event_writes.sql`).
pub(crate) const WRITE_TASKS_SQL: &str = concat!(
    "WITH u AS ( \
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::int[]) \
                 AS u(id, remaining, live, blocked, status, completed) \
         ), upd AS ( \
             UPDATE tasks t SET steps_remaining = u.remaining, steps_live = u.live, \
                 steps_blocked = u.blocked, status = u.status, updated_at = $7, \
                 completed_at = CASE u.completed WHEN 1 THEN $7 WHEN 0 THEN NULL ELSE t.completed_at END \
             FROM u WHERE t.id = u.id AND t.id = ANY($1::uuid[]) \
             RETURNING t.id \
         ), tr AS ( \
             INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, evented) \
             SELECT x.id, x.f, x.t, $7, x.m, true \
             FROM UNNEST($8::uuid[], $9::text[], $10::text[], $11::jsonb[]) WITH ORDINALITY AS x(id, f, t, m, ord) \
             ORDER BY x.ord \
             RETURNING id, task_id, from_state, to_state, created_at, metadata \
         ), ev AS ( ",
    task_change_events!("tr", ""),
    " ) \
         SELECT (SELECT count(*) FROM upd) AS updated, \
                (SELECT count(pg_notify('tasker_work', $13)) WHERE $12) AS w, \
                (SELECT count(pg_notify('tasker_task', p)) FROM UNNEST($14::text[]) AS p) AS f"
);

/// Locks the task rows in id order and reads their status and counters.
pub(crate) async fn lock_tasks(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, TaskCounters>, TxError> {
    let rows = sqlx::query(LOCK_TASKS_SQL)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        out.insert(
            r.try_get("id")?,
            TaskCounters {
                status: task_state(r.try_get("status")?)?,
                remaining: r.try_get("steps_remaining")?,
                live: r.try_get("steps_live")?,
                blocked: r.try_get("steps_blocked")?,
            },
        );
    }
    Ok(out)
}

/// Counters of one task recomputed from its steps (admin operations, which
/// rewrite many steps at once, recount instead of tracking deltas).
pub(crate) async fn recount(conn: &mut PgConnection, task_id: Uuid) -> Result<Delta, TxError> {
    let r = sqlx::query(
        "SELECT count(*) FILTER (WHERE status NOT IN ('complete','resolved_manually')) AS remaining, \
                count(*) FILTER (WHERE status = 'in_progress' OR ready_at IS NOT NULL) AS live, \
                count(*) FILTER (WHERE status IN ('error','cancelled')) AS blocked \
         FROM steps WHERE task_id = $1",
    )
    .bind(task_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Delta {
        remaining: r.try_get("remaining")?,
        live: r.try_get("live")?,
        blocked: r.try_get("blocked")?,
    })
}

/// `cur + d`, checked: a counter about to go negative means the stored
/// counters had drifted from the steps (a bug). That is logged as an error
/// and the counters are recounted from the steps, rather than clamped to 0,
/// which hid the drift and could finalise the task at the wrong moment.
pub(crate) async fn apply_delta(
    conn: &mut PgConnection,
    id: Uuid,
    cur: &TaskCounters,
    d: Delta,
) -> Result<TaskCounters, TxError> {
    let mut counters = TaskCounters {
        status: cur.status,
        remaining: cur.remaining + d.remaining,
        live: cur.live + d.live,
        blocked: cur.blocked + d.blocked,
    };
    if drifts(cur, d) {
        let truth = recount(conn, id).await?;
        tracing::error!(
            task_id = %id,
            stored_remaining = cur.remaining, stored_live = cur.live, stored_blocked = cur.blocked,
            delta_remaining = d.remaining, delta_live = d.live, delta_blocked = d.blocked,
            remaining = truth.remaining, live = truth.live, blocked = truth.blocked,
            "task counters drifted from the steps; recounted"
        );
        counters.remaining = truth.remaining;
        counters.live = truth.live;
        counters.blocked = truth.blocked;
    }
    Ok(counters)
}

/// Applies per-task counter deltas and runs the finaliser, in two statements
/// (lock + read, then one write). Sends the transaction's NOTIFYs with the
/// write. Returns the tasks that reached a final state.
pub(crate) async fn settle(
    conn: &mut PgConnection,
    deltas: &BTreeMap<Uuid, Delta>,
    now: DateTime<Utc>,
    emit: &mut Emit,
    origin: &crate::events::Origin,
) -> Result<Vec<(Uuid, TaskState)>, TxError> {
    settle_applied(conn, deltas, &BTreeMap::new(), now, emit, origin).await
}

/// True when `cur` advanced by `d` would go negative: the stored counters
/// had drifted from the task's steps, and [`apply_delta`] recounts them.
/// (The finish statement tests the same, in SQL, before it moves a task.)
pub(crate) fn drifts(cur: &TaskCounters, d: Delta) -> bool {
    cur.remaining + d.remaining < 0 || cur.live + d.live < 0 || cur.blocked + d.blocked < 0
}

/// Whether [`settle_applied`] has anything to write for these deltas: a
/// task the statement did not advance, or one whose counters drifted.
/// Otherwise it returns at once, without a statement.
pub(crate) fn settle_needed(
    deltas: &BTreeMap<Uuid, Delta>,
    advanced: &BTreeMap<Uuid, TaskCounters>,
) -> bool {
    deltas.iter().any(|(id, d)| match advanced.get(id) {
        None => true,
        Some(cur) => drifts(cur, *d),
    })
}

/// [`settle`] for a batch some of whose tasks a statement already locked,
/// advanced by their deltas and moved by the finaliser (`advanced`: status
/// and counters read under the lock, before the delta; `finish.rs`, whose
/// statement applies the rule through `tasker_finaliser_path`). Those need
/// a write only when their counters had drifted (the statement then left
/// their status alone, and the recounted truth and its path are written
/// here); the other tasks of `deltas` are locked and written as in
/// [`settle`]. One write statement at most, so the transaction's NOTIFYs
/// go out once.
pub(crate) async fn settle_applied(
    conn: &mut PgConnection,
    deltas: &BTreeMap<Uuid, Delta>,
    advanced: &BTreeMap<Uuid, TaskCounters>,
    now: DateTime<Utc>,
    emit: &mut Emit,
    origin: &crate::events::Origin,
) -> Result<Vec<(Uuid, TaskState)>, TxError> {
    if !settle_needed(deltas, advanced) {
        return Ok(Vec::new());
    }
    let rest: Vec<Uuid> = deltas
        .keys()
        .filter(|id| !advanced.contains_key(id))
        .copied()
        .collect();
    let mut locked: Vec<(Uuid, TaskCounters, bool)> = advanced
        .iter()
        .filter(|(id, _)| deltas.contains_key(id))
        .map(|(id, c)| (*id, *c, true))
        .collect();
    if !rest.is_empty() {
        locked.extend(
            lock_tasks(conn, &rest)
                .await?
                .into_iter()
                .map(|(id, c)| (id, c, false)),
        );
        locked.sort_by_key(|(id, _, _)| *id);
    }
    let mut writes = Vec::with_capacity(locked.len());
    for (id, cur, written) in locked {
        let d = deltas.get(&id).copied().unwrap_or_default();
        let counters = apply_delta(conn, id, &cur, d).await?;
        let drifted = counters.remaining != cur.remaining + d.remaining
            || counters.live != cur.live + d.live
            || counters.blocked != cur.blocked + d.blocked;
        if written && !drifted {
            continue;
        }
        let path = finaliser_path(counters);
        writes.push(TaskWrite {
            id,
            counters,
            from: cur.status,
            metadata: finaliser_metadata(&path),
            path,
        });
    }
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    write_tasks(conn, &writes, now, emit, origin).await
}

/// Writes counters and status changes of many tasks, their transitions, and
/// the transaction's NOTIFYs, in one statement.
pub(crate) async fn write_tasks(
    conn: &mut PgConnection,
    writes: &[TaskWrite],
    now: DateTime<Utc>,
    emit: &mut Emit,
    origin: &crate::events::Origin,
) -> Result<Vec<(Uuid, TaskState)>, TxError> {
    let mut finished = Vec::new();
    let n = writes.len();
    let (mut ids, mut rem, mut live, mut blk, mut status, mut completed) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut tr_id, mut tr_from, mut tr_to, mut tr_meta) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for w in writes {
        // The statement writes every event here as a state change (see
        // WRITE_TASKS_SQL): pause and resume have writers of their own.
        debug_assert!(
            !matches!(
                w.metadata.get("action").and_then(Value::as_str),
                Some("pause" | "resume")
            ),
            "write_tasks never writes a pause or resume"
        );
        let end = w.path.last().copied().unwrap_or(w.from);
        ids.push(w.id);
        rem.push(w.counters.remaining);
        live.push(w.counters.live);
        blk.push(w.counters.blocked);
        status.push(end.as_str());
        // completed_at: set on entering a final state, cleared when leaving
        // one, kept otherwise (encoded as 1 / 0 / NULL).
        completed.push(if w.path.is_empty() {
            None
        } else if is_final(end) {
            Some(1i32)
        } else {
            Some(0i32)
        });
        let mut from = w.from;
        for to in &w.path {
            tr_id.push(w.id);
            tr_from.push(from.as_str());
            tr_to.push(to.as_str());
            tr_meta.push(w.metadata.clone());
            from = *to;
        }
        emit.changed(w.id);
        if !w.path.is_empty() && is_final(end) {
            emit.finished(w.id);
            finished.push((w.id, end));
        }
    }
    // The transitions are inserted in array order (ORDER BY ordinality), so
    // ids ascend along each path.
    sqlx::query(WRITE_TASKS_SQL)
        .bind(&ids)
        .bind(&rem)
        .bind(&live)
        .bind(&blk)
        .bind(&status)
        .bind(&completed)
        .bind(now)
        .bind(&tr_id)
        .bind(&tr_from)
        .bind(&tr_to)
        .bind(&tr_meta)
        .bind(emit.work && !emit.notified)
        .bind(&origin.id)
        .bind(if emit.notified {
            Vec::new()
        } else {
            emit.task_payloads(origin)
        })
        .fetch_one(&mut *conn)
        .await?;
    emit.notified = true;
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    fn c(status: TaskState, remaining: i64, live: i64, blocked: i64) -> TaskCounters {
        TaskCounters {
            status,
            remaining,
            live,
            blocked,
        }
    }

    #[test]
    fn finaliser_rules() {
        assert_eq!(finaliser_path(c(InProgress, 0, 0, 0)), vec![Complete]);
        assert_eq!(
            finaliser_path(c(Pending, 0, 0, 0)),
            vec![InProgress, Complete]
        );
        assert_eq!(finaliser_path(c(InProgress, 2, 0, 1)), vec![Error]);
        assert_eq!(
            finaliser_path(c(InProgress, 2, 1, 1)),
            Vec::<TaskState>::new()
        );
        assert_eq!(
            finaliser_path(c(InProgress, 2, 0, 0)),
            Vec::<TaskState>::new()
        );
        assert_eq!(finaliser_path(c(Error, 1, 1, 0)), vec![Pending]);
        assert_eq!(finaliser_path(c(Error, 1, 0, 1)), Vec::<TaskState>::new());
        assert_eq!(finaliser_path(c(Error, 0, 0, 0)), vec![ResolvedManually]);
        assert_eq!(
            finaliser_path(c(Cancelled, 0, 0, 0)),
            Vec::<TaskState>::new()
        );
        assert_eq!(
            finaliser_path(c(Complete, 0, 0, 0)),
            Vec::<TaskState>::new()
        );
    }

    /// The finish statement moves the tasks it advances with
    /// `tasker_finaliser_path` (migration `20261208000000_finaliser_path`):
    /// the same transitions and metadata as [`finaliser_path`] and
    /// [`finaliser_metadata`], for every status and every sign of every
    /// counter. A rule changed on one side only fails here.
    #[tokio::test]
    async fn finaliser_path_in_sql_is_the_rust_rule() {
        let db = crate::testing::TestDb::create().await;
        let store = crate::PgStore::connect(&db.url).await.unwrap();
        let mut checked = 0;
        for status in TaskState::ALL {
            for remaining in -1..=2i64 {
                for live in -1..=2i64 {
                    for blocked in -1..=2i64 {
                        let rows: Vec<(String, String, Value)> = sqlx::query_as(
                            "SELECT from_state, to_state, metadata \
                             FROM tasker_finaliser_path($1, $2, $3, $4) ORDER BY seq",
                        )
                        .bind(status.as_str())
                        .bind(remaining)
                        .bind(live)
                        .bind(blocked)
                        .fetch_all(store.pool())
                        .await
                        .unwrap();
                        let path = finaliser_path(c(status, remaining, live, blocked));
                        let mut from = status;
                        let want: Vec<(String, String, Value)> = path
                            .iter()
                            .map(|to| {
                                let row = (
                                    from.as_str().to_string(),
                                    to.as_str().to_string(),
                                    finaliser_metadata(&path),
                                );
                                from = *to;
                                row
                            })
                            .collect();
                        assert_eq!(rows, want, "{status} {remaining} {live} {blocked}");
                        checked += usize::from(!want.is_empty());
                    }
                }
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn paths_respect_the_state_machine() {
        for status in TaskState::ALL {
            for remaining in 0..2 {
                for live in 0..2 {
                    for blocked in 0..2 {
                        let mut from = status;
                        for to in finaliser_path(c(status, remaining, live, blocked)) {
                            assert!(from.check_transition(to).is_ok(), "{from} -> {to}");
                            from = to;
                        }
                    }
                }
            }
        }
    }
}
