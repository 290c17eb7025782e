//! What the API returns: task and step views built from store rows.
//!
//! Views are separate from the store's rows so the wire format is chosen here
//! (and documented in the OpenAPI schema) rather than following the storage
//! layout: ids are named `task_id` / `step_id`, derived facts (next retry
//! time, attempts left, children, siblings) are computed once, and internal
//! columns (lease tokens, counters) stay inside.

#[allow(unused_imports)] // Named in schema attributes.
use crate::json::{JsonObject, JsonValue, object_or_empty};
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tasker_core::analysis::DependencyAnalysis;
use tasker_core::{ExecutionContext, StepState, TaskState};
use tasker_store::{StepRow, TaskRow};
use utoipa::ToSchema;
use uuid::Uuid;

/// The six states tasks and steps share.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Only describes the wire values in the OpenAPI document.
pub enum State {
    /// Created, or waiting for parents or a retry.
    Pending,
    /// Running.
    InProgress,
    /// Finished successfully.
    Complete,
    /// Failed with no automatic attempts left.
    Error,
    /// Cancelled by an operator.
    Cancelled,
    /// Marked done by an operator.
    ResolvedManually,
}

/// One task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskView {
    /// Task id.
    pub task_id: Uuid,
    /// Template namespace.
    pub namespace: String,
    /// Template name.
    pub name: String,
    /// Template version the task runs.
    pub version: String,
    /// `namespace.name@version`.
    pub full_name: String,
    /// Current state.
    #[schema(value_type = State)]
    pub status: TaskState,
    /// True when complete or resolved manually.
    pub complete: bool,
    /// The task's input.
    #[schema(value_type = JsonObject)]
    pub context: Value,
    /// Who asked.
    pub initiator: String,
    /// From which system.
    pub source_system: String,
    /// Why.
    pub reason: String,
    /// Free tags.
    pub tags: Vec<String>,
    /// Carried into every log line and handler call.
    pub correlation_id: String,
    /// Identity hash, when duplicate detection is on.
    pub identity_hash: Option<String>,
    /// Number of steps.
    pub steps_total: i64,
    /// Steps not complete or resolved yet.
    pub steps_remaining: i64,
    /// Creation time.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub updated_at: DateTime<Utc>,
    /// When it reached a final state.
    #[serde(serialize_with = "tasker_core::time::micros_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Since when the task is paused (no new step starts); null when it runs.
    #[serde(serialize_with = "tasker_core::time::micros_opt")]
    pub paused_at: Option<DateTime<Utc>>,
    /// What holds the task (its own pause, else a pause of its namespace or
    /// template); null when nothing does. Resuming the namespace does not
    /// resume a task paused by itself.
    #[schema(value_type = Option<PauseView>)]
    pub pause: Option<PauseView>,
    /// Derived execution status (task show only; absent from lists, never null).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ExecutionView, required = false)]
    pub execution: Option<ExecutionView>,
    /// The steps (task show only; absent from lists, never null).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<StepView>, required = false)]
    pub steps: Option<Vec<StepView>>,
    /// Operators' and handlers' notes, oldest first (task show only; absent
    /// from lists, never null).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<AnnotationView>, required = false)]
    pub annotations: Option<Vec<AnnotationView>>,
    /// With `include_dependencies=true`: the runtime dependency analysis, or
    /// `{"error", "analysis_timestamp"}` if it could not be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AnalysisDoc, required = false)]
    pub dependency_analysis: Option<AnalysisField>,
}

/// What holds a task or step back (docs/FLOW_CONTROL.md).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PauseView {
    /// `task` (its own pause), `namespace` or `template`.
    #[schema(example = "namespace")]
    pub scope: String,
    /// The paused namespace (namespace and template pauses).
    pub namespace: Option<String>,
    /// The paused template's name (template pauses).
    pub name: Option<String>,
    /// Since when.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub since: DateTime<Utc>,
    /// Who paused it (namespace and template pauses; a task's own pause
    /// names who in its transition).
    pub by: Option<String>,
    /// Why (namespace and template pauses).
    pub reason: Option<String>,
}

