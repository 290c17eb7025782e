//! The object types: tasks, steps, transitions, templates, health, and the
//! mutation payloads. Fields come from the same rows and views as REST's
//! (`crate::views`), so both interfaces show the same values.

use super::access::require;
use super::errors::{GqlResult, UserError};
use super::events::{EventPage, events_of, page_request};
use super::loaders::{StepsByTask, StepsLoader, TaskSteps};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{ExecutionView, StepView};
use async_graphql::dataloader::{DataLoader, NoCache};
use async_graphql::{Context, Enum, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use tasker_core::{StepState, TaskState};
use tasker_store::{StepRow, TaskRow, TransitionRow};
use uuid::Uuid;

/// The state of a task or step (the same six states for both).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum State {
    /// Created, not started (or waiting for a retry).
    Pending,
    /// Being worked on.
    InProgress,
    /// Finished successfully.
    Complete,
    /// Failed.
    Error,
    /// Cancelled by an operator.
    Cancelled,
    /// Marked done by an operator without running.
    ResolvedManually,
}

impl From<TaskState> for State {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Pending => State::Pending,
            TaskState::InProgress => State::InProgress,
            TaskState::Complete => State::Complete,
            TaskState::Error => State::Error,
            TaskState::Cancelled => State::Cancelled,
            TaskState::ResolvedManually => State::ResolvedManually,
        }
    }
}

impl From<StepState> for State {
    fn from(s: StepState) -> Self {
        match s {
            StepState::Pending => State::Pending,
            StepState::InProgress => State::InProgress,
            StepState::Complete => State::Complete,
            StepState::Error => State::Error,
            StepState::Cancelled => State::Cancelled,
            StepState::ResolvedManually => State::ResolvedManually,
        }
    }
}

impl From<State> for TaskState {
    fn from(s: State) -> Self {
        match s {
            State::Pending => TaskState::Pending,
            State::InProgress => TaskState::InProgress,
            State::Complete => TaskState::Complete,
            State::Error => TaskState::Error,
            State::Cancelled => TaskState::Cancelled,
            State::ResolvedManually => TaskState::ResolvedManually,
        }
    }
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    // The HTTP handlers always add it; `data_unchecked` would panic on a bug.
    ctx.data::<AppState>()
        .unwrap_or_else(|_| unreachable!("the GraphQL handlers add the AppState"))
}

/// A view as the `JSON` scalar (the same document REST returns).
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Json<Value>> {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
        .gql()
}

/// The steps of a task through the request's loader (one batched store call
/// for every task of the request; on a WebSocket connection, one per batch
/// of an event, uncached).
pub(crate) async fn steps_of(ctx: &Context<'_>, task_id: Uuid) -> Result<Arc<TaskSteps>> {
    let loaded = if let Ok(l) = ctx.data::<StepsLoader>() {
        l.load_one(task_id).await
    } else {
        ctx.data::<DataLoader<StepsByTask, NoCache>>()?
            .load_one(task_id)
            .await
    };
    let steps = loaded.map_err(|e| super::errors::to_graphql((*e).clone()))?;
    Ok(steps.unwrap_or_else(|| TaskSteps::new(Vec::new())))
}

/// A typed JSON note on a task.
pub struct Annotation(pub tasker_store::AnnotationRow);

#[Object]
impl Annotation {
    /// Annotation id.
    async fn id(&self) -> Uuid {
        self.0.id
    }
    /// Its type.
    #[graphql(name = "type")]
    async fn annotation_type(&self) -> &str {
        &self.0.annotation_type
    }
    /// The note (a JSON object).
    async fn content(&self) -> Json<Value> {
        Json(self.0.content.clone())
    }
    /// When it was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Who wrote it, when known.
    async fn created_by(&self) -> Option<&str> {
        self.0.created_by.as_deref()
    }
}

/// A task: one run of a template.
pub struct Task(pub TaskRow);

