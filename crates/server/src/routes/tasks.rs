//! `/tasker/tasks`: create, list, show, update, cancel and retry tasks.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath, ApiQuery, Flag};
#[allow(unused_imports)] // Named in schema attributes.
use crate::json::JsonObject;
use crate::state::AppState;
use crate::views::{
    AnalysisFailure, AnalysisField, AnnotationView, ExecutionView, Pagination, StepView,
    TaskCancelled, TaskEnvelope, TaskList, TaskView,
};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::LOCATION};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tasker_core::TaskState;
use tasker_engine::TaskRequest;
use tasker_engine::requests::{PageLimits, TaskListRequest};
use tasker_store::{CountMode, StepRow, TaskSort, TaskUpdate};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The body of `POST /tasker/tasks`, bare or wrapped in `{"task": ...}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// Template name.
    #[schema(example = "order_fulfillment")]
    pub name: String,
    /// Template namespace (default `default`).
    #[schema(example = "default")]
    pub namespace: Option<String>,
    /// Exact template version; the latest by semver when omitted.
    #[schema(example = "1.0.0")]
    pub version: Option<String>,
    /// The task's input (default `{}`); must satisfy the template's context schema.
    #[schema(value_type = Option<JsonObject>)]
    pub context: Option<Value>,
    /// Who asks (default `unknown`).
    #[schema(max_length = 1024)]
    pub initiator: Option<String>,
    /// From which system (default `unknown`).
    #[schema(max_length = 1024)]
    pub source_system: Option<String>,
    /// Why (default `unknown`).
    #[schema(max_length = 1024)]
    pub reason: Option<String>,
    /// Free tags (at most 64, each 1 to 128 characters).
    #[schema(max_items = 64)]
    #[serde(default)]
    pub tags: Vec<String>,
    /// Correlation id; generated when absent.
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub correlation_id: Option<String>,
}

impl ApiBody for CreateTask {
    const ENVELOPES: &'static [&'static str] = &["task"];
}

/// The body of `PATCH /tasker/tasks/{task_id}`, bare or wrapped in `{"task": ...}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    /// New reason.
    #[schema(max_length = 1024)]
    pub reason: Option<String>,
    /// New tags (replace the old ones; at most 64, each 1 to 128 characters).
    #[schema(max_items = 64)]
    pub tags: Option<Vec<String>>,
}

impl ApiBody for UpdateTask {
    const ENVELOPES: &'static [&'static str] = &["task"];
}

/// Sort keys of task lists.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Creation time (default).
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// State name.
    Status,
    /// Template name.
    Name,
    /// Namespace.
    Namespace,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Ascending.
    Asc,
    /// Descending (default).
    Desc,
}

/// How a task list counts its rows.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountParam {
    /// `count(*)` of the matching rows.
    Exact,
    /// The planner's estimate (PostgreSQL); omitted on SQLite.
    Estimated,
    /// No count.
    None,
}

/// Query parameters of `GET /tasker/tasks`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTasksQuery {
    /// Page size, 1 to the server's maximum (defaults: 25 per page, at most
    /// 100; configurable, and the served document states the configured maximum).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Rows to skip (default 0). Deep offsets cost the rows they skip:
    /// prefer `after`.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub offset: Option<u32>,
    /// Keyset pagination: the `pagination.next_cursor` of the previous page
    /// (same filters and sort). Costs the same at any depth; not combinable
    /// with `offset`.
    pub after: Option<String>,
    /// How `pagination.total` is counted (default `estimated`: the database
    /// planner's estimate on PostgreSQL, omitted on SQLite; `exact` counts
    /// every matching row, which costs as much as the rows it counts).
    #[param(inline)]
    pub count: Option<CountParam>,
    /// Sort key (default `created_at`).
    #[param(inline)]
    pub sort_by: Option<SortBy>,
    /// Sort direction (default `desc`).
    #[param(inline)]
    pub sort_order: Option<SortOrder>,
    /// Only tasks in this state.
    #[param(value_type = Option<crate::views::State>)]
    pub status: Option<TaskState>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this template name.
    pub name: Option<String>,
    /// Only this template version (semver).
    #[param(pattern = r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")]
    pub version: Option<String>,
    /// Created at or after: RFC 3339 with a timezone (`Z` or an offset),
    /// e.g. `2026-01-01T00:00:00Z`.
    #[serde(default, deserialize_with = "crate::extract::timestamp")]
    pub created_since: Option<DateTime<Utc>>,
    /// Created before: RFC 3339 with a timezone, e.g. `2026-02-01T00:00:00+01:00`.
    #[serde(default, deserialize_with = "crate::extract::timestamp")]
    pub created_until: Option<DateTime<Utc>>,
    /// Only tasks carrying every one of these tags, comma-separated
    /// (`tag=vip,eu`).
    pub tag: Option<String>,
    /// Only tasks with exactly this correlation id (case-sensitive, no
    /// patterns): 1-128 letters, digits, `.`, `_`, `:` or `-`.
    #[param(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:-]+$")]
    pub correlation_id: Option<String>,
    /// Only tasks with an annotation of this type.
    pub annotation_type: Option<String>,
    /// With `annotation_type`: a JSON object whose top-level keys the
    /// annotation's content must hold with equal values (strings, numbers,
    /// booleans), e.g. `{"ticket":"T-1"}`.
    pub annotation_contains: Option<String>,
    /// Add each task's runtime dependency analysis (costs one step read per task).
    #[param(value_type = Option<bool>)]
    pub include_dependencies: Option<Flag>,
}

