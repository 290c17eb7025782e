//! The hot path: claim, finish, renew, rescue.
//!
//! Each operation is a fixed handful of set-based statements whatever the
//! batch size; ids and per-row values travel as one JSON parameter.

use crate::SqliteStore;
use crate::codec::{hex, id_list, json, json_text, micros, time};
use crate::counters::{Journal, unblock_children};
use crate::error::{DbResultExt, corrupt};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::collections::{HashMap, HashSet};
use tasker_core::{HandlerSpec, StepState, TaskState};
use tasker_store::{
    ClaimParams, ClaimedStep, FinishReport, LeaseRef, OutcomeResult, StepOutcome, StoreResult,
};
use uuid::Uuid;

/// The claim filters over `steps s`: ?2 kinds (JSON array or NULL),
/// ?3 excluded kinds (JSON array), ?4 namespaces (JSON array or NULL).
/// A literal, so the claim queries stay static SQL.
macro_rules! claim_filters {
    () => {
        "s.ready_at <= ?1
         AND (?2 IS NULL OR s.handler_kind IN (SELECT value FROM json_each(?2)))
         AND s.handler_kind NOT IN (SELECT value FROM json_each(?3))
         AND (?4 IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = s.task_id
                                    AND t.namespace IN (SELECT value FROM json_each(?4))))"
    };
}

/// Oldest ready steps first; the partial index on `(ready_at, id)` serves the
/// order, so the scan stops after `limit` matching rows.
const PICK: &str = concat!(
    "SELECT s.id FROM steps s WHERE ",
    claim_filters!(),
    " ORDER BY s.ready_at, s.id LIMIT ?5"
);

/// With a per-task limit: candidates (the first ?6 ready steps, -1 = all) are
/// ranked within their task and taken while `rank + running(task) <= ?7`.
const PICK_PER_TASK: &str = concat!(
    "WITH cand AS (
        SELECT s.id, s.task_id, s.ready_at FROM steps s WHERE ",
    claim_filters!(),
    " ORDER BY s.ready_at, s.id LIMIT ?6
     ), ranked AS (
        SELECT c.id, c.ready_at,
               ROW_NUMBER() OVER (PARTITION BY c.task_id ORDER BY c.ready_at, c.id) AS rn,
               (SELECT COUNT(*) FROM steps r
                WHERE r.task_id = c.task_id AND r.status = 'in_progress') AS running
        FROM cand c
     )
     SELECT id FROM ranked WHERE rn + running <= ?7 ORDER BY ready_at, id LIMIT ?5"
);

async fn pick(conn: &mut SqliteConnection, p: &ClaimParams) -> StoreResult<Vec<Uuid>> {
    let kinds = p.kinds.as_ref().map(|k| json_text(&json!(k)));
    let exclude = json_text(&json!(p.exclude_kinds));
    let namespaces = p.namespaces.as_ref().map(|n| json_text(&json!(n)));
    let limit = i64::from(p.limit);
    let Some(per_task) = p.per_task_limit else {
        return sqlx::query_scalar(PICK)
            .bind(micros(p.now))
            .bind(kinds)
            .bind(exclude)
            .bind(namespaces)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
            .db();
    };
    // A window of candidates keeps the usual claim an index range scan. When
    // tasks at their limit crowd it out, look at the whole frontier: correct
    // (no starvation), and only as costly as the frontier is large.
    let mut picked = Vec::new();
    for window in [limit.saturating_mul(4).saturating_add(64), -1] {
        picked = sqlx::query_scalar(PICK_PER_TASK)
            .bind(micros(p.now))
            .bind(&kinds)
            .bind(&exclude)
            .bind(&namespaces)
            .bind(limit)
            .bind(window)
            .bind(i64::from(per_task))
            .fetch_all(&mut *conn)
            .await
            .db()?;
        if picked.len() as i64 >= limit {
            break;
        }
    }
    Ok(picked)
}

