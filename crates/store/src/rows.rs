//! Rows read back from a store.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tasker_core::{HandlerSpec, StepState, TaskState};
use uuid::Uuid;

/// A task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    /// Id (UUID v7: time-ordered).
    pub id: Uuid,
    /// Template namespace.
    pub namespace: String,
    /// Template name.
    pub name: String,
    /// Template version the task was created from.
    pub version: String,
    /// Current state.
    pub status: TaskState,
    /// The task's input.
    pub context: Value,
    /// Who asked for it.
    pub initiator: String,
    /// From which system.
    pub source_system: String,
    /// Why.
    pub reason: String,
    /// Free tags.
    pub tags: Vec<String>,
    /// Correlation id carried into every log line and handler call.
    pub correlation_id: String,
    /// Identity hash, when the hash strategy was used.
    pub identity_hash: Option<String>,
    /// Number of steps.
    pub steps_total: i64,
    /// Steps not yet complete or resolved.
    pub steps_remaining: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it reached a final state.
    pub completed_at: Option<DateTime<Utc>>,
    /// Since when it is paused (no new step starts), `None` when it runs.
    pub paused_at: Option<DateTime<Utc>>,
}

/// The last error of a step attempt.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StepErrorRecord {
    /// Human-readable message.
    pub message: String,
    /// `retryable`, `permanent`, `timeout`, `lease_expired` or `handler_missing`.
    pub kind: String,
    /// Optional machine code (e.g. `HTTP_404`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    /// The attempt that failed.
    pub attempt: i32,
}

/// A step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    /// Id.
    pub id: Uuid,
    /// Owning task.
    pub task_id: Uuid,
    /// Name (unique in the task).
    pub name: String,
    /// Position in the template.
    pub position: i32,
    /// Free text.
    pub description: Option<String>,
    /// External system (informational).
    pub dependent_system: String,
    /// Current state.
    pub status: StepState,
    /// What runs it.
    pub handler: HandlerSpec,
    /// Static inputs.
    pub inputs: Value,
    /// Results of the successful attempt (or manual resolution).
    pub results: Option<Value>,
    /// The last attempt's error.
    pub last_error: Option<StepErrorRecord>,
    /// Attempts started so far.
    pub attempts: i32,
    /// Attempts allowed in total.
    pub max_attempts: i32,
    /// The template's retry limit (used to refill the budget on retry).
    pub retry_limit: i32,
    /// Whether failures are retried.
    pub retryable: bool,
    /// Stored, no runtime effect.
    pub skippable: bool,
    /// Per-attempt timeout.
    pub timeout_seconds: Option<f64>,
    /// Unfinished parents.
    pub remaining_parents: i32,
    /// When it may run (NULL while parents are unfinished or the step is not pending).
    pub ready_at: Option<DateTime<Utc>>,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// Lease expiry.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Start of the last attempt.
    pub last_attempted_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it reached a final state.
    pub completed_at: Option<DateTime<Utc>>,
    /// Names of the parents, in template order.
    pub parents: Vec<String>,
    /// Concurrency key (rendered), if the step has one.
    pub concurrency_key: Option<String>,
    /// Rate-limit bucket, if the step draws from one.
    pub rate_limit: Option<String>,
    /// What a pending step waits for besides its parents and retry time:
    /// its concurrency key or its rate limit (None otherwise).
    pub waiting_for: Option<crate::flow::FlowWait>,
    /// Held out of the ready queue: its task (or its task's namespace or
    /// template) is paused (docs/FLOW_CONTROL.md). A running step finishes.
    pub paused: bool,
}

/// One persisted state change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionRow {
    /// Sequence id (ascending per entity).
    pub id: i64,
    /// Task or step id.
    pub entity_id: Uuid,
    /// Previous state (None for a task's first: its creation; a step's
    /// history starts with its first change).
    pub from_state: Option<String>,
    /// New state.
    pub to_state: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Context (attempt, worker, error, reason).
    pub metadata: Value,
}

