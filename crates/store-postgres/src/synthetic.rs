//! Synthetic finished history, generated in SQL (`generate_series`), for
//! benchmarks and plan tests at millions of rows: the engine would take
//! hours to run that many tasks on a small machine.
//!
//! Each task is a finished single-step task as the engine leaves it: the
//! rows go through the same states in separate transactions (created
//! pending and ready, claimed, completed), so the tables and the partial
//! ready index carry the same dead row versions an engine-run history does
//! until a vacuum; and the same transitions (three per task, three per
//! step). Ids are UUID v7 of the creation time, like the engine's.

use crate::PgStore;
use crate::error::store_err;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use tasker_store::StoreResult;

/// What the tasks CTE (`tk`, over `tasks t`) returns for [`EVENTS`].
const TASK_RET: &str = "t.id, t.namespace, t.name, t.version, t.correlation_id, t.initiator, t.source_system, t.steps_total";
/// What the steps CTE (`st`, over `steps s`) returns for [`EVENTS`].
const STEP_RET: &str = "s.id, s.name, s.status, s.results, s.last_error, s.ready_at, \
     s.last_attempted_at, s.max_attempts";
/// What the transitions CTEs (`tt`, `stt`) return for [`EVENTS`].
const TR_RET: &str = "id, task_id, from_state, to_state, created_at, metadata";

/// The lifecycle events of a synthetic statement's transitions (`tt`,
/// `stt`, marked `evented`), from the rows it wrote (`tk`, `st`): the same
/// events, through the same functions, as the outbox trigger and the
/// engine's statements write, but set-based (the trigger runs per row).
const EVENTS: &str = "INSERT INTO events (type, task_id, step_id, namespace, created_at, payload) \
     SELECT e.type, e.task_id, e.step_id, e.namespace, e.created_at, e.payload FROM ( \
         SELECT 0 AS part, r.id AS rid, x.type, r.task_id, NULL::uuid AS step_id, k.namespace, \
                r.created_at, \
                tasker_task_event_payload(x.type, k.name, k.version, r.from_state, r.to_state, \
                    k.correlation_id, k.initiator, k.source_system, k.steps_total, r.metadata) AS payload \
         FROM tt r JOIN tk k ON k.id = r.task_id \
         CROSS JOIN LATERAL (SELECT tasker_task_event_type(r.from_state, r.to_state, r.metadata) AS type) x \
         WHERE x.type IS NOT NULL \
         UNION ALL \
         SELECT 1, r.id, x.type, r.task_id, r.step_id, k.namespace, r.created_at, \
                tasker_step_event_payload(x.type, s.name, r.created_at, r.metadata, s.status, \
                    s.results, s.last_error, s.ready_at, s.last_attempted_at, s.max_attempts) \
         FROM stt r JOIN st s ON s.id = r.step_id JOIN tk k ON k.id = r.task_id \
         CROSS JOIN LATERAL (SELECT tasker_step_event_type(r.from_state, r.to_state, r.metadata) AS type) x \
         WHERE x.type IS NOT NULL \
     ) e \
     ORDER BY e.part, e.rid";

/// Tasks per batch (three transactions each).
const BATCH: u64 = 50_000;

/// A UUID v7 of time `t` (milliseconds), random-looking bits from `seed`.
fn uuid7(t: &str, seed: &str) -> String {
    format!(
        "(lpad(to_hex((extract(epoch FROM {t}) * 1000)::bigint), 12, '0') || '7' || \
          substr(md5({seed}), 1, 3) || '8' || substr(md5({seed}), 4, 15))::uuid"
    )
}