impl PauseView {
    /// The view of a namespace or template pause.
    pub fn of_flow(p: &tasker_store::FlowPauseRow) -> Self {
        PauseView {
            scope: if p.scope.name.is_some() {
                "template"
            } else {
                "namespace"
            }
            .into(),
            namespace: Some(p.scope.namespace.clone()),
            name: p.scope.name.clone(),
            since: p.paused_at,
            by: p.paused_by.clone(),
            reason: p.reason.clone(),
        }
    }
}

impl TaskView {
    /// Adds the namespace or template pause holding the task, when its own
    /// pause does not (the task's own pause comes first: it outlives them).
    pub fn held_by(mut self, pauses: &[tasker_store::FlowPauseRow]) -> Self {
        if self.pause.is_none()
            && !self.status.is_terminal()
            && let Some(p) = tasker_store::flow_pause::covering(pauses, &self.namespace, &self.name)
        {
            self.pause = Some(PauseView::of_flow(p));
        }
        self
    }

    /// The view of a row, without steps, execution or analysis.
    pub fn from_row(t: TaskRow) -> Self {
        TaskView {
            task_id: t.id,
            full_name: format!("{}.{}@{}", t.namespace, t.name, t.version),
            namespace: t.namespace,
            name: t.name,
            version: t.version,
            complete: t.status.is_done(),
            status: t.status,
            context: t.context,
            initiator: t.initiator,
            source_system: t.source_system,
            reason: t.reason,
            tags: t.tags,
            correlation_id: t.correlation_id,
            identity_hash: t.identity_hash,
            steps_total: t.steps_total,
            steps_remaining: t.steps_remaining,
            created_at: t.created_at,
            updated_at: t.updated_at,
            completed_at: t.completed_at,
            pause: t.paused_at.map(|since| PauseView {
                scope: "task".into(),
                namespace: None,
                name: None,
                since,
                by: None,
                reason: None,
            }),
            paused_at: t.paused_at,
            execution: None,
            steps: None,
            annotations: None,
            dependency_analysis: None,
        }
    }
}

/// A typed JSON note on a task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnnotationView {
    /// Annotation id.
    pub annotation_id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// Its type (a name: letters, digits, `_`, `-`, `.`).
    #[serde(rename = "type")]
    pub annotation_type: String,
    /// The note, a JSON object.
    #[schema(value_type = JsonObject)]
    pub content: Value,
    /// When it was written.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub created_at: DateTime<Utc>,
    /// Who wrote it, when known (the caller with authentication on).
    pub created_by: Option<String>,
}

impl From<tasker_store::AnnotationRow> for AnnotationView {
    fn from(a: tasker_store::AnnotationRow) -> Self {
        AnnotationView {
            annotation_id: a.id,
            task_id: a.task_id,
            annotation_type: a.annotation_type,
            content: a.content,
            created_at: a.created_at,
            created_by: a.created_by,
        }
    }
}

/// The answer of `POST /tasker/tasks/{task_id}/annotations`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnnotationEnvelope {
    /// The new annotation.
    pub annotation: AnnotationView,
}

/// A task's execution context (reference §3.2, with the engine's fixes).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecutionView {
    /// Step counts by situation.
    pub counts: StepCountsView,
    /// `has_ready_steps`, `processing`, `blocked_by_failures`, `all_complete`
    /// or `waiting_for_dependencies`.
    pub execution_status: String,
    /// `execute_ready_steps`, `wait_for_completion`, `handle_failures`,
    /// `finalize_task` or `wait_for_dependencies`.
    pub recommended_action: String,
    /// Done steps as a percentage, two decimals.
    pub completion_percentage: f64,
    /// `healthy`, `recovering` or `blocked`.
    pub health_status: String,
}

/// Step counts of a task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepCountsView {
    /// All steps.
    pub total: u64,
    /// Pending (ready, waiting for parents, or for a retry).
    pub pending: u64,
    /// Pending and runnable now.
    pub ready: u64,
    /// Pending, parents done, waiting for a backoff.
    pub scheduled: u64,
    /// Pending after failed attempts.
    pub retrying: u64,
    /// Running.
    pub in_progress: u64,
    /// Complete or resolved manually.
    pub done: u64,
    /// In error.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