/// A page of results with the total for pagination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// This page.
    pub items: Vec<T>,
    /// Rows matching the filters, all pages (None when the query's
    /// [`crate::CountMode`] omitted it or the backend cannot estimate).
    pub total: Option<i64>,
    /// Whether `total` is an exact count (false: an estimate or absent).
    pub total_exact: bool,
}

/// What a claim hands to a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedStep {
    /// Step id.
    pub step_id: Uuid,
    /// Task id.
    pub task_id: Uuid,
    /// Step name.
    pub step_name: String,
    /// Handler kind and config.
    pub handler: HandlerSpec,
    /// Static inputs.
    pub inputs: Value,
    /// This attempt's number (1 = first).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Per-attempt timeout.
    pub timeout_seconds: Option<f64>,
    /// The lease token results must present.
    pub lease_token: Uuid,
    /// Lease expiry.
    pub lease_expires_at: DateTime<Utc>,
    /// Template namespace.
    pub namespace: String,
    /// Template name.
    pub task_name: String,
    /// Template version.
    pub version: String,
    /// Task context.
    pub context: Value,
    /// Task correlation id.
    pub correlation_id: String,
    /// Results of the parents, by name (resolved-manually parents included).
    pub parent_results: serde_json::Map<String, Value>,
}

/// What happened to a batch of outcomes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinishReport {
    /// Outcomes applied.
    pub applied: u64,
    /// Steps whose lease was lost (result ignored).
    pub lease_lost: Vec<Uuid>,
    /// Steps that became ready now (children unblocked, immediate retries),
    /// those in `claimed` included.
    pub newly_ready: u64,
    /// Children this batch made ready and leased to the finishing worker in
    /// the same transaction ([`crate::Store::step_finish_and_claim`]),
    /// oldest ready first; empty without a claim.
    pub claimed: Vec<ClaimedStep>,
    /// Tasks that reached a final state in this batch, with that state.
    pub finished_tasks: Vec<(Uuid, tasker_core::TaskState)>,
}

/// Aggregate counts for health pages.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreStats {
    /// Tasks by state name.
    pub tasks_by_state: std::collections::BTreeMap<String, i64>,
    /// Steps by state name.
    pub steps_by_state: std::collections::BTreeMap<String, i64>,
    /// Pending steps that failed before (waiting for a retry).
    pub steps_retrying: i64,
}

/// Connection pool usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Most connections the pool may open.
    pub max: u32,
}

/// A stored API key: never the key itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyRow {
    /// The key's public id (the part after `tk_`).
    pub id: Uuid,
    /// What the key is for (`--name`).
    pub name: String,
    /// SHA-256 of the whole key, lowercase hex.
    #[serde(skip)]
    pub hash: String,
    /// Its grants (`tasker.task:create@billing`, ...).
    pub permissions: Vec<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyRow {
    /// Whether the key may be used at `now` (not revoked, not expired).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// The database's upkeep, for start-up warnings and status pages
/// ([`crate::Store::storage_health`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageHealth {
    /// Whether the server vacuums by itself (PostgreSQL's `autovacuum`;
    /// None where the notion does not apply).
    pub autovacuum: Option<bool>,
    /// Size on disk of the ready-steps index, in bytes (None when unknown).
    pub ready_index_bytes: Option<u64>,
    /// Steps in the ready index (counted up to 100,000).
    pub ready_steps: u64,
    /// What an operator should do something about, one sentence each.
    pub warnings: Vec<String>,
}

/// One table's upkeep by [`crate::Store::maintenance`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceRun {
    /// Table (or database, for whole-database steps).
    pub target: String,
    /// What was run.
    pub action: String,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// A typed JSON note on a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotationRow {
    /// Its id.
    pub id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// Its type.
    #[serde(rename = "type")]
    pub annotation_type: String,
    /// A JSON object.
    pub content: serde_json::Value,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Who wrote it, when known.
    pub created_by: Option<String>,
}