/// Query parameters of `GET /tasker/tasks/{task_id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShowTaskQuery {
    /// Add the runtime dependency analysis.
    #[param(value_type = Option<bool>)]
    pub include_dependencies: Option<Flag>,
}

/// `{task_id}` in a path.
#[derive(Debug, Deserialize)]
pub struct TaskPath {
    /// Task id.
    pub task_id: Uuid,
}

/// Creates a task from a template.
#[utoipa::path(
    post,
    path = "/tasker/tasks",
    tag = "tasks",
    request_body(content = CreateTask, description = "The task to create, bare or wrapped in `{\"task\": ...}`."),
    responses(
        (status = 201, description = "Created; `Location` names the new task.", body = TaskEnvelope,
            headers(("location" = String, description = "URL of the task"))),
        (status = 400, description = "Malformed body, unknown template (`details.field` is `name`, `namespace` or `version`), bad version or context type.", body = ErrorBody),
        (status = 409, description = "An identical request created a task within the identity window (`duplicate_task`, `details.existing_task_id`).", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
        (status = 422, description = "The context violates the template's JSON Schema (`details.violations`).", body = ErrorBody),
    )
)]
pub async fn tasks_create(
    State(st): State<AppState>,
    Extension(cid): Extension<crate::correlation::CorrelationId>,
    identity: Option<Extension<tasker_auth::Identity>>,
    request_headers: HeaderMap,
    body: ApiJson<CreateTask>,
) -> Result<(StatusCode, HeaderMap, Json<TaskEnvelope>), ApiError> {
    let env = body.envelope;
    let b = body.value;
    let namespace = b
        .namespace
        .unwrap_or_else(|| tasker_core::template::DEFAULT_NAMESPACE.to_string());
    // A namespace-scoped grant (`tasker.task:create@billing`) opens only its namespace.
    let identity = identity.map(|Extension(i)| i);
    if let Some(id) = &identity
        && !id.grants.allows("tasker.task:create", Some(&namespace))
    {
        return Err(crate::auth::forbidden(
            "tasker.task:create",
            Some(&namespace),
        ));
    }
    let mut request = TaskRequest::new(namespace, b.name);
    request.version = b.version;
    request.context = b.context.unwrap_or_else(|| json!({}));
    // The caller is the default initiator when authentication is on.
    request.initiator = b
        .initiator
        .or_else(|| crate::auth::actor(&st, identity.as_ref()));
    request.source_system = b.source_system;
    request.reason = b.reason;
    request.tags = b.tags;
    // The body's id wins; else the request's (header or generated).
    request.correlation_id = Some(b.correlation_id.unwrap_or(cid.0));
    // The caller's trace: the task's root span links to it.
    request.traceparent = request_headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // The request rules and the unknown-template answer are the service's.
    let task = st
        .tasker()
        .submit_task(request)
        .await
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/tasker/tasks/{}", task.id)) {
        headers.insert(LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&task.correlation_id) {
        headers.insert(crate::correlation::HEADER, v);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(TaskEnvelope {
            task: TaskView::from_row(task),
        }),
    ))
}

