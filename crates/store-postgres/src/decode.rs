//! Rows → the store's row types. Column lists live next to their decoders so
//! a query and its decoder cannot drift apart.

use crate::error::TxError;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tasker_core::{HandlerSpec, StepState, TaskState};
use tasker_store::{ClaimedStep, StepErrorRecord, StepRow, StoreError, TaskRow, TransitionRow};
use uuid::Uuid;

/// Columns of a [`TaskRow`] (unqualified, usable in `RETURNING`).
pub(crate) const TASK_COLS: &str = "id, namespace, name, version, status, context, initiator, \
     source_system, reason, tags, correlation_id, identity_hash, steps_total, steps_remaining, \
     created_at, updated_at, completed_at, paused_at";

/// The step columns of a [`StepRow`] but its parents, over `steps s`.
macro_rules! step_base_cols {
    () => {
        "s.id, s.task_id, s.name, s.position, s.description, \
     s.dependent_system, s.status, s.handler_kind, s.handler_config, s.inputs, s.results, \
     s.last_error, s.attempts, s.max_attempts, s.retry_limit, s.retryable, s.skippable, \
     s.timeout_seconds, s.remaining_parents, s.ready_at, s.lease_owner, s.lease_expires_at, \
     s.last_attempted_at, s.created_at, s.updated_at, s.completed_at, s.concurrency_key, \
     s.rate_key, s.flow_wait, s.paused"
    };
}

/// Columns of a [`StepRow`], for a query over `steps s`. Parents come from
/// the edge index on `child_id`, in template order.
pub(crate) const STEP_COLS: &str = concat!(
    step_base_cols!(),
    ", ARRAY(SELECT p.name FROM step_edges e JOIN steps p ON p.id = e.parent_id \
           WHERE e.child_id = s.id ORDER BY p.position) AS parents"
);

/// Columns of a [`StepRow`] with no parents (an empty array): for the step
/// list, which reads a task's edges once instead of once per step.
pub(crate) const STEP_LIST_COLS: &str = concat!(step_base_cols!(), ", '{}'::text[] AS parents");

