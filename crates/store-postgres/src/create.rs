//! Task creation: one statement inserts every task, step and edge of a
//! batch and the tasks' first transitions (arrays bound once, expanded with
//! `UNNEST`), reads the flow pauses that hold any of them and queues the
//! NOTIFYs. A batch without identities or flow settings is that one
//! statement in autocommit: one round trip to the database.

use crate::PgStore;
use crate::decode::{TASK_COLS, task_row};
use crate::error::TxError;
use crate::events::Emit;
use crate::events_outbox::events_on;
use crate::tx;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::AssertSqlSafe;
use std::collections::HashMap;
use std::sync::LazyLock;
use tasker_store::{NewTask, StoreError, TaskRow};
use uuid::Uuid;

/// Inserts a batch: tasks, steps, edges, the tasks' first transitions, the
/// `task.created` events (`ev`; their transitions are marked `evented`, so
/// the outbox trigger skips them), and
/// queues the NOTIFYs (`$35` wake claimers?, `$36` origin, `$37`
/// `tasker_task` payloads), in one statement, so a batch without
/// identities or flow settings is created in one round trip (autocommit).
/// A step's creation is not a transition: its history starts with its
/// first change, and `steps.created_at` says when it was made (as in the
/// Ruby engine; docs/STORAGE.md, "A step's history").
///
/// `fp` takes each namespace's flow lock shared and then reads the pauses
/// (`tasker_flow_pauses_for`, a VOLATILE function: its read takes a snapshot
/// after the lock), before any step is inserted; steps of tasks a pause
/// holds are inserted paused (docs/FLOW_CONTROL.md). `MATERIALIZED`: the
/// function runs once, whatever the planner does with the CTE.
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    let events_on = events_on!();
    format!(
        "WITH fp AS MATERIALIZED ( \
             SELECT namespace, name FROM tasker_flow_pauses_for($2::text[]) \
         ), held AS ( \
             SELECT x.id FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS x(id, namespace, name) \
             WHERE EXISTS (SELECT 1 FROM fp WHERE fp.namespace = x.namespace AND fp.name IN ('', x.name)) \
         ), t AS ( \
             INSERT INTO tasks (id, namespace, name, version, status, context, initiator, source_system, \
                 reason, tags, correlation_id, identity_hash, steps_total, steps_remaining, steps_live, \
                 steps_blocked, created_at, updated_at) \
             SELECT x.id, x.namespace, x.name, x.version, 'pending', x.context, x.initiator, x.source_system, \
                 x.reason, x.tags, x.correlation_id, x.identity_hash, x.total, x.total, x.live, 0, \
                 x.created_at, x.created_at \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], \
                 $8::text[], $9::jsonb[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], \
                 $14::timestamptz[]) WITH ORDINALITY AS x(id, namespace, name, version, context, initiator, \
                 source_system, reason, tags, correlation_id, identity_hash, total, live, created_at, ord) \
             ORDER BY x.ord \
             RETURNING {TASK_COLS} \
         ), s AS ( \
             INSERT INTO steps (id, task_id, name, position, description, dependent_system, handler_kind, \
                 handler_config, inputs, status, attempts, max_attempts, retry_limit, retryable, skippable, \
                 timeout_seconds, remaining_parents, ready_at, created_at, updated_at, paused) \
             SELECT y.id, y.task_id, y.name, y.position, y.description, y.dependent_system, y.kind, \
                 y.config, y.inputs, 'pending', 0, y.max_attempts, y.retry_limit, y.retryable, y.skippable, \
                 y.timeout, y.remaining, y.ready_at, y.created_at, y.created_at, \
                 y.task_id = ANY (ARRAY(SELECT id FROM held)) \
             FROM UNNEST($15::uuid[], $16::uuid[], $17::text[], $18::int[], $19::text[], $20::text[], \
                 $21::text[], $22::jsonb[], $23::jsonb[], $24::int[], $25::int[], $26::bool[], $27::bool[], \
                 $28::float8[], $29::int[], $30::timestamptz[], $31::timestamptz[]) WITH ORDINALITY \
                 AS y(id, task_id, name, position, description, dependent_system, kind, config, inputs, \
                 max_attempts, retry_limit, retryable, skippable, timeout, remaining, ready_at, created_at, ord) \
             ORDER BY y.ord \
         ), e AS ( \
             INSERT INTO step_edges (parent_id, child_id, task_id) \
             SELECT * FROM UNNEST($32::uuid[], $33::uuid[], $34::uuid[]) \
         ), tt AS ( \
             INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, evented) \
             SELECT id, NULL, 'pending', created_at, '{{}}'::jsonb, true FROM t \
             RETURNING id, task_id, from_state, to_state, created_at, metadata \
         ), ev AS ( \
             INSERT INTO events (type, task_id, step_id, namespace, created_at, payload) \
             SELECT x.type, r.task_id, NULL, t.namespace, r.created_at, \
                    tasker_task_event_payload(x.type, t.name, t.version, r.from_state, r.to_state, \
                        t.correlation_id, t.initiator, t.source_system, t.steps_total, r.metadata) \
             FROM tt r JOIN t ON t.id = r.task_id \
             CROSS JOIN LATERAL (SELECT tasker_task_event_type(r.from_state, r.to_state, r.metadata) AS type) x \
             WHERE {events_on} \
             ORDER BY r.id \
         ) \
         SELECT t.*, \
                (SELECT count(pg_notify('tasker_work', $36)) WHERE $35) AS notified_work, \
                (SELECT count(pg_notify('tasker_task', p)) FROM UNNEST($37::text[]) AS p) AS notified_tasks \
         FROM t"
    )
});