/// The snake_case wire name of a serialisable enum value.
fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

impl From<&ExecutionContext> for ExecutionView {
    fn from(x: &ExecutionContext) -> Self {
        let c = x.counts;
        ExecutionView {
            counts: StepCountsView {
                total: c.total,
                pending: c.pending,
                ready: c.ready,
                scheduled: c.scheduled,
                retrying: c.retrying,
                in_progress: c.in_progress,
                done: c.done,
                failed: c.failed,
                cancelled: c.cancelled,
            },
            execution_status: wire(&x.execution_status),
            recommended_action: wire(&x.recommended_action),
            completion_percentage: x.completion_percentage,
            health_status: wire(&x.health_status),
        }
    }
}

/// A reference to another step of the same task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepRef {
    /// Step id.
    pub step_id: Uuid,
    /// Step name.
    pub name: String,
}

/// The handler a step runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandlerView {
    /// Handler kind (`noop`, `sleep`, `command`, `http`, or a registered name).
    pub kind: String,
    /// Kind-specific configuration (`{}` when the template gives none).
    #[schema(value_type = JsonObject)]
    pub config: Value,
}

/// The last failed attempt of a step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepErrorView {
    /// What went wrong.
    pub message: String,
    /// `retryable`, `permanent`, `timeout`, `lease_expired` or `handler_missing`.
    pub kind: String,
    /// Machine code, when the handler gave one.
    pub code: Option<String>,
    /// The attempt that failed.
    pub attempt: i32,
}

/// One step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    /// Step id.
    pub step_id: Uuid,
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
    #[schema(value_type = State)]
    pub status: StepState,
    /// What runs it.
    pub handler: HandlerView,
    /// Static inputs (`{}` when the template gives none).
    #[schema(value_type = JsonObject)]
    pub inputs: Value,
    /// Results of the successful attempt or the manual resolution: any JSON
    /// value (a `command` step that prints `42` has `42`); null until then.
    #[schema(value_type = JsonValue)]
    pub results: Option<Value>,
    /// The last failed attempt.
    pub last_error: Option<StepErrorView>,
    /// Attempts started so far.
    pub attempts: i32,
    /// Attempts allowed in total (refilled by a retry).
    pub max_attempts: i32,
    /// `max_attempts - attempts`, at least 0.
    pub attempts_remaining: i32,
    /// The step's retry limit (attempts granted per retry budget).
    pub retry_limit: i32,
    /// Whether failures are retried automatically.
    pub retryable: bool,
    /// Stored only; no effect on execution.
    pub skippable: bool,
    /// Per-attempt timeout.
    pub timeout_seconds: Option<f64>,
    /// When a pending step whose parents are done may run.
    #[serde(serialize_with = "tasker_core::time::micros_opt")]
    pub ready_at: Option<DateTime<Utc>>,
    /// When a step that failed will be tried again.
    #[serde(serialize_with = "tasker_core::time::micros_opt")]
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Waiting for a retry backoff to pass.
    pub in_backoff: bool,
    /// Seconds until the backoff ends (0 when not in backoff).
    pub backoff_remaining_seconds: f64,
    /// The step's concurrency key, rendered when its task was created
    /// (docs/FLOW_CONTROL.md).
    pub concurrency_key: Option<String>,
    /// The rate-limit bucket it draws from (`name` or `name:key`).
    pub rate_limit: Option<String>,
    /// Why a pending step whose parents are done is not running yet, beyond
    /// a retry backoff: `waiting for concurrency key K` (its key is at its
    /// limit) or `waiting for rate limit B` (its bucket was empty; it runs
    /// at `ready_at`). Null otherwise.
    pub waiting_for: Option<String>,
    /// Start of the last attempt.
    #[serde(serialize_with = "tasker_core::time::micros_opt")]
    pub last_attempted_at: Option<DateTime<Utc>>,
    /// Worker holding the step while it runs.
    pub lease_owner: Option<String>,
    /// When that lease expires.
    #[serde(serialize_with = "tasker_core::time::micros_opt")]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Creation time.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub updated_at: DateTime<Utc>,
    /// When it reached a final state.
    #[serde(serialize_with = "tasker_core::time::micros_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Held out of the ready queue because its task (or the task's
    /// namespace or template) is paused; a running step still finishes.
    pub paused: bool,
    /// Why, when `paused` (filled by the step reads; null otherwise).
    #[schema(value_type = Option<PauseView>)]
    pub pause: Option<PauseView>,
    /// Steps it waits for.
    pub parents: Vec<StepRef>,
    /// Steps that wait for it.
    pub children: Vec<StepRef>,
    /// Other steps with exactly the same parents.
    pub sibling_count: usize,
    /// Those siblings (step show only: in a wide fan-out, listing them on
    /// every step of a list would be quadratic; absent, never null, elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<StepRef>, required = false)]
    pub siblings: Option<Vec<StepRef>>,
}