#[Object]
impl Task {
    /// Task id.
    async fn id(&self) -> Uuid {
        self.0.id
    }
    /// Template namespace.
    async fn namespace(&self) -> &str {
        &self.0.namespace
    }
    /// Template name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Template version.
    async fn version(&self) -> &str {
        &self.0.version
    }
    /// `namespace.name@version`.
    async fn full_name(&self) -> String {
        format!("{}.{}@{}", self.0.namespace, self.0.name, self.0.version)
    }
    /// Current state.
    async fn status(&self) -> State {
        self.0.status.into()
    }
    /// True once the task is complete or resolved manually.
    async fn complete(&self) -> bool {
        self.0.status.is_done()
    }
    /// The task's input.
    async fn context(&self) -> Json<&Value> {
        Json(&self.0.context)
    }
    /// Who asked.
    async fn initiator(&self) -> &str {
        &self.0.initiator
    }
    /// From which system.
    async fn source_system(&self) -> &str {
        &self.0.source_system
    }
    /// Why.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// Free tags.
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }
    /// Correlation id.
    async fn correlation_id(&self) -> &str {
        &self.0.correlation_id
    }
    /// Identity hash (when the identity strategy is `hash`).
    async fn identity_hash(&self) -> Option<&str> {
        self.0.identity_hash.as_deref()
    }
    /// Number of steps.
    async fn steps_total(&self) -> i64 {
        self.0.steps_total
    }
    /// Steps not yet finished.
    async fn steps_remaining(&self) -> i64 {
        self.0.steps_remaining
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// When it reached a final state.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    /// Since when it is paused (no new step starts); null while it runs.
    async fn paused_at(&self) -> Option<DateTime<Utc>> {
        self.0.paused_at
    }
    /// Operators' and handlers' notes, oldest first. Costs one store read
    /// per task.
    async fn annotations(&self, ctx: &Context<'_>) -> Result<Vec<Annotation>> {
        let mut found = state(ctx)
            .tasker()
            .task_annotations(&[self.0.id])
            .await
            .gql()?;
        Ok(found
            .remove(&self.0.id)
            .unwrap_or_default()
            .into_iter()
            .map(Annotation)
            .collect())
    }
    /// The execution context (counts, status, recommended action, health),
    /// as REST's `execution`. Costs one store read per task.
    async fn execution(&self, ctx: &Context<'_>) -> Result<Json<Value>> {
        let st = state(ctx);
        let counts = st
            .tasker()
            .store()
            .task_step_counts(self.0.id, st.tasker().now())
            .await
            .gql()?;
        let execution = tasker_core::ExecutionContext::from_counts(counts);
        to_json(&ExecutionView::from(&execution))
    }
    /// Its steps in template order (batched over every task of the request).
    async fn steps(&self, ctx: &Context<'_>) -> Result<Vec<Step>> {
        require(ctx, "Task.steps", Some(&self.0.namespace)).gql()?;
        let steps = steps_of(ctx, self.0.id).await?;
        Ok(Step::all(&steps))
    }
    /// The runtime dependency analysis: the same document as REST's
    /// `include_dependencies=true`, from the same cache.
    async fn dependency_analysis(&self, ctx: &Context<'_>) -> Result<Json<Value>> {
        require(ctx, "Task.steps", Some(&self.0.namespace)).gql()?;
        let steps = steps_of(ctx, self.0.id).await?;
        let field = crate::routes::tasks::analysis(state(ctx), self.0.id, &steps.rows).await;
        to_json(&field)
    }
    /// Its lifecycle events (docs/EVENTS.md), oldest first: the page of
    /// REST's `GET /tasker/tasks/{id}/events` (`after`: only higher ids,
    /// default 0; `limit`: 1 to 1000, default 100; `type`: types or
    /// patterns such as `step.*`). Batched over every task of the request.
    async fn events(
        &self,
        ctx: &Context<'_>,
        after: Option<i64>,
        limit: Option<i32>,
        #[graphql(name = "type")] types: Option<Vec<String>>,
    ) -> Result<EventPage> {
        require(ctx, "Task.events", Some(&self.0.namespace)).gql()?;
        let page = page_request(after, limit, types);
        let query = page.to_query().gql()?;
        let rows = events_of(ctx, self.0.id, page).await?;
        Ok(EventPage::new(rows.as_ref().clone(), query.after))
    }
    /// Its state transitions, oldest first.
    async fn transitions(&self, ctx: &Context<'_>) -> Result<Vec<Transition>> {
        let rows = state(ctx)
            .tasker()
            .store()
            .task_transitions(self.0.id)
            .await
            .gql()?;
        Ok(rows.into_iter().map(Transition).collect())
    }
}