/// Columns of a [`TransitionRow`] from either transition table (`entity` is
/// `task_id` or `step_id`).
pub(crate) fn transition_cols(entity: &str) -> String {
    format!("id, {entity} AS entity_id, from_state, to_state, created_at, metadata")
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> TxError {
    TxError::Store(StoreError::Internal(format!("corrupt {what}: {detail}")))
}

pub(crate) fn task_state(s: &str) -> Result<TaskState, TxError> {
    s.parse().map_err(|e| corrupt("task status", e))
}

pub(crate) fn step_state(s: &str) -> Result<StepState, TxError> {
    s.parse().map_err(|e| corrupt("step status", e))
}

/// Tags are stored as a JSON array of strings.
fn tags(v: Value) -> Result<Vec<String>, TxError> {
    serde_json::from_value(v).map_err(|e| corrupt("tags", e))
}

pub(crate) fn error_record(v: Option<Value>) -> Result<Option<StepErrorRecord>, TxError> {
    v.map(|v| serde_json::from_value(v).map_err(|e| corrupt("last_error", e)))
        .transpose()
}

pub(crate) fn task_row(r: &PgRow) -> Result<TaskRow, TxError> {
    Ok(TaskRow {
        id: r.try_get("id")?,
        namespace: r.try_get("namespace")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        status: task_state(r.try_get("status")?)?,
        context: r.try_get("context")?,
        initiator: r.try_get("initiator")?,
        source_system: r.try_get("source_system")?,
        reason: r.try_get("reason")?,
        tags: tags(r.try_get("tags")?)?,
        correlation_id: r.try_get("correlation_id")?,
        identity_hash: r.try_get("identity_hash")?,
        steps_total: r.try_get("steps_total")?,
        steps_remaining: r.try_get("steps_remaining")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        completed_at: r.try_get("completed_at")?,
        paused_at: r.try_get("paused_at")?,
    })
}

pub(crate) fn step_row(r: &PgRow) -> Result<StepRow, TxError> {
    Ok(StepRow {
        id: r.try_get("id")?,
        task_id: r.try_get("task_id")?,
        name: r.try_get("name")?,
        position: r.try_get("position")?,
        description: r.try_get("description")?,
        dependent_system: r.try_get("dependent_system")?,
        status: step_state(r.try_get("status")?)?,
        handler: HandlerSpec {
            kind: r.try_get("handler_kind")?,
            config: r.try_get("handler_config")?,
        },
        inputs: r.try_get("inputs")?,
        results: r.try_get("results")?,
        last_error: error_record(r.try_get("last_error")?)?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        retry_limit: r.try_get("retry_limit")?,
        retryable: r.try_get("retryable")?,
        skippable: r.try_get("skippable")?,
        timeout_seconds: r.try_get("timeout_seconds")?,
        remaining_parents: r.try_get("remaining_parents")?,
        ready_at: r.try_get("ready_at")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_expires_at: r.try_get("lease_expires_at")?,
        last_attempted_at: r.try_get("last_attempted_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        completed_at: r.try_get("completed_at")?,
        parents: r.try_get("parents")?,
        concurrency_key: r.try_get("concurrency_key")?,
        rate_limit: r.try_get("rate_key")?,
        waiting_for: tasker_store::FlowWait::from_columns(
            r.try_get::<Option<&str>, _>("flow_wait")?,
            r.try_get::<Option<&str>, _>("concurrency_key")?,
            r.try_get::<Option<&str>, _>("rate_key")?,
        ),
        paused: r.try_get("paused")?,
    })
}

pub(crate) fn transition_row(r: &PgRow) -> Result<TransitionRow, TxError> {
    Ok(TransitionRow {
        id: r.try_get("id")?,
        entity_id: r.try_get("entity_id")?,
        from_state: r.try_get("from_state")?,
        to_state: r.try_get("to_state")?,
        created_at: r.try_get("created_at")?,
        metadata: r.try_get("metadata")?,
    })
}

/// A row of the claim statement (see `work.rs`).
/// A claimed step's parents' results: `NULL` when it has no parents (an
/// aggregate over no rows).
fn parent_results(v: Option<Value>) -> Result<serde_json::Map<String, Value>, TxError> {
    match v {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Ok(serde_json::Map::new()),
        Some(other) => Err(corrupt("parent results", other)),
    }
}

pub(crate) fn claimed_step(r: &PgRow) -> Result<ClaimedStep, TxError> {
    let parent_results = parent_results(r.try_get("parent_results")?)?;
    let lease_token: Option<Uuid> = r.try_get("lease_token")?;
    let lease_expires_at: Option<DateTime<Utc>> = r.try_get("lease_expires_at")?;
    Ok(ClaimedStep {
        step_id: r.try_get("id")?,
        task_id: r.try_get("task_id")?,
        step_name: r.try_get("name")?,
        handler: HandlerSpec {
            kind: r.try_get("handler_kind")?,
            config: r.try_get("handler_config")?,
        },
        inputs: r.try_get("inputs")?,
        attempt: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        timeout_seconds: r.try_get("timeout_seconds")?,
        lease_token: lease_token.ok_or_else(|| corrupt("claim", "no lease token"))?,
        lease_expires_at: lease_expires_at.ok_or_else(|| corrupt("claim", "no lease expiry"))?,
        namespace: r.try_get("namespace")?,
        task_name: r.try_get("task_name")?,
        version: r.try_get("version")?,
        context: r.try_get("context")?,
        correlation_id: r.try_get("correlation_id")?,
        parent_results,
    })
}

/// A claimed step the finish statement returns as one JSON object (its
/// `claim` column; the keys are [`claimed_step`]'s column names).
pub(crate) fn claimed_step_json(v: Option<Value>) -> Result<ClaimedStep, TxError> {
    #[derive(serde::Deserialize)]
    struct Claim {
        id: Uuid,
        task_id: Uuid,
        name: String,
        handler_kind: String,
        handler_config: Value,
        inputs: Value,
        attempts: i32,
        max_attempts: i32,
        timeout_seconds: Option<f64>,
        lease_token: Uuid,
        lease_expires_at: DateTime<Utc>,
        namespace: String,
        task_name: String,
        version: String,
        context: Value,
        correlation_id: String,
        parent_results: Option<Value>,
    }
    let v = v.ok_or_else(|| corrupt("claim", "no claimed step"))?;
    let c: Claim = serde_json::from_value(v).map_err(|e| corrupt("claim", e))?;
    let parent_results = parent_results(c.parent_results)?;
    Ok(ClaimedStep {
        step_id: c.id,
        task_id: c.task_id,
        step_name: c.name,
        handler: HandlerSpec {
            kind: c.handler_kind,
            config: c.handler_config,
        },
        inputs: c.inputs,
        attempt: c.attempts,
        max_attempts: c.max_attempts,
        timeout_seconds: c.timeout_seconds,
        lease_token: c.lease_token,
        lease_expires_at: c.lease_expires_at,
        namespace: c.namespace,
        task_name: c.task_name,
        version: c.version,
        context: c.context,
        correlation_id: c.correlation_id,
        parent_results,
    })
}
