//! What goes into a store.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tasker_core::{HandlerSpec, TaskState};
use uuid::Uuid;

/// A task to create, with its materialised steps.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Id (callers use UUID v7).
    pub id: Uuid,
    /// Template namespace.
    pub namespace: String,
    /// Template name.
    pub name: String,
    /// Template version.
    pub version: String,
    /// Task input.
    pub context: Value,
    /// Who asked.
    pub initiator: String,
    /// From which system.
    pub source_system: String,
    /// Why.
    pub reason: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Correlation id.
    pub correlation_id: String,
    /// Duplicate detection, when enabled.
    pub identity: Option<Identity>,
    /// Steps in template order.
    pub steps: Vec<NewStep>,
    /// Creation time.
    pub now: DateTime<Utc>,
}

/// Duplicate detection for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Request hash.
    pub hash: String,
    /// Tasks created at or after this time with the same hash are duplicates.
    pub since: DateTime<Utc>,
}

/// A step to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// External system.
    pub dependent_system: String,
    /// Handler.
    pub handler: HandlerSpec,
    /// Static inputs.
    pub inputs: Value,
    /// Total attempts allowed.
    pub max_attempts: i32,
    /// The template's retry limit.
    pub retry_limit: i32,
    /// Whether failures are retried.
    pub retryable: bool,
    /// Stored only.
    pub skippable: bool,
    /// Per-attempt timeout.
    pub timeout_seconds: Option<f64>,
    /// Indices (into the task's steps) of the parents.
    pub parents: Vec<usize>,
    /// Concurrency key and rate limit (docs/FLOW_CONTROL.md).
    pub flow: crate::flow::StepFlow,
}

/// Which steps a worker may claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimParams {
    /// Worker (process) id, recorded as lease owner.
    pub worker_id: String,
    /// At most this many steps.
    pub limit: u32,
    /// Lease expiry for the claimed steps.
    pub lease_until: DateTime<Utc>,
    /// Current time; steps with `ready_at <= now` are claimable.
    pub now: DateTime<Utc>,
    /// At most this many `in_progress` steps per task (None = no limit).
    pub per_task_limit: Option<u32>,
    /// Only these handler kinds (None = any).
    pub kinds: Option<Vec<String>>,
    /// Never these handler kinds (e.g. `external`, for in-process engines).
    pub exclude_kinds: Vec<String>,
    /// Only tasks of these namespaces (None = any).
    pub namespaces: Option<Vec<String>>,
}

/// A lease as a worker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    /// Step id.
    pub step_id: Uuid,
    /// Token from the claim.
    pub token: Uuid,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// Which step and lease.
    pub lease: LeaseRef,
    /// Success or failure.
    pub result: OutcomeResult,
}

/// Success, or a failure with the engine's retry decision.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeResult {
    /// The handler's results.
    Success(Value),
    /// The handler failed.
    Failure {
        /// What went wrong.
        error: crate::rows::StepErrorRecord,
        /// When to retry; None = no more attempts (the step goes to `error`).
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Sort keys allowed for task lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskSort {
    /// Creation time (default).
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Status name.
    Status,
    /// Template name.
    Name,
    /// Namespace.
    Namespace,
}

/// Filters and paging for task lists.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskQuery {
    /// Only this state.
    pub status: Option<TaskState>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this template name.
    pub name: Option<String>,
    /// Only this version.
    pub version: Option<String>,
    /// Created at or after.
    pub created_since: Option<DateTime<Utc>>,
    /// Created before.
    pub created_until: Option<DateTime<Utc>>,
    /// Only tasks carrying every one of these tags (empty = no filter).
    pub tags: Vec<String>,
    /// Only tasks with exactly this correlation id (indexed).
    pub correlation_id: Option<String>,
    /// Only tasks with at least one matching annotation.
    pub annotation: Option<AnnotationFilter>,
    /// Sort key.
    pub sort: TaskSort,
    /// Descending (newest first by default).
    pub descending: bool,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
    /// Keyset pagination: only rows strictly after this position in the
    /// sort order (the last row of the previous page). Unlike `offset`, its
    /// cost does not grow with the depth of the page.
    pub after: Option<TaskCursor>,
    /// How `Page::total` is counted.
    pub count: CountMode,
}