/// One step of a task, with its relations within the task.
pub struct Step {
    steps: Arc<TaskSteps>,
    i: usize,
    /// REST's view of the step, built on the first field that needs it:
    /// `parents { name }` over a task's steps asks for names only, and
    /// building (cloning) every related step's whole view would cost more
    /// than the rest of the request.
    view: std::sync::OnceLock<StepView>,
}

impl Step {
    /// Step `i` of `steps`.
    pub(crate) fn new(steps: Arc<TaskSteps>, i: usize) -> Self {
        Step {
            steps,
            i,
            view: std::sync::OnceLock::new(),
        }
    }

    fn view(&self) -> &StepView {
        self.view.get_or_init(|| {
            StepView::build(
                &self.steps.rows,
                &self.steps.relations,
                self.i,
                Utc::now(),
                false,
            )
        })
    }

    /// Every step of a task.
    pub(crate) fn all(steps: &Arc<TaskSteps>) -> Vec<Step> {
        (0..steps.rows.len())
            .map(|i| Step::new(steps.clone(), i))
            .collect()
    }

    /// The step with this id among a task's steps.
    pub(crate) fn find(steps: Arc<TaskSteps>, id: Uuid) -> Option<Step> {
        let i = steps.rows.iter().position(|s| s.id == id)?;
        Some(Step::new(steps, i))
    }

    fn row(&self) -> &StepRow {
        &self.steps.rows[self.i]
    }

    fn others(&self, idx: impl Iterator<Item = usize>) -> Vec<Step> {
        idx.map(|j| Step::new(self.steps.clone(), j)).collect()
    }
}

/// A step's last error.
#[derive(SimpleObject)]
pub struct StepError {
    /// Message.
    pub message: String,
    /// Error kind.
    pub kind: String,
    /// Machine code, when the handler gave one.
    pub code: Option<String>,
    /// The attempt that failed.
    pub attempt: i32,
}

