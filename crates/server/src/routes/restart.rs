//! `POST /tasker/tasks/{task_id}/restart` (docs/FLOW_CONTROL.md): re-run a
//! finished or failed task from a step. Thin: the service applies the
//! rules, the store the change.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath};
use crate::routes::tasks::TaskPath;
use crate::state::AppState;
use crate::views::{TaskEnvelope, TaskView};
use axum::{Extension, Json, extract::State};
use serde::Deserialize;
use utoipa::ToSchema;
#[allow(unused_imports)] // Named in the path attributes.
use uuid::Uuid;

/// The body of a restart, bare or wrapped in `{"restart": ...}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartTask {
    /// The step to restart from (its name): it and everything downstream run again.
    #[schema(example = "charge")]
    pub step: String,
    /// Why (recorded on every transition the restart writes).
    #[schema(max_length = 1024, example = "the PSP refunded by mistake")]
    pub reason: Option<String>,
}

impl ApiBody for RestartTask {
    const ENVELOPES: &'static [&'static str] = &["restart"];
}

/// Re-runs a finished or failed task from one of its steps: that step and
/// everything downstream get fresh attempts, upstream results are kept.
#[utoipa::path(
    post,
    path = "/tasker/tasks/{task_id}/restart",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    request_body(content = RestartTask, description = "The step to restart from, and why."),
    responses(
        (status = 200, description = "The task, `pending` again.", body = TaskEnvelope),
        (status = 400, description = "`task_id` is not a UUID, or an unknown `step` (`invalid_field`, `details.field` = `step`), or a bad `reason`.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 409, description = "The task is still running (`invalid_transition`), or the step's parents did not finish (`conflict`).", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
    )
)]
pub async fn tasks_restart(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
    body: ApiJson<RestartTask>,
) -> Result<Json<TaskEnvelope>, ApiError> {
    let env = body.envelope;
    let b = body.value;
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    let task = st
        .tasker()
        .restart_task(p.task_id, &b.step, by.as_deref(), b.reason.as_deref())
        .await
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    Ok(Json(TaskEnvelope {
        task: TaskView::from_row(task),
    }))
}