impl TaskQuery {
    /// Checks that the cursor's key has the type of the sort column (a
    /// time for `created_at` / `updated_at`, text otherwise).
    pub fn check_cursor(&self) -> Result<(), crate::StoreError> {
        let time_sort = matches!(self.sort, TaskSort::CreatedAt | TaskSort::UpdatedAt);
        match &self.after {
            Some(TaskCursor {
                key: CursorKey::Time(_),
                ..
            }) if !time_sort => Err(crate::StoreError::InvalidData(
                "cursor: a time key for a text sort column".into(),
            )),
            Some(TaskCursor {
                key: CursorKey::Text(_),
                ..
            }) if time_sort => Err(crate::StoreError::InvalidData(
                "cursor: a text key for a time sort column".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// A position in a task list: the sort key of a row and its id (the
/// tie-breaker), as the last row of a page had them.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCursor {
    /// The row's value of the sort column.
    pub key: CursorKey,
    /// The row's id.
    pub id: Uuid,
}

impl TaskCursor {
    /// The position of `row` in a list sorted by `sort`.
    pub fn of(sort: TaskSort, row: &crate::TaskRow) -> TaskCursor {
        let key = match sort {
            TaskSort::CreatedAt => CursorKey::Time(row.created_at),
            TaskSort::UpdatedAt => CursorKey::Time(row.updated_at),
            TaskSort::Status => CursorKey::Text(row.status.as_str().to_string()),
            TaskSort::Name => CursorKey::Text(row.name.clone()),
            TaskSort::Namespace => CursorKey::Text(row.namespace.clone()),
        };
        TaskCursor { key, id: row.id }
    }
}

/// The sort-column value in a [`TaskCursor`].
#[derive(Debug, Clone, PartialEq)]
pub enum CursorKey {
    /// `created_at` or `updated_at`.
    Time(DateTime<Utc>),
    /// `status`, `name` or `namespace`.
    Text(String),
}

/// How a task list counts the rows matching its filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountMode {
    /// `count(*)`: exact, but its cost follows the number of matching rows.
    #[default]
    Exact,
    /// The planner's estimate where the backend has one (PostgreSQL);
    /// omitted elsewhere. Costs the same at any table size.
    Estimated,
    /// No count.
    Omitted,
}

/// Editable task fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskUpdate {
    /// New reason.
    pub reason: Option<String>,
    /// New tags (replace).
    pub tags: Option<Vec<String>>,
}

/// Editable step fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepUpdate {
    /// New retry limit (total attempts); `max_attempts` becomes `attempts`-aware.
    pub retry_limit: Option<i32>,
    /// New inputs (replace).
    pub inputs: Option<Value>,
}

/// Convenience: the task states that are final.
pub fn is_final(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::Complete | TaskState::Error | TaskState::Cancelled | TaskState::ResolvedManually
    )
}

/// A new API key (the key was shown to its owner; only the hash is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiKey {
    /// Its public id.
    pub id: Uuid,
    /// What it is for.
    pub name: String,
    /// SHA-256 of the whole key, lowercase hex.
    pub hash: String,
    /// Its grants.
    pub permissions: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Which finished tasks a retention pass selects (see [`crate::Store::prune_candidates`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PruneQuery {
    /// Tasks that reached a final state (`complete`, `cancelled`, `error`,
    /// `resolved_manually`) before this time.
    pub finished_before: DateTime<Utc>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Not these namespaces (they have their own retention window).
    pub except_namespaces: Vec<String>,
    /// At most this many, oldest completion first (0 = no limit).
    pub limit: u32,
}

/// Matches tasks that have an annotation of `annotation_type` whose content
/// holds every top-level key of `contains` with an equal scalar value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnnotationFilter {
    /// The annotation type.
    pub annotation_type: String,
    /// Top-level keys (names) and scalar values (string, number, boolean)
    /// the content must hold; empty = any content. Callers validate keys as
    /// names and values as scalars (the SQLite backend relies on it).
    pub contains: serde_json::Map<String, Value>,
}

/// A note to attach to a task.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnnotation {
    /// Id (callers use UUID v7).
    pub id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// Its type (a name).
    pub annotation_type: String,
    /// A JSON object.
    pub content: Value,
    /// Who wrote it, when known.
    pub created_by: Option<String>,
    /// Creation time.
    pub now: DateTime<Utc>,
}