/// Lists tasks, filtered, sorted and paged.
#[utoipa::path(
    get,
    path = "/tasker/tasks",
    tag = "tasks",
    params(ListTasksQuery),
    responses(
        (status = 200, description = "A page of tasks with pagination totals.", body = TaskList),
        (status = 400, description = "Unknown or malformed parameter, limit out of range, unknown sort key, bad date (`details.field` names it).", body = ErrorBody),
    )
)]
pub async fn tasks_index(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListTasksQuery>,
) -> Result<Json<TaskList>, ApiError> {
    let cfg = st.config();
    let sort = match q.sort_by.unwrap_or(SortBy::CreatedAt) {
        SortBy::CreatedAt => TaskSort::CreatedAt,
        SortBy::UpdatedAt => TaskSort::UpdatedAt,
        SortBy::Status => TaskSort::Status,
        SortBy::Name => TaskSort::Name,
        SortBy::Namespace => TaskSort::Namespace,
    };
    // The cursor's text format is this interface's; the rules are the service's.
    let after = match &q.after {
        Some(c) => Some(crate::cursor::decode(c, sort).map_err(|m| {
            ApiError::bad_request("invalid_parameter", format!("query parameter `after`: {m}"))
                .field("after")
        })?),
        None => None,
    };
    let request = TaskListRequest {
        limit: q.limit,
        offset: q.offset,
        status: q.status,
        namespace: q.namespace,
        name: q.name,
        version: q.version,
        created_since: q.created_since,
        created_until: q.created_until,
        sort: Some(sort),
        ascending: matches!(q.sort_order, Some(SortOrder::Asc)),
        after,
        count: match q.count.unwrap_or(CountParam::Estimated) {
            CountParam::Exact => CountMode::Exact,
            CountParam::Estimated => CountMode::Estimated,
            CountParam::None => CountMode::Omitted,
        },
        tags: q
            .tag
            .as_deref()
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        correlation_id: q.correlation_id,
        annotation_type: q.annotation_type,
        annotation_contains: match q.annotation_contains.as_deref() {
            None => None,
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Some(map),
                _ => {
                    return Err(tasker_engine::EngineError::InvalidParameter {
                        field: "annotation_contains".into(),
                        message: "must be a JSON object".into(),
                    }
                    .into());
                }
            },
        },
    };
    let mut query = request.to_query(PageLimits {
        default: cfg.default_page_size,
        max: cfg.max_page_size,
    })?;
    let (limit, offset) = (query.limit, query.offset);
    // One row more than the page tells whether another page follows,
    // without a count.
    query.limit = limit.saturating_add(1);
    let mut page = st.tasker().list_tasks(&query).await?;
    let has_more = page.items.len() > limit as usize;
    page.items.truncate(limit as usize);
    let next_cursor = if has_more {
        page.items
            .last()
            .map(|row| crate::cursor::encode(sort, row))
    } else {
        None
    };
    let with_analysis = q.include_dependencies.unwrap_or_default().0;
    // Namespace and template pauses: one read of a small table per page.
    let pauses = st.tasker().flow_pauses().await?;
    let mut tasks = Vec::with_capacity(page.items.len());
    for row in page.items {
        let id = row.id;
        let mut view = TaskView::from_row(row).held_by(&pauses);
        if with_analysis {
            view.dependency_analysis = Some(match st.tasker().task_steps(id).await {
                Ok(steps) => analysis(&st, id, &steps).await,
                Err(e) => failed_analysis(&st, e.to_string()),
            });
        }
        tasks.push(view);
    }
    let shown = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
    Ok(Json(TaskList {
        tasks,
        pagination: Pagination {
            total: page.total,
            total_exact: page.total_exact,
            limit,
            offset,
            has_more,
            next_offset: (has_more && q.after.is_none()).then(|| offset.saturating_add(shown)),
            next_cursor,
        },
    }))
}

/// The analysis of a task, from the cache when its steps have not changed.
/// Failures become an `error` field, never an error response.
pub(crate) async fn analysis(st: &AppState, task_id: Uuid, steps: &[StepRow]) -> AnalysisField {
    let now = st.tasker().now();
    match st
        .cache()
        .get_or_compute(task_id, steps, now, &st.config().dependency_graph)
        .await
    {
        Ok((a, _)) => AnalysisField::Ready(a),
        Err(e) => failed_analysis(st, e.to_string()),
    }
}

fn failed_analysis(st: &AppState, reason: String) -> AnalysisField {
    tracing::warn!(reason = %reason, "dependency analysis failed");
    AnalysisField::Failed(AnalysisFailure {
        error: format!("Dependency analysis failed: {reason}"),
        analysis_timestamp: tasker_core::time::format(&st.tasker().now()),
    })
}

