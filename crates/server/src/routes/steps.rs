//! `/tasker/tasks/{task_id}/steps`: list, show, edit, cancel, resolve and retry steps.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath, ApiQuery};
#[allow(unused_imports)] // Named in schema attributes.
use crate::json::{JsonObject, JsonValue};
use crate::state::AppState;
use crate::views::{
    PauseView, Relations, StepCancelled, StepEnvelope, StepList, StepView, TaskView,
};
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tasker_core::StepState;
use tasker_store::{StepRow, StepUpdate};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `{task_id}/steps/{step_id}` in a path.
#[derive(Debug, Deserialize)]
pub struct StepPath {
    /// Task id.
    pub task_id: Uuid,
    /// Step id.
    pub step_id: Uuid,
}

/// `{task_id}` in a path.
#[derive(Debug, Deserialize)]
pub struct TaskPath {
    /// Task id.
    pub task_id: Uuid,
}

/// Query parameters of the step list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListStepsQuery {
    /// Only steps in this state.
    #[param(value_type = Option<crate::views::State>)]
    pub status: Option<StepState>,
}

/// The body of a step edit, bare or wrapped in `{"step": ...}` or
/// `{"workflow_step": ...}` (the reference's key).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStep {
    /// New retry limit: total attempts per budget, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub retry_limit: Option<i32>,
    /// New static inputs (a JSON object; replaces the old ones).
    #[schema(value_type = Option<JsonObject>)]
    pub inputs: Option<Value>,
}

impl ApiBody for UpdateStep {
    const ENVELOPES: &'static [&'static str] = &["step", "workflow_step"];
}

/// The body of a manual resolution (optional; default `{"results": {}}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveStep {
    /// The results the step's children will see as its output: any JSON
    /// value (default `{}`).
    #[schema(value_type = Option<JsonValue>)]
    pub results: Option<Value>,
}

impl ApiBody for ResolveStep {
    const ENVELOPES: &'static [&'static str] = &["step", "workflow_step"];

    fn empty() -> Option<Self> {
        Some(ResolveStep::default())
    }
}

/// The step, checked to belong to the task (404 otherwise).
async fn step_in_task(st: &AppState, task_id: Uuid, step_id: Uuid) -> Result<StepRow, ApiError> {
    Ok(st.tasker().step_in_task(task_id, step_id).await?)
}

fn not_in_task(task_id: Uuid, step_id: Uuid) -> ApiError {
    tasker_engine::EngineError::StepNotInTask { task_id, step_id }.into()
}

/// The full view of one step (with children and siblings, which need the
/// task's other steps).
async fn step_view(st: &AppState, task_id: Uuid, step_id: Uuid) -> Result<StepView, ApiError> {
    let steps = st.tasker().task_steps(task_id).await?;
    let i = steps
        .iter()
        .position(|s| s.id == step_id)
        .ok_or_else(|| not_in_task(task_id, step_id))?;
    let rel = Relations::build(&steps);
    let mut view = [StepView::build(&steps, &rel, i, st.tasker().now(), true)];
    if view[0].paused {
        StepView::explain_pause(&mut view, task_pause(st, task_id).await?.as_ref());
    }
    let [view] = view;
    Ok(view)
}

/// What holds a task back (its own pause, else its namespace's or
/// template's), for the step reads' `pause`.
async fn task_pause(st: &AppState, task_id: Uuid) -> Result<Option<PauseView>, ApiError> {
    let task = st
        .tasker()
        .store()
        .task_get(task_id)
        .await
        .map_err(tasker_engine::EngineError::from)?;
    let pauses = st.tasker().flow_pauses().await?;
    Ok(TaskView::from_row(task).held_by(&pauses).pause)
}

/// Lists a task's steps in template order.
#[utoipa::path(
    get,
    path = "/tasker/tasks/{task_id}/steps",
    tag = "steps",
    params(("task_id" = Uuid, Path, description = "Task id"), ListStepsQuery),
    responses(
        (status = 200, description = "The steps (sibling lists only as counts; see step show).", body = StepList),
        (status = 400, description = "`task_id` is not a UUID, or a bad `status`.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
    )
)]
pub async fn steps_index(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    ApiQuery(q): ApiQuery<ListStepsQuery>,
) -> Result<Json<StepList>, ApiError> {
    let steps = st.tasker().task_steps(p.task_id).await?;
    let mut views = StepView::all(&steps, st.tasker().now());
    if views.iter().any(|v| v.paused) {
        let why = task_pause(&st, p.task_id).await?;
        StepView::explain_pause(&mut views, why.as_ref());
    }
    if let Some(status) = q.status {
        views.retain(|v| v.status == status);
    }
    Ok(Json(StepList {
        total: views.len(),
        steps: views,
    }))
}

/// Shows one step with its parents, children and siblings.
#[utoipa::path(
    get,
    path = "/tasker/tasks/{task_id}/steps/{step_id}",
    tag = "steps",
    params(("task_id" = Uuid, Path, description = "Task id"), ("step_id" = Uuid, Path, description = "Step id")),
    responses(
        (status = 200, description = "The step.", body = StepEnvelope),
        (status = 400, description = "An id is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such task, or the step is not one of its steps.", body = ErrorBody),
    )
)]
pub async fn steps_show(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepPath>,
) -> Result<Json<StepEnvelope>, ApiError> {
    let step = step_view(&st, p.task_id, p.step_id).await?;
    Ok(Json(StepEnvelope { step }))
}

