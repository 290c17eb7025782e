//! `/tasker/tasks/{task_id}/pause` and `/resume` (docs/FLOW_CONTROL.md).
//! Thin: the service applies the rules, the store the change.

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use crate::routes::tasks::TaskPath;
use crate::state::AppState;
use crate::views::{TaskEnvelope, TaskView};
use axum::extract::State;
use axum::{Extension, Json};
#[allow(unused_imports)] // Named in the path attributes.
use uuid::Uuid;

/// Pauses a task: no new step of it starts (running ones finish), until resumed.
#[utoipa::path(
    post,
    path = "/tasker/tasks/{task_id}/pause",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task, with `paused_at` set.", body = TaskEnvelope),
        (status = 400, description = "`task_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 409, description = "The task is finished (`invalid_transition`) or already paused (`conflict`).", body = ErrorBody),
    )
)]
pub async fn tasks_pause(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
) -> Result<Json<TaskEnvelope>, ApiError> {
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    let task = st.tasker().pause_task(p.task_id, by.as_deref()).await?;
    Ok(Json(TaskEnvelope {
        task: TaskView::from_row(task),
    }))
}

/// Resumes a paused task: its waiting steps can start again.
#[utoipa::path(
    post,
    path = "/tasker/tasks/{task_id}/resume",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task, with `paused_at` null.", body = TaskEnvelope),
        (status = 400, description = "`task_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 409, description = "The task is not paused: `conflict`.", body = ErrorBody),
    )
)]
pub async fn tasks_resume(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
) -> Result<Json<TaskEnvelope>, ApiError> {
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    let task = st.tasker().resume_task(p.task_id, by.as_deref()).await?;
    Ok(Json(TaskEnvelope {
        task: TaskView::from_row(task),
    }))
}