#[Object]
impl Step {
    /// Step id.
    async fn id(&self) -> Uuid {
        self.row().id
    }
    /// Its task.
    async fn task_id(&self) -> Uuid {
        self.row().task_id
    }
    /// Step name (unique in the task).
    async fn name(&self) -> &str {
        &self.row().name
    }
    /// Position in the template.
    async fn position(&self) -> i32 {
        self.row().position
    }
    /// Free text.
    async fn description(&self) -> Option<&str> {
        self.row().description.as_deref()
    }
    /// The system it talks to.
    async fn dependent_system(&self) -> &str {
        &self.row().dependent_system
    }
    /// Current state.
    async fn status(&self) -> State {
        self.row().status.into()
    }
    /// Handler kind.
    async fn handler_kind(&self) -> &str {
        &self.row().handler.kind
    }
    /// Handler configuration.
    async fn handler_config(&self) -> Json<&Value> {
        Json(&self.view().handler.config)
    }
    /// Static inputs.
    async fn inputs(&self) -> Json<&Value> {
        Json(&self.view().inputs)
    }
    /// Results (once finished).
    async fn results(&self) -> Option<Json<&Value>> {
        self.row().results.as_ref().map(Json)
    }
    /// The last error.
    async fn last_error(&self) -> Option<StepError> {
        self.row().last_error.as_ref().map(|e| StepError {
            message: e.message.clone(),
            kind: e.kind.clone(),
            code: e.code.clone(),
            attempt: e.attempt,
        })
    }
    /// Attempts made.
    async fn attempts(&self) -> i32 {
        self.view().attempts
    }
    /// Attempts allowed in the current budget.
    async fn max_attempts(&self) -> i32 {
        self.view().max_attempts
    }
    /// Attempts left.
    async fn attempts_remaining(&self) -> i32 {
        self.view().attempts_remaining
    }
    /// Retry limit (attempts per budget).
    async fn retry_limit(&self) -> i32 {
        self.view().retry_limit
    }
    /// Whether failures are retried.
    async fn retryable(&self) -> bool {
        self.view().retryable
    }
    /// Whether the step may be skipped.
    async fn skippable(&self) -> bool {
        self.view().skippable
    }
    /// Timeout per attempt.
    async fn timeout_seconds(&self) -> Option<f64> {
        self.view().timeout_seconds
    }
    /// When it becomes claimable.
    async fn ready_at(&self) -> Option<DateTime<Utc>> {
        self.view().ready_at
    }
    /// When the next retry may run.
    async fn next_retry_at(&self) -> Option<DateTime<Utc>> {
        self.view().next_retry_at
    }
    /// Whether it waits for a retry backoff.
    async fn in_backoff(&self) -> bool {
        self.view().in_backoff
    }
    /// Its concurrency key, rendered when the task was created.
    async fn concurrency_key(&self) -> Option<&str> {
        self.view().concurrency_key.as_deref()
    }
    /// The rate-limit bucket it draws from.
    async fn rate_limit(&self) -> Option<&str> {
        self.view().rate_limit.as_deref()
    }
    /// `waiting for concurrency key K` or `waiting for rate limit B` while
    /// flow control holds a pending step back; null otherwise.
    async fn waiting_for(&self) -> Option<&str> {
        self.view().waiting_for.as_deref()
    }
    /// Last attempt start.
    async fn last_attempted_at(&self) -> Option<DateTime<Utc>> {
        self.view().last_attempted_at
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime<Utc> {
        self.view().created_at
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.view().updated_at
    }
    /// When it reached a final state.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.view().completed_at
    }
    /// Steps it waits for.
    async fn parents(&self) -> Vec<Step> {
        self.others(self.steps.relations.parents_of(self.i).iter().copied())
    }
    /// Steps that wait for it.
    async fn children(&self) -> Vec<Step> {
        self.others(self.steps.relations.children_of(self.i).iter().copied())
    }
    /// Other steps with exactly the same parents.
    async fn siblings(&self) -> Vec<Step> {
        self.others(self.steps.relations.siblings_of(self.i))
    }
    /// Its state transitions, oldest first, from its first change (a step's
    /// creation is not a transition: `createdAt` says when it was made).
    async fn transitions(&self, ctx: &Context<'_>) -> Result<Vec<Transition>> {
        let rows = state(ctx)
            .tasker()
            .store()
            .step_transitions(self.row().id)
            .await
            .gql()?;
        Ok(rows.into_iter().map(Transition).collect())
    }
}

/// One state change of a task or step.
pub struct Transition(pub TransitionRow);

#[Object]
impl Transition {
    /// State before (none for a task's first: its creation).
    async fn from_state(&self) -> Option<&str> {
        self.0.from_state.as_deref()
    }
    /// State after.
    async fn to_state(&self) -> &str {
        &self.0.to_state
    }
    /// When.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Who asked, attempt numbers, errors.
    async fn metadata(&self) -> Json<&Value> {
        Json(&self.0.metadata)
    }
}

/// What a task mutation answers: the task, or what is wrong.
#[derive(SimpleObject)]
pub struct TaskPayload {
    /// The changed (or created) task; null when `errors` is not empty.
    pub task: Option<Task>,
    /// Problems the caller can fix; empty on success.
    pub errors: Vec<UserError>,
}

/// What a step mutation answers: the step, or what is wrong.
#[derive(SimpleObject)]
pub struct StepPayload {
    /// The changed step; null when `errors` is not empty.
    pub step: Option<Step>,
    /// Problems the caller can fix; empty on success.
    pub errors: Vec<UserError>,
}

/// Liveness of this server and its database.
#[derive(SimpleObject)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    pub status: String,
    /// Whether the database answered a ping.
    pub database: bool,
    /// The store backend (`sqlite` or `postgres`).
    pub backend: String,
}