/// Parents, children and sibling groups of a task's steps, by index.
pub(crate) struct Relations {
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
    /// Steps grouped by identical parent sets; `group[i]` indexes `groups`.
    group: Vec<usize>,
    groups: Vec<Vec<usize>>,
}

impl Relations {
    /// Builds the relations of `steps` (one task's, in template order).
    /// Parent names that match no step are ignored (a corrupt row must not
    /// make the task unreadable).
    pub(crate) fn build(steps: &[StepRow]) -> Self {
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let parents: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                let mut p: Vec<usize> = s
                    .parents
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect();
                p.sort_unstable();
                p
            })
            .collect();
        let mut children = vec![Vec::new(); steps.len()];
        for (c, ps) in parents.iter().enumerate() {
            for &p in ps {
                children[p].push(c);
            }
        }
        let mut by_parents: HashMap<&[usize], usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group = Vec::with_capacity(steps.len());
        for (i, ps) in parents.iter().enumerate() {
            let g = *by_parents.entry(ps.as_slice()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
            group.push(g);
        }
        Relations {
            parents,
            children,
            group,
            groups,
        }
    }
}

impl Relations {
    /// Indexes of the parents of step `i`.
    pub(crate) fn parents_of(&self, i: usize) -> &[usize] {
        &self.parents[i]
    }

    /// Indexes of the children of step `i`.
    pub(crate) fn children_of(&self, i: usize) -> &[usize] {
        &self.children[i]
    }

    /// Indexes of the other steps with exactly the same parents as step `i`.
    pub(crate) fn siblings_of(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.groups[self.group[i]]
            .iter()
            .copied()
            .filter(move |&j| j != i)
    }
}

impl StepView {
    /// The view of `steps[i]`; `with_siblings` lists siblings (not just counts).
    pub(crate) fn build(
        steps: &[StepRow],
        rel: &Relations,
        i: usize,
        now: DateTime<Utc>,
        with_siblings: bool,
    ) -> Self {
        let s = &steps[i];
        let refs = |list: &mut dyn Iterator<Item = usize>| -> Vec<StepRef> {
            list.map(|j| StepRef {
                step_id: steps[j].id,
                name: steps[j].name.clone(),
            })
            .collect()
        };
        let group = &rel.groups[rel.group[i]];
        let next_retry_at = s
            .ready_at
            .filter(|_| s.status == StepState::Pending && s.attempts > 0);
        let backoff = next_retry_at
            .map(|t| (t - now).num_milliseconds() as f64 / 1000.0)
            .filter(|secs| *secs > 0.0);
        StepView {
            step_id: s.id,
            task_id: s.task_id,
            name: s.name.clone(),
            position: s.position,
            description: s.description.clone(),
            dependent_system: s.dependent_system.clone(),
            status: s.status,
            handler: HandlerView {
                kind: s.handler.kind.clone(),
                config: object_or_empty(s.handler.config.clone()),
            },
            inputs: object_or_empty(s.inputs.clone()),
            results: s.results.clone(),
            last_error: s.last_error.as_ref().map(|e| StepErrorView {
                message: e.message.clone(),
                kind: e.kind.clone(),
                code: e.code.clone(),
                attempt: e.attempt,
            }),
            attempts: s.attempts,
            max_attempts: s.max_attempts,
            attempts_remaining: (s.max_attempts - s.attempts).max(0),
            retry_limit: s.retry_limit,
            retryable: s.retryable,
            skippable: s.skippable,
            timeout_seconds: s.timeout_seconds,
            ready_at: s.ready_at,
            next_retry_at,
            in_backoff: backoff.is_some(),
            backoff_remaining_seconds: backoff.unwrap_or(0.0),
            concurrency_key: s.concurrency_key.clone(),
            rate_limit: s.rate_limit.clone(),
            waiting_for: s
                .waiting_for
                .as_ref()
                .filter(|_| s.status == StepState::Pending)
                .map(ToString::to_string),
            last_attempted_at: s.last_attempted_at,
            lease_owner: s.lease_owner.clone(),
            lease_expires_at: s.lease_expires_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
            completed_at: s.completed_at,
            paused: s.paused,
            pause: None,
            parents: refs(&mut rel.parents[i].iter().copied()),
            children: refs(&mut rel.children[i].iter().copied()),
            sibling_count: group.len().saturating_sub(1),
            siblings: with_siblings.then(|| refs(&mut group.iter().copied().filter(|&j| j != i))),
        }
    }

