//! `POST /tasker/tasks/{task_id}/annotations`: typed JSON notes on a task.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath};
#[allow(unused_imports)] // Named in schema attributes.
use crate::json::JsonObject;
use crate::routes::tasks::TaskPath;
use crate::state::AppState;
use crate::views::{AnnotationEnvelope, AnnotationView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The body of `POST /tasker/tasks/{task_id}/annotations`, bare or wrapped
/// in `{"annotation": ...}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAnnotation {
    /// The annotation type: 1 to 128 letters, digits, `_`, `-` or `.`,
    /// starting with a letter or digit.
    #[serde(rename = "type")]
    #[schema(
        example = "escalation",
        pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
    )]
    pub annotation_type: String,
    /// The note: a JSON object of at most 16 KiB (compact JSON).
    #[schema(value_type = JsonObject)]
    pub content: Value,
}

impl ApiBody for CreateAnnotation {
    const ENVELOPES: &'static [&'static str] = &["annotation"];
}

/// Attaches a typed JSON note to a task (shown in the task's `annotations`,
/// and filterable with `annotation_type` on the task list).
#[utoipa::path(
    post,
    path = "/tasker/tasks/{task_id}/annotations",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    request_body(content = CreateAnnotation, description = "`type` and `content`, bare or wrapped in `{\"annotation\": ...}`."),
    responses(
        (status = 201, description = "The new annotation.", body = AnnotationEnvelope),
        (status = 400, description = "Malformed body, a `type` that is not a name, `content` not an object or too large (`details.field` names it).", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
    )
)]
pub async fn annotations_create(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
    body: ApiJson<CreateAnnotation>,
) -> Result<(StatusCode, Json<AnnotationEnvelope>), ApiError> {
    let env = body.envelope;
    let b = body.value;
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    let row = st
        .tasker()
        .annotate_task(p.task_id, &b.annotation_type, b.content, by.as_deref())
        .await
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    Ok((
        StatusCode::CREATED,
        Json(AnnotationEnvelope {
            annotation: AnnotationView::from(row),
        }),
    ))
}