/// Column arrays of a batch.
#[derive(Default)]
struct Batch {
    t_id: Vec<Uuid>,
    t_namespace: Vec<String>,
    t_name: Vec<String>,
    t_version: Vec<String>,
    t_context: Vec<Value>,
    t_initiator: Vec<String>,
    t_source: Vec<String>,
    t_reason: Vec<String>,
    t_tags: Vec<Value>,
    t_correlation: Vec<String>,
    t_identity: Vec<Option<String>>,
    t_total: Vec<i64>,
    t_live: Vec<i64>,
    t_created: Vec<DateTime<Utc>>,
    s_id: Vec<Uuid>,
    s_task: Vec<Uuid>,
    s_name: Vec<String>,
    s_position: Vec<i32>,
    s_description: Vec<Option<String>>,
    s_system: Vec<String>,
    s_kind: Vec<String>,
    s_config: Vec<Value>,
    s_inputs: Vec<Value>,
    s_max_attempts: Vec<i32>,
    s_retry_limit: Vec<i32>,
    s_retryable: Vec<bool>,
    s_skippable: Vec<bool>,
    s_timeout: Vec<Option<f64>>,
    s_remaining: Vec<i32>,
    s_ready: Vec<Option<DateTime<Utc>>>,
    s_created: Vec<DateTime<Utc>>,
    e_parent: Vec<Uuid>,
    e_child: Vec<Uuid>,
    e_task: Vec<Uuid>,
}

impl Batch {
    fn push(&mut self, t: &NewTask) -> Result<i64, StoreError> {
        let n = t.steps.len();
        if n == 0 {
            return Err(StoreError::Conflict(format!("task {} has no steps", t.id)));
        }
        let mut roots = 0i64;
        for (i, s) in t.steps.iter().enumerate() {
            let mut parents: Vec<usize> = s.parents.clone();
            parents.sort_unstable();
            parents.dedup();
            if let Some(bad) = parents.iter().find(|&&p| p >= n || p == i) {
                return Err(StoreError::Conflict(format!(
                    "task {}: step `{}` has an invalid parent index {bad}",
                    t.id, s.name
                )));
            }
            let position = i32::try_from(i)
                .map_err(|_| StoreError::Conflict(format!("task {}: too many steps", t.id)))?;
            let remaining = i32::try_from(parents.len())
                .map_err(|_| StoreError::Conflict(format!("task {}: too many parents", t.id)))?;
            if remaining == 0 {
                roots += 1;
            }
            for p in parents {
                self.e_parent.push(t.steps[p].id);
                self.e_child.push(s.id);
                self.e_task.push(t.id);
            }
            self.s_id.push(s.id);
            self.s_task.push(t.id);
            self.s_name.push(s.name.clone());
            self.s_position.push(position);
            self.s_description.push(s.description.clone());
            self.s_system.push(s.dependent_system.clone());
            self.s_kind.push(s.handler.kind.clone());
            self.s_config.push(s.handler.config.clone());
            self.s_inputs.push(s.inputs.clone());
            self.s_max_attempts.push(s.max_attempts);
            self.s_retry_limit.push(s.retry_limit);
            self.s_retryable.push(s.retryable);
            self.s_skippable.push(s.skippable);
            self.s_timeout.push(s.timeout_seconds);
            self.s_remaining.push(remaining);
            self.s_ready.push((remaining == 0).then_some(t.now));
            self.s_created.push(t.now);
        }
        self.t_id.push(t.id);
        self.t_namespace.push(t.namespace.clone());
        self.t_name.push(t.name.clone());
        self.t_version.push(t.version.clone());
        self.t_context.push(t.context.clone());
        self.t_initiator.push(t.initiator.clone());
        self.t_source.push(t.source_system.clone());
        self.t_reason.push(t.reason.clone());
        self.t_tags.push(Value::from(t.tags.clone()));
        self.t_correlation.push(t.correlation_id.clone());
        self.t_identity
            .push(t.identity.as_ref().map(|i| i.hash.clone()));
        self.t_total.push(n as i64);
        self.t_live.push(roots);
        self.t_created.push(t.now);
        Ok(roots)
    }
}