    /// Says why paused steps are paused: `why` is their task's pause.
    pub fn explain_pause(views: &mut [StepView], why: Option<&PauseView>) {
        for v in views.iter_mut().filter(|v| v.paused) {
            v.pause = why.cloned();
        }
    }

    /// Views of every step of a task, without sibling lists.
    pub fn all(steps: &[StepRow], now: DateTime<Utc>) -> Vec<StepView> {
        let rel = Relations::build(steps);
        (0..steps.len())
            .map(|i| StepView::build(steps, &rel, i, now, false))
            .collect()
    }
}

/// The dependency analysis of a task, or why it is missing.
#[derive(Debug, Clone)]
pub enum AnalysisField {
    /// The analysis (shared with the cache).
    Ready(Arc<DependencyAnalysis>),
    /// It could not be made; the task itself is still returned.
    Failed(AnalysisFailure),
}

impl Serialize for AnalysisField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AnalysisField::Ready(a) => a.as_ref().serialize(s),
            AnalysisField::Failed(f) => f.serialize(s),
        }
    }
}

/// An analysis that failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnalysisFailure {
    /// `Dependency analysis failed: <reason>`.
    pub error: String,
    /// When it was attempted (RFC 3339).
    pub analysis_timestamp: String,
}

/// `dependency_analysis` in the OpenAPI document: the analysis, or a failure.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
// Only describes the wire shape of `AnalysisField`; never built, so its size is moot.
#[allow(dead_code, clippy::large_enum_variant)]
pub enum AnalysisDoc {
    /// The analysis.
    Analysis(DependencyAnalysis),
    /// Why there is none.
    Failed(AnalysisFailure),
}

/// Pagination of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pagination {
    /// Rows matching the filters, all pages: exact with `?count=exact`,
    /// else the database's estimate (PostgreSQL) or absent (SQLite, or
    /// `?count=none`).
    pub total: Option<i64>,
    /// Whether `total` is an exact count.
    pub total_exact: bool,
    /// Page size used.
    pub limit: u32,
    /// Rows skipped.
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub offset: u32,
    /// More rows follow this page.
    pub has_more: bool,
    /// `offset` of the next page, when there is one.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub next_offset: Option<u32>,
    /// `after` for the next page (keyset pagination), when there is one.
    pub next_cursor: Option<String>,
}

/// `{"task": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskEnvelope {
    /// The task.
    pub task: TaskView,
}

/// A page of tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    /// This page.
    pub tasks: Vec<TaskView>,
    /// Where it is in the whole list.
    pub pagination: Pagination,
}

/// `{"cancelled": true, "task": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCancelled {
    /// Always true.
    pub cancelled: bool,
    /// The task after cancellation.
    pub task: TaskView,
}

/// `{"step": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepEnvelope {
    /// The step.
    pub step: StepView,
}

/// A task's steps.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepList {
    /// In template order.
    pub steps: Vec<StepView>,
    /// Number of steps returned.
    pub total: usize,
}

/// `{"cancelled": true, "step": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepCancelled {
    /// Always true.
    pub cancelled: bool,
    /// The step after cancellation.
    pub step: StepView,
}