pub(crate) async fn claim(store: &SqliteStore, p: &ClaimParams) -> StoreResult<Vec<ClaimedStep>> {
    if p.limit == 0 || p.per_task_limit == Some(0) {
        return Ok(Vec::new());
    }
    let mut tx = store.begin().await?;
    let ids = pick(&mut tx, p).await?;
    if ids.is_empty() {
        // Nothing written: dropping the transaction rolls it back.
        return Ok(Vec::new());
    }
    let now = micros(p.now);
    let leases: Vec<Value> = ids
        .iter()
        .map(|id| json!([hex(id).to_string(), hex(&Uuid::new_v4()).to_string()]))
        .collect();
    let rows = sqlx::query(
        "UPDATE steps SET status = 'in_progress', ready_at = NULL, attempts = attempts + 1,
                last_attempted_at = ?2, lease_owner = ?3, lease_token = j.token,
                lease_expires_at = ?4, updated_at = ?2
         FROM (SELECT unhex(value->>0) AS id, unhex(value->>1) AS token FROM json_each(?1)) AS j
         WHERE steps.id = j.id
         RETURNING steps.id, steps.task_id, steps.name, steps.handler_kind, steps.handler_config,
                   steps.inputs, steps.attempts, steps.max_attempts, steps.timeout_seconds,
                   steps.lease_token",
    )
    .bind(Value::Array(leases).to_string())
    .bind(now)
    .bind(&p.worker_id)
    .bind(micros(p.lease_until))
    .fetch_all(&mut *tx)
    .await
    .db()?;

    let mut journal = Journal::default();
    let mut steps: HashMap<Uuid, ClaimedStep> = HashMap::with_capacity(rows.len());
    let mut task_ids: Vec<Uuid> = Vec::new();
    let mut seen: HashSet<Uuid> = HashSet::new();
    let lease_expires_at = crate::codec::truncate(p.lease_until);
    for r in &rows {
        let step_id: Uuid = r.try_get(0).db()?;
        let task_id: Uuid = r.try_get(1).db()?;
        let attempt: i32 = r.try_get(6).db()?;
        journal.step(
            step_id,
            task_id,
            Some(StepState::Pending),
            StepState::InProgress,
            p.now,
            json!({"attempt": attempt, "worker": p.worker_id}),
        );
        if seen.insert(task_id) {
            task_ids.push(task_id);
        }
        steps.insert(
            step_id,
            ClaimedStep {
                step_id,
                task_id,
                step_name: r.try_get(2).db()?,
                handler: HandlerSpec {
                    kind: r.try_get(3).db()?,
                    config: json(r.try_get(4).db()?)?,
                },
                inputs: json(r.try_get(5).db()?)?,
                attempt,
                max_attempts: r.try_get(7).db()?,
                timeout_seconds: r.try_get(8).db()?,
                lease_token: r.try_get(9).db()?,
                lease_expires_at,
                namespace: String::new(),
                task_name: String::new(),
                version: String::new(),
                context: Value::Null,
                correlation_id: String::new(),
                parent_results: Map::new(),
            },
        );
    }
    let tasks_json = id_list(&task_ids);

    // Tasks still pending start now. (`+status`: look tasks up by id, never
    // scan the status index, whose 'pending' range is the whole backlog.)
    let started: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tasks SET status = 'in_progress', updated_at = ?2
         WHERE id IN (SELECT unhex(value) FROM json_each(?1)) AND +status = 'pending'
         RETURNING id",
    )
    .bind(&tasks_json)
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .db()?;
    for t in started {
        journal.task(
            t,
            Some(TaskState::Pending),
            TaskState::InProgress,
            p.now,
            json!({}),
        );
    }

    // What the handlers need from their tasks, once per task.
    let task_rows = sqlx::query(
        "SELECT id, namespace, name, version, context, correlation_id FROM tasks
         WHERE id IN (SELECT unhex(value) FROM json_each(?1))",
    )
    .bind(&tasks_json)
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let mut tasks: HashMap<Uuid, (String, String, String, Value, String)> = HashMap::new();
    for r in &task_rows {
        tasks.insert(
            r.try_get(0).db()?,
            (
                r.try_get(1).db()?,
                r.try_get(2).db()?,
                r.try_get(3).db()?,
                json(r.try_get(4).db()?)?,
                r.try_get(5).db()?,
            ),
        );
    }

    // Parents' results for the whole batch in one query.
    let parents = sqlx::query(
        "SELECT e.child_id, p.name, p.results FROM step_edges e JOIN steps p ON p.id = e.parent_id
         WHERE e.child_id IN (SELECT unhex(value) FROM json_each(?1))",
    )
    .bind(id_list(&ids))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    for r in &parents {
        let child: Uuid = r.try_get(0).db()?;
        let results: Option<&str> = r.try_get(2).db()?;
        if let Some(step) = steps.get_mut(&child) {
            step.parent_results.insert(
                r.try_get(1).db()?,
                results.map(json).transpose()?.unwrap_or(Value::Null),
            );
        }
    }

    journal.flush(&mut tx, p.now).await?;
    tx.commit().await.db()?;
    store.emit(journal.events);

    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(mut step) = steps.remove(&id) else {
            return Err(corrupt(format!("claimed step {id} was not updated")));
        };
        let Some((namespace, name, version, context, correlation_id)) = tasks.get(&step.task_id)
        else {
            return Err(corrupt(format!("step {id} has no task")));
        };
        step.namespace = namespace.clone();
        step.task_name = name.clone();
        step.version = version.clone();
        step.context = context.clone();
        step.correlation_id = correlation_id.clone();
        out.push(step);
    }
    Ok(out)
}