impl PgStore {
    /// Adds `n` finished single-step tasks (namespace `namespace`, template
    /// `single@1.0.0`), created `spacing_ms` apart from `start` and completed
    /// 2 ms after their creation. With `churn`, rows are written pending,
    /// then claimed, then completed (three versions each, as the engine
    /// leaves them before a vacuum); without, written complete at once
    /// (faster, for plan checks). Not for production databases.
    pub async fn load_finished_history(
        &self,
        n: u64,
        start: DateTime<Utc>,
        spacing_ms: f64,
        namespace: &str,
        churn: bool,
    ) -> StoreResult<()> {
        let pool = &self.inner.pool;
        // The months of the period get their history partitions, as the
        // pruner would have created them ahead of time (else the rows would
        // land in the DEFAULT partitions).
        let span_ms = n as f64 * spacing_ms;
        let months = (span_ms / (28.0 * 86_400_000.0)).ceil() as u32 + 1;
        self.partitions_ensure_at(start, months).await?;
        let salt = uuid::Uuid::new_v4().simple().to_string();
        let mut lo = 0u64;
        while lo < n {
            let hi = (lo + BATCH).min(n) - 1;
            let task_id = uuid7("s.t", &format!("'{salt}t' || s.i"));
            let step_id = uuid7("s.t", &format!("'{salt}s' || s.i"));
            let (task_state, step_state) = if churn {
                // Created: task pending, step pending and ready.
                ("'pending', NULL, 1, 1", "'pending', NULL, 0, t, NULL, t")
            } else {
                (
                    "'complete', t + interval '2 ms', 0, 0",
                    "'complete', '{}'::jsonb, 1, NULL, t + interval '1 ms', t + interval '2 ms'",
                )
            };
            // The task's history starts with its creation (`→ pending`),
            // a step's with its first change (`stt` skips the first row).
            let transitions = if churn {
                ""
            } else {
                ", (task_id, 'pending', 'in_progress', t + interval '1 ms'), \
                   (task_id, 'in_progress', 'complete', t + interval '2 ms')"
            };
            sqlx::query(AssertSqlSafe(format!(
                "WITH s AS MATERIALIZED ( \
                     SELECT i, $1::timestamptz + (i * $2::float8) * interval '1 millisecond' AS t \
                     FROM generate_series($3::bigint, $4::bigint) i), \
                 ids AS MATERIALIZED (SELECT s.i, s.t, {task_id} AS task_id, {step_id} AS step_id FROM s), \
                 tk AS (INSERT INTO tasks AS t (id, namespace, name, version, status, completed_at, \
                         steps_remaining, steps_live, context, initiator, \
                         source_system, reason, tags, correlation_id, steps_total, \
                         steps_blocked, created_at, updated_at) \
                     SELECT task_id, $5, 'single', '1.0.0', {task_state}, '{{}}', 'bench', 'bench', \
                         'history', '[]', md5(task_id::text), 1, 0, t, t FROM ids \
                     RETURNING {TASK_RET}), \
                 st AS (INSERT INTO steps AS s (id, task_id, name, position, dependent_system, handler_kind, \
                         handler_config, inputs, max_attempts, retry_limit, retryable, skippable, \
                         remaining_parents, status, results, attempts, ready_at, last_attempted_at, \
                         completed_at, created_at, updated_at) \
                     SELECT step_id, task_id, 'only', 0, 'unknown', 'noop', '{{}}', '{{}}', \
                         3, 3, true, false, 0, {step_state}, t, t FROM ids \
                     RETURNING {STEP_RET}), \
                 tt AS (INSERT INTO task_transitions (task_id, from_state, to_state, created_at, evented) \
                     SELECT x.*, true FROM ids CROSS JOIN LATERAL (VALUES (task_id, NULL, 'pending', t){transitions}) \
                         AS x(task_id, from_state, to_state, created_at) \
                     RETURNING {TR_RET}), \
                 stt AS (INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, evented) \
                     SELECT step_id, x.*, true FROM ids CROSS JOIN LATERAL (VALUES (task_id, NULL, 'pending', t){transitions}) \
                         AS x(task_id, from_state, to_state, created_at) \
                     WHERE x.from_state IS NOT NULL \
                     RETURNING step_id, {TR_RET}) \
                 {EVENTS}"
            )))
            .bind(start)
            .bind(spacing_ms)
            .bind(lo as i64)
            .bind(hi as i64)
            .bind(namespace)
            .execute(pool)
            .await
            .map_err(store_err)?;
            let batch_start =
                start + chrono::Duration::microseconds((lo as f64 * spacing_ms * 1000.0) as i64);
            let batch_end = start
                + chrono::Duration::microseconds(((hi + 1) as f64 * spacing_ms * 1000.0) as i64);
            if !churn {
                lo = hi + 1;
                continue;
            }
            // Claimed, then completed: two more versions of every row.
            for (from, to, step_set, task_set) in [
                (
                    "pending",
                    "in_progress",
                    "ready_at = NULL, attempts = 1, lease_owner = 'bench-history', \
                     lease_token = gen_random_uuid(), lease_expires_at = s.created_at + interval '30 s', \
                     last_attempted_at = s.created_at + interval '1 ms', \
                     updated_at = s.created_at + interval '1 ms'",
                    "updated_at = t.created_at + interval '1 ms'",
                ),
                (
                    "in_progress",
                    "complete",
                    "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
                     results = '{}'::jsonb, completed_at = s.created_at + interval '2 ms', \
                     updated_at = s.created_at + interval '2 ms'",
                    "steps_remaining = 0, steps_live = 0, completed_at = t.created_at + interval '2 ms', \
                     updated_at = t.created_at + interval '2 ms'",
                ),
            ] {
                sqlx::query(AssertSqlSafe(format!(
                    "WITH b AS MATERIALIZED (SELECT id FROM tasks \
                         WHERE created_at >= $1 AND created_at < $2 AND namespace = $3 AND status = '{from}'), \
                     st AS (UPDATE steps s SET status = '{to}', {step_set} FROM b \
                         WHERE s.task_id = b.id RETURNING s.task_id, s.updated_at, {STEP_RET}), \
                     tk AS (UPDATE tasks t SET status = '{to}', {task_set} FROM b \
                         WHERE t.id = b.id RETURNING t.updated_at, {TASK_RET}), \
                     tt AS (INSERT INTO task_transitions (task_id, from_state, to_state, created_at, evented) \
                         SELECT id, '{from}', '{to}', updated_at, true FROM tk \
                         RETURNING {TR_RET}), \
                     stt AS (INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, evented) \
                         SELECT id, task_id, '{from}', '{to}', updated_at, true FROM st \
                         RETURNING step_id, {TR_RET}) \
                     {EVENTS}"
                )))
                .bind(batch_start)
                .bind(batch_end)
                .bind(namespace)
                .execute(pool)
                .await
                .map_err(store_err)?;
            }
            lo = hi + 1;
        }
        Ok(())
    }
}
