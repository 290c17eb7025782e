//! Encodings (times as INTEGER microseconds, UUIDs as BLOBs, JSON as TEXT) and
//! row decoding.

use crate::error::{DbResultExt, corrupt};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use std::fmt::Write as _;
use tasker_core::{HandlerSpec, StepState, TaskState};
use tasker_store::{StepErrorRecord, StepRow, StoreResult, TaskRow, TransitionRow};
use uuid::Uuid;

/// The columns [`task_row`] reads, as a literal for `concat!`.
macro_rules! task_cols {
    () => {
        "id, namespace, name, version, status, context, initiator, source_system, reason, tags, \
         correlation_id, identity_hash, steps_total, steps_remaining, created_at, updated_at, \
         completed_at, paused_at"
    };
}
pub(crate) use task_cols;

/// The columns [`step_row`] reads, as a literal for `concat!`.
macro_rules! step_cols {
    () => {
        "id, task_id, name, position, description, dependent_system, status, handler_kind, \
         handler_config, inputs, results, last_error, attempts, max_attempts, retry_limit, \
         retryable, skippable, timeout_seconds, remaining_parents, ready_at, lease_owner, \
         lease_expires_at, last_attempted_at, created_at, updated_at, completed_at, \
         concurrency_key, rate_key, flow_wait, paused"
    };
}
pub(crate) use step_cols;

/// A time as stored: microseconds since the epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored time back.
pub(crate) fn time(us: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt(format!("time {us} out of range")))
}

/// A time truncated to what the database keeps, so values returned without a
/// round trip equal what a later read returns.
pub(crate) fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros(t)).unwrap_or(t)
}

fn opt_time(us: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    us.map(time).transpose()
}

/// JSON text as stored.
pub(crate) fn json_text(v: &Value) -> String {
    // Serialising a `Value` cannot fail (its map keys are strings).
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// Stored JSON text back.
pub(crate) fn json(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("invalid JSON: {e}")))
}

/// A UUID as the hex text `unhex()` turns back into the stored BLOB.
pub(crate) fn hex(id: &Uuid) -> uuid::fmt::Simple {
    id.simple()
}

/// A JSON array of ids for `IN (SELECT unhex(value) FROM json_each(?))`.
pub(crate) fn id_list<'a>(ids: impl IntoIterator<Item = &'a Uuid>) -> String {
    let mut out = String::from("[");
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "\"{}\"", id.simple());
    }
    out.push(']');
    out
}

pub(crate) fn task_state(s: &str) -> StoreResult<TaskState> {
    s.parse().map_err(corrupt)
}

pub(crate) fn step_state(s: &str) -> StoreResult<StepState> {
    s.parse().map_err(corrupt)
}

/// Decodes a row selected with [`task_cols`].
pub(crate) fn task_row(r: &SqliteRow) -> StoreResult<TaskRow> {
    let tags: &str = r.try_get("tags").db()?;
    Ok(TaskRow {
        id: r.try_get("id").db()?,
        namespace: r.try_get("namespace").db()?,
        name: r.try_get("name").db()?,
        version: r.try_get("version").db()?,
        status: task_state(r.try_get("status").db()?)?,
        context: json(r.try_get("context").db()?)?,
        initiator: r.try_get("initiator").db()?,
        source_system: r.try_get("source_system").db()?,
        reason: r.try_get("reason").db()?,
        tags: serde_json::from_str(tags).map_err(|e| corrupt(format!("tags: {e}")))?,
        correlation_id: r.try_get("correlation_id").db()?,
        identity_hash: r.try_get("identity_hash").db()?,
        steps_total: r.try_get("steps_total").db()?,
        steps_remaining: r.try_get("steps_remaining").db()?,
        created_at: time(r.try_get("created_at").db()?)?,
        updated_at: time(r.try_get("updated_at").db()?)?,
        completed_at: opt_time(r.try_get("completed_at").db()?)?,
        paused_at: opt_time(r.try_get("paused_at").db()?)?,
    })
}

/// Decodes a row selected with [`step_cols`]; the parents' names come from a
/// separate query.
pub(crate) fn step_row(r: &SqliteRow, parents: Vec<String>) -> StoreResult<StepRow> {
    let results: Option<&str> = r.try_get("results").db()?;
    let last_error: Option<&str> = r.try_get("last_error").db()?;
    Ok(StepRow {
        id: r.try_get("id").db()?,
        task_id: r.try_get("task_id").db()?,
        name: r.try_get("name").db()?,
        position: r.try_get("position").db()?,
        description: r.try_get("description").db()?,
        dependent_system: r.try_get("dependent_system").db()?,
        status: step_state(r.try_get("status").db()?)?,
        handler: HandlerSpec {
            kind: r.try_get("handler_kind").db()?,
            config: json(r.try_get("handler_config").db()?)?,
        },
        inputs: json(r.try_get("inputs").db()?)?,
        results: results.map(json).transpose()?,
        last_error: last_error.map(error_record).transpose()?,
        attempts: r.try_get("attempts").db()?,
        max_attempts: r.try_get("max_attempts").db()?,
        retry_limit: r.try_get("retry_limit").db()?,
        retryable: r.try_get("retryable").db()?,
        skippable: r.try_get("skippable").db()?,
        timeout_seconds: r.try_get("timeout_seconds").db()?,
        remaining_parents: r.try_get("remaining_parents").db()?,
        ready_at: opt_time(r.try_get("ready_at").db()?)?,
        lease_owner: r.try_get("lease_owner").db()?,
        lease_expires_at: opt_time(r.try_get("lease_expires_at").db()?)?,
        last_attempted_at: opt_time(r.try_get("last_attempted_at").db()?)?,
        created_at: time(r.try_get("created_at").db()?)?,
        updated_at: time(r.try_get("updated_at").db()?)?,
        completed_at: opt_time(r.try_get("completed_at").db()?)?,
        parents,
        concurrency_key: r.try_get("concurrency_key").db()?,
        rate_limit: r.try_get("rate_key").db()?,
        waiting_for: tasker_store::FlowWait::from_columns(
            r.try_get::<Option<&str>, _>("flow_wait").db()?,
            r.try_get::<Option<&str>, _>("concurrency_key").db()?,
            r.try_get::<Option<&str>, _>("rate_key").db()?,
        ),
        paused: r.try_get("paused").db()?,
    })
}

fn error_record(text: &str) -> StoreResult<StepErrorRecord> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("last_error: {e}")))
}

/// Decodes `id, <entity>_id AS entity_id, from_state, to_state, created_at, metadata`.
pub(crate) fn transition_row(r: &SqliteRow) -> StoreResult<TransitionRow> {
    Ok(TransitionRow {
        id: r.try_get("id").db()?,
        entity_id: r.try_get("entity_id").db()?,
        from_state: r.try_get("from_state").db()?,
        to_state: r.try_get("to_state").db()?,
        created_at: time(r.try_get("created_at").db()?)?,
        metadata: json(r.try_get("metadata").db()?)?,
    })
}