/// Duplicates inside the batch itself: a later task whose window covers an
/// earlier task of the batch with the same hash.
fn duplicate_in_batch(tasks: &[NewTask]) -> Option<Uuid> {
    let mut seen: HashMap<&str, Vec<(DateTime<Utc>, Uuid)>> = HashMap::new();
    for t in tasks {
        let Some(identity) = &t.identity else {
            continue;
        };
        if let Some(prev) = seen.get(identity.hash.as_str())
            && let Some((_, id)) = prev.iter().find(|(at, _)| *at >= identity.since)
        {
            return Some(*id);
        }
        seen.entry(identity.hash.as_str())
            .or_default()
            .push((t.now, t.id));
    }
    None
}

/// Checks a batch and turns it into column arrays: the arrays, and how many
/// root steps become ready.
fn prepare(tasks: &[NewTask]) -> Result<(Batch, i64), TxError> {
    let mut batch = Batch::default();
    let mut roots = 0;
    for t in tasks {
        roots += batch.push(t)?;
    }
    if let Some(existing) = duplicate_in_batch(tasks) {
        return Err(StoreError::DuplicateTask { existing }.into());
    }
    Ok((batch, roots))
}

/// Whether the batch needs statements besides [`INSERT_SQL`]: identities
/// (locked and checked first) or flow settings (their own rows).
fn needs_transaction(tasks: &[NewTask]) -> bool {
    tasks
        .iter()
        .any(|t| t.identity.is_some() || t.steps.iter().any(|s| !s.flow.is_none()))
}

/// Serialises creators of the same identity hashes and refuses a task whose
/// identity already exists within its window.
async fn check_identities(tx: &mut sqlx::PgConnection, tasks: &[NewTask]) -> Result<(), TxError> {
    let identified: Vec<(&str, DateTime<Utc>)> = tasks
        .iter()
        .filter_map(|t| t.identity.as_ref().map(|i| (i.hash.as_str(), i.since)))
        .collect();
    if identified.is_empty() {
        return Ok(());
    }
    // Serialise creators of the same hash: the lock is held to the end of
    // the transaction, so the check below and the insert are atomic with
    // respect to any other creator of that hash. Hashes are locked in
    // sorted order so two batches cannot deadlock.
    let mut hashes: Vec<&str> = identified.iter().map(|(h, _)| *h).collect();
    hashes.sort_unstable();
    hashes.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(h, 0)) \
         FROM UNNEST($1::text[]) WITH ORDINALITY AS x(h, ord) ORDER BY ord",
    )
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    let (h, since): (Vec<&str>, Vec<DateTime<Utc>>) = identified.into_iter().unzip();
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT (SELECT t.id FROM tasks t WHERE t.identity_hash = x.h AND t.created_at >= x.since \
                 ORDER BY t.created_at DESC LIMIT 1) AS existing \
         FROM UNNEST($1::text[], $2::timestamptz[]) AS x(h, since) \
         ORDER BY existing NULLS LAST LIMIT 1",
    )
    .bind(&h)
    .bind(&since)
    .fetch_one(&mut *tx)
    .await?;
    match existing {
        Some(existing) => Err(StoreError::DuplicateTask { existing }.into()),
        None => Ok(()),
    }
}