/// The state of a step an outcome refers to.
struct Held {
    task_id: Uuid,
    in_progress: bool,
    token: Option<Uuid>,
    attempts: i64,
    owner: Option<String>,
}

pub(crate) async fn finish_many(
    store: &SqliteStore,
    outcomes: &[StepOutcome],
    now: DateTime<Utc>,
) -> StoreResult<FinishReport> {
    let mut report = FinishReport::default();
    if outcomes.is_empty() {
        return Ok(report);
    }
    let mut tx = store.begin().await?;
    let rows = sqlx::query(
        "SELECT id, task_id, status = 'in_progress', lease_token, attempts, lease_owner FROM steps
         WHERE id IN (SELECT unhex(value) FROM json_each(?1))",
    )
    .bind(id_list(outcomes.iter().map(|o| &o.lease.step_id)))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let mut held: HashMap<Uuid, Held> = HashMap::with_capacity(rows.len());
    for r in &rows {
        held.insert(
            r.try_get(0).db()?,
            Held {
                task_id: r.try_get(1).db()?,
                in_progress: r.try_get(2).db()?,
                token: r.try_get(3).db()?,
                attempts: r.try_get(4).db()?,
                owner: r.try_get(5).db()?,
            },
        );
    }

    let mut journal = Journal::default();
    let mut applied: HashSet<Uuid> = HashSet::with_capacity(outcomes.len());
    let mut successes = Vec::new();
    let mut success_ids = Vec::new();
    let mut failures = Vec::new();
    let micros_now = micros(now);
    for o in outcomes {
        let id = o.lease.step_id;
        let h = match held.get(&id) {
            // The same step twice in a batch: only the first counts.
            Some(h) if h.in_progress && h.token == Some(o.lease.token) && applied.insert(id) => h,
            _ => {
                report.lease_lost.push(id);
                continue;
            }
        };
        report.applied += 1;
        let attempt = json!({"attempt": h.attempts, "worker": h.owner});
        match &o.result {
            OutcomeResult::Success(results) => {
                successes.push(json!([hex(&id).to_string(), results]));
                success_ids.push(id);
                journal.step(
                    id,
                    h.task_id,
                    Some(StepState::InProgress),
                    StepState::Complete,
                    now,
                    attempt,
                );
                journal.delta(h.task_id, -1, -1, 0);
            }
            OutcomeResult::Failure { error, retry_at } => {
                let error_json = serde_json::to_value(error)
                    .map_err(|e| corrupt(format!("step error record: {e}")))?;
                let retry = retry_at.map(micros);
                failures.push(json!([hex(&id).to_string(), error_json.clone(), retry]));
                let mut meta = attempt;
                meta["error"] = error_json;
                journal.step(
                    id,
                    h.task_id,
                    Some(StepState::InProgress),
                    StepState::Error,
                    now,
                    meta,
                );
                match retry_at {
                    Some(at) => {
                        journal.step(
                            id,
                            h.task_id,
                            Some(StepState::Error),
                            StepState::Pending,
                            now,
                            json!({"attempt": h.attempts, "retry_at": at.to_rfc3339()}),
                        );
                        // Still live (now as a scheduled retry): counters unchanged.
                        journal.delta(h.task_id, 0, 0, 0);
                        if micros(*at) <= micros_now {
                            report.newly_ready += 1;
                            journal.events.work_available = true;
                        }
                    }
                    None => journal.delta(h.task_id, 0, -1, 1),
                }
            }
        }
    }

    if !successes.is_empty() {
        sqlx::query(
            "UPDATE steps SET status = 'complete', results = j.results, completed_at = ?2,
                    updated_at = ?2, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
             FROM (SELECT unhex(value->>0) AS id, value->1 AS results FROM json_each(?1)) AS j
             WHERE steps.id = j.id",
        )
        .bind(Value::Array(successes).to_string())
        .bind(micros_now)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    if !failures.is_empty() {
        sqlx::query(
            "UPDATE steps SET status = CASE WHEN j.retry_at IS NULL THEN 'error' ELSE 'pending' END,
                    ready_at = j.retry_at, last_error = j.error, updated_at = ?2,
                    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
             FROM (SELECT unhex(value->>0) AS id, value->1 AS error, value->>2 AS retry_at
                   FROM json_each(?1)) AS j
             WHERE steps.id = j.id",
        )
        .bind(Value::Array(failures).to_string())
        .bind(micros_now)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    report.newly_ready += unblock_children(&mut tx, &mut journal, &success_ids, now).await?;
    journal.flush(&mut tx, now).await?;
    tx.commit().await.db()?;
    report.finished_tasks = std::mem::take(&mut journal.finished);
    store.emit(journal.events);
    Ok(report)
}

pub(crate) async fn renew(
    store: &SqliteStore,
    leases: &[LeaseRef],
    until: DateTime<Utc>,
    _now: DateTime<Utc>,
) -> StoreResult<Vec<Uuid>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<Value> = leases
        .iter()
        .map(|l| json!([hex(&l.step_id).to_string(), hex(&l.token).to_string()]))
        .collect();
    // One statement: autocommit takes the write lock before it reads.
    let kept: HashSet<Uuid> = sqlx::query_scalar(
        "UPDATE steps SET lease_expires_at = ?2
         FROM (SELECT unhex(value->>0) AS id, unhex(value->>1) AS token FROM json_each(?1)) AS j
         WHERE steps.id = j.id AND steps.lease_token = j.token AND steps.status = 'in_progress'
         RETURNING steps.id",
    )
    .bind(Value::Array(pairs).to_string())
    .bind(micros(until))
    .fetch_all(&store.writer)
    .await
    .db()?
    .into_iter()
    .collect();
    Ok(leases
        .iter()
        .map(|l| l.step_id)
        .filter(|id| !kept.contains(id))
        .collect())
}

pub(crate) async fn rescue_expired(
    store: &SqliteStore,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<u64> {
    if limit == 0 {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    let rows = sqlx::query(
        "SELECT id, task_id, attempts, max_attempts, lease_owner FROM steps
         WHERE status = 'in_progress' AND lease_expires_at < ?1
         ORDER BY lease_expires_at LIMIT ?2",
    )
    .bind(micros(now))
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut journal = Journal::default();
    let mut retry = Vec::new();
    let mut fail = Vec::new();
    for r in &rows {
        let id: Uuid = r.try_get(0).db()?;
        let task: Uuid = r.try_get(1).db()?;
        let attempts: i64 = r.try_get(2).db()?;
        let max_attempts: i64 = r.try_get(3).db()?;
        let owner: Option<String> = r.try_get(4).db()?;
        let meta = json!({"kind": "lease_expired", "attempt": attempts, "worker": owner});
        journal.step(
            id,
            task,
            Some(StepState::InProgress),
            StepState::Error,
            now,
            meta,
        );
        if attempts < max_attempts {
            journal.step(
                id,
                task,
                Some(StepState::Error),
                StepState::Pending,
                now,
                json!({"kind": "lease_expired", "attempt": attempts}),
            );
            journal.delta(task, 0, 0, 0);
            retry.push(id);
        } else {
            journal.delta(task, 0, -1, 1);
            fail.push(id);
        }
    }
    if !retry.is_empty() {
        journal.events.work_available = true;
    }
    // The two groups differ only in the target state.
    for (ids, to_pending) in [(&retry, true), (&fail, false)] {
        if ids.is_empty() {
            continue;
        }
        sqlx::query(
            "UPDATE steps SET
                status = CASE WHEN ?3 THEN 'pending' ELSE 'error' END,
                ready_at = CASE WHEN ?3 THEN ?2 ELSE NULL END,
                last_error = json_object('message', 'lease expired before the step finished',
                                         'kind', 'lease_expired', 'attempt', attempts),
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?2
             WHERE id IN (SELECT unhex(value) FROM json_each(?1))",
        )
        .bind(id_list(ids.iter()))
        .bind(micros(now))
        .bind(to_pending)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    journal.flush(&mut tx, now).await?;
    tx.commit().await.db()?;
    store.emit(journal.events);
    Ok(rows.len() as u64)
}

pub(crate) async fn next_ready_at(pool: &SqlitePool) -> StoreResult<Option<DateTime<Utc>>> {
    let at: Option<i64> =
        sqlx::query_scalar("SELECT MIN(ready_at) FROM steps WHERE ready_at IS NOT NULL")
            .fetch_one(pool)
            .await
            .db()?;
    at.map(time).transpose()
}