/// Changes a pending or failed step's retry limit and/or inputs.
#[utoipa::path(
    patch,
    path = "/tasker/tasks/{task_id}/steps/{step_id}",
    tag = "steps",
    params(("task_id" = Uuid, Path, description = "Task id"), ("step_id" = Uuid, Path, description = "Step id")),
    request_body(content = UpdateStep, description = "`retry_limit` and/or `inputs`, bare or wrapped in `{\"step\": ...}`."),
    responses(
        (status = 200, description = "The updated step.", body = StepEnvelope),
        (status = 400, description = "Malformed body, unknown field, nothing to change, retry limit out of range, inputs not an object.", body = ErrorBody),
        (status = 404, description = "No such step in this task.", body = ErrorBody),
        (status = 409, description = "The step is running or finished: only pending and error steps can be edited (`conflict`).", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
    )
)]
pub async fn steps_update(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepPath>,
    body: ApiJson<UpdateStep>,
) -> Result<Json<StepEnvelope>, ApiError> {
    let env = body.envelope;
    let b = body.value;
    let update = StepUpdate {
        retry_limit: b.retry_limit,
        inputs: b.inputs,
    };
    // The edit's own rules answer before the lookup, as they always have.
    tasker_engine::requests::check_step_update(&update)
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    step_in_task(&st, p.task_id, p.step_id).await?;
    st.tasker()
        .update_step(p.step_id, update)
        .await
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    let step = step_view(&st, p.task_id, p.step_id).await?;
    Ok(Json(StepEnvelope { step }))
}

/// Cancels a pending or running step; its dependants can no longer run.
#[utoipa::path(
    delete,
    path = "/tasker/tasks/{task_id}/steps/{step_id}",
    tag = "steps",
    params(("task_id" = Uuid, Path, description = "Task id"), ("step_id" = Uuid, Path, description = "Step id")),
    responses(
        (status = 200, description = "Cancelled.", body = StepCancelled),
        (status = 400, description = "An id is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such step in this task.", body = ErrorBody),
        (status = 409, description = "The step is not pending or running: `invalid_transition`.", body = ErrorBody),
    )
)]
pub async fn steps_cancel(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
) -> Result<Json<StepCancelled>, ApiError> {
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    step_in_task(&st, p.task_id, p.step_id).await?;
    st.tasker().cancel_step(p.step_id, by.as_deref()).await?;
    let step = step_view(&st, p.task_id, p.step_id).await?;
    Ok(Json(StepCancelled {
        cancelled: true,
        step,
    }))
}

/// Marks a pending or failed step `resolved_manually` with the given results;
/// its children may start and the task may complete.
#[utoipa::path(
    post,
    path = "/tasker/tasks/{task_id}/steps/{step_id}/resolve",
    tag = "steps",
    params(("task_id" = Uuid, Path, description = "Task id"), ("step_id" = Uuid, Path, description = "Step id")),
    request_body(content = ResolveStep, description = "Optional: no body, or `{\"results\": ...}` (default `{}`)."),
    responses(
        (status = 200, description = "Resolved.", body = StepEnvelope),
        (status = 400, description = "Malformed body or unknown field.", body = ErrorBody),
        (status = 404, description = "No such step in this task.", body = ErrorBody),
        (status = 409, description = "The step is running or finished, or the task is finished: `invalid_transition` / `conflict`.", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
    )
)]
pub async fn steps_resolve(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
    body: ApiJson<ResolveStep>,
) -> Result<Json<StepEnvelope>, ApiError> {
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    step_in_task(&st, p.task_id, p.step_id).await?;
    let results = body.value.results.unwrap_or_else(|| json!({}));
    st.tasker()
        .resolve_step(p.step_id, results, by.as_deref())
        .await?;
    let step = step_view(&st, p.task_id, p.step_id).await?;
    Ok(Json(StepEnvelope { step }))
}

/// Gives a failed step a fresh attempt budget; a task in `error` goes back to `pending`.
#[utoipa::path(
    post,
    path = "/tasker/tasks/{task_id}/steps/{step_id}/retry",
    tag = "steps",
    params(("task_id" = Uuid, Path, description = "Task id"), ("step_id" = Uuid, Path, description = "Step id")),
    responses(
        (status = 200, description = "The step, pending again.", body = StepEnvelope),
        (status = 400, description = "An id is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such step in this task.", body = ErrorBody),
        (status = 409, description = "The step is not in `error`: `invalid_transition`.", body = ErrorBody),
    )
)]
pub async fn steps_retry(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
) -> Result<Json<StepEnvelope>, ApiError> {
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    step_in_task(&st, p.task_id, p.step_id).await?;
    st.tasker().retry_step(p.step_id, by.as_deref()).await?;
    let step = step_view(&st, p.task_id, p.step_id).await?;
    Ok(Json(StepEnvelope { step }))
}