/// Runs [`INSERT_SQL`] for a prepared batch, queuing the NOTIFYs of `emit`
/// when given (sent at commit; in autocommit, when the statement ends).
/// Returns the task rows in the caller's order.
async fn insert(
    conn: &mut sqlx::PgConnection,
    b: &Batch,
    tasks: &[NewTask],
    emit: Option<(&mut Emit, &crate::events::Origin)>,
) -> Result<Vec<TaskRow>, TxError> {
    let (work, origin, payloads) = match &emit {
        Some((e, o)) if !e.notified => (e.work, o.id.as_str(), e.task_payloads(o)),
        _ => (false, "", Vec::new()),
    };
    let rows = sqlx::query(AssertSqlSafe(INSERT_SQL.as_str()))
        .bind(&b.t_id)
        .bind(&b.t_namespace)
        .bind(&b.t_name)
        .bind(&b.t_version)
        .bind(&b.t_context)
        .bind(&b.t_initiator)
        .bind(&b.t_source)
        .bind(&b.t_reason)
        .bind(&b.t_tags)
        .bind(&b.t_correlation)
        .bind(&b.t_identity)
        .bind(&b.t_total)
        .bind(&b.t_live)
        .bind(&b.t_created)
        .bind(&b.s_id)
        .bind(&b.s_task)
        .bind(&b.s_name)
        .bind(&b.s_position)
        .bind(&b.s_description)
        .bind(&b.s_system)
        .bind(&b.s_kind)
        .bind(&b.s_config)
        .bind(&b.s_inputs)
        .bind(&b.s_max_attempts)
        .bind(&b.s_retry_limit)
        .bind(&b.s_retryable)
        .bind(&b.s_skippable)
        .bind(&b.s_timeout)
        .bind(&b.s_remaining)
        .bind(&b.s_ready)
        .bind(&b.s_created)
        .bind(&b.e_parent)
        .bind(&b.e_child)
        .bind(&b.e_task)
        .bind(work)
        .bind(origin)
        .bind(&payloads)
        .fetch_all(&mut *conn)
        .await?;
    if let Some((e, _)) = emit {
        e.notified = true;
    }
    let mut by_id: HashMap<Uuid, TaskRow> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let row = task_row(r)?;
        by_id.insert(row.id, row);
    }
    // Rows in the order the caller gave.
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let row = by_id
            .remove(&t.id)
            .ok_or_else(|| StoreError::Internal(format!("task {} was not inserted", t.id)))?;
        out.push(row);
    }
    Ok(out)
}

impl PgStore {
    pub(crate) async fn create_once(
        &self,
        tasks: &[NewTask],
    ) -> Result<(Vec<TaskRow>, Emit), TxError> {
        let (batch, roots) = prepare(tasks)?;
        let mut emit = Emit {
            work: roots > 0,
            ..Emit::default()
        };
        for t in tasks {
            emit.changed(t.id);
        }
        if !needs_transaction(tasks) {
            // One statement is atomic on its own: autocommit, one round
            // trip for the whole batch, its NOTIFYs included.
            let mut conn = self.inner.pool.acquire().await?;
            let out = insert(&mut conn, &batch, tasks, Some((&mut emit, self.origin()))).await?;
            return Ok((out, emit));
        }
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            check_identities(&mut tx, tasks).await?;
            let out = insert(&mut tx, &batch, tasks, Some((&mut emit, self.origin()))).await?;
            crate::flow::create_flow(&mut tx, tasks).await?;
            Ok((out, emit))
        }
        .await;
        tx::end(tx, res).await
    }

    /// Checks and inserts tasks inside the caller's transaction (a
    /// schedule's tick creates its task with its tick): the rows in the
    /// caller's order, and how many root steps became ready. Queues no
    /// NOTIFY: the caller sends its own.
    pub(crate) async fn create_in(
        &self,
        tx: &mut sqlx::PgConnection,
        tasks: &[NewTask],
    ) -> Result<(Vec<TaskRow>, i64), TxError> {
        let (batch, roots) = prepare(tasks)?;
        check_identities(&mut *tx, tasks).await?;
        let out = insert(&mut *tx, &batch, tasks, None).await?;
        crate::flow::create_flow(&mut *tx, tasks).await?;
        Ok((out, roots))
    }
}