/// Shows a task with its execution context and steps.
#[utoipa::path(
    get,
    path = "/tasker/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id"), ShowTaskQuery),
    responses(
        (status = 200, description = "The task, its execution context and its steps; with `include_dependencies=true` also `dependency_analysis`.", body = TaskEnvelope),
        (status = 400, description = "`task_id` is not a UUID, or a bad query parameter.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
    )
)]
pub async fn tasks_show(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    ApiQuery(q): ApiQuery<ShowTaskQuery>,
) -> Result<Json<TaskEnvelope>, ApiError> {
    let status = st.tasker().task_status(p.task_id).await?;
    let steps = st.tasker().task_steps(p.task_id).await?;
    let pauses = st.tasker().flow_pauses().await?;
    let mut view = TaskView::from_row(status.task).held_by(&pauses);
    view.execution = Some(ExecutionView::from(&status.execution));
    if q.include_dependencies.unwrap_or_default().0 {
        view.dependency_analysis = Some(analysis(&st, p.task_id, &steps).await);
    }
    let mut step_views = StepView::all(&steps, st.tasker().now());
    StepView::explain_pause(&mut step_views, view.pause.as_ref());
    view.steps = Some(step_views);
    let mut notes = st.tasker().task_annotations(&[p.task_id]).await?;
    view.annotations = Some(
        notes
            .remove(&p.task_id)
            .unwrap_or_default()
            .into_iter()
            .map(AnnotationView::from)
            .collect(),
    );
    Ok(Json(TaskEnvelope { task: view }))
}

/// Changes a task's reason and/or tags.
#[utoipa::path(
    patch,
    path = "/tasker/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    request_body(content = UpdateTask, description = "`reason` and/or `tags`, bare or wrapped in `{\"task\": ...}`."),
    responses(
        (status = 200, description = "The updated task.", body = TaskEnvelope),
        (status = 400, description = "Malformed body, unknown field (e.g. `status`), nothing to change, bad tag.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
    )
)]
pub async fn tasks_update(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    body: ApiJson<UpdateTask>,
) -> Result<Json<TaskEnvelope>, ApiError> {
    let env = body.envelope;
    let b = body.value;
    let task = st
        .tasker()
        .update_task(
            p.task_id,
            TaskUpdate {
                reason: b.reason,
                tags: b.tags,
            },
        )
        .await
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    Ok(Json(TaskEnvelope {
        task: TaskView::from_row(task),
    }))
}

/// Cancels a task: the task and its pending and running steps become `cancelled`.
#[utoipa::path(
    delete,
    path = "/tasker/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "Cancelled.", body = TaskCancelled),
        (status = 400, description = "`task_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 409, description = "The task cannot be cancelled from its state (e.g. already cancelled): `invalid_transition`.", body = ErrorBody),
    )
)]
pub async fn tasks_cancel(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
) -> Result<Json<TaskCancelled>, ApiError> {
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    let task = st.tasker().cancel_task(p.task_id, by.as_deref()).await?;
    Ok(Json(TaskCancelled {
        cancelled: true,
        task: TaskView::from_row(task),
    }))
}

/// Retries a task in `error`: its failed steps get a fresh attempt budget.
#[utoipa::path(
    post,
    path = "/tasker/tasks/{task_id}/retry",
    tag = "tasks",
    params(("task_id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task, back to `pending`.", body = TaskEnvelope),
        (status = 400, description = "`task_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 409, description = "The task is not in `error`: `invalid_transition`.", body = ErrorBody),
    )
)]
pub async fn tasks_retry(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskPath>,
    identity: Option<Extension<tasker_auth::Identity>>,
) -> Result<Json<TaskEnvelope>, ApiError> {
    let by = crate::auth::actor(&st, identity.as_ref().map(|Extension(i)| i));
    let task = st.tasker().retry_task(p.task_id, by.as_deref()).await?;
    Ok(Json(TaskEnvelope {
        task: TaskView::from_row(task),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_failing_analysis_becomes_an_error_field() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = tasker_store_sqlite::SqliteStore::connect(&url)
            .await
            .unwrap();
        let t = tasker_core::template::parse_template(
            "<t>",
            "name: t\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n  - name: b\n    depends_on_step: a\n    handler: {kind: noop}\n",
            None,
        )
        .unwrap();
        let tasker = tasker_engine::Tasker::builder(Arc::new(store))
            .template(t)
            .build()
            .unwrap();
        let task = tasker
            .create_task(TaskRequest::new("default", "t"))
            .await
            .unwrap();
        let st = AppState::new(tasker.clone(), crate::ServerConfig::default());
        let mut steps = tasker.task_steps(task.id).await.unwrap();
        steps[1].parents = vec!["ghost".into()];
        match analysis(&st, task.id, &steps).await {
            AnalysisField::Failed(f) => {
                assert!(
                    f.error.starts_with("Dependency analysis failed:"),
                    "{}",
                    f.error
                );
            }
            AnalysisField::Ready(_) => panic!("expected a failure"),
        }
        let json = serde_json::to_value(analysis(&st, task.id, &steps).await).unwrap();
        assert!(json["error"].is_string());
        assert!(json["analysis_timestamp"].is_string());
    }
}
