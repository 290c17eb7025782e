//! `/tasker/schedules` (docs/FLOW_CONTROL.md, "Schedules"): create, list,
//! show, delete, pause, resume, trigger. Thin: the service
//! (`tasker_engine::schedules`) applies the rules, the store keeps one task
//! per tick.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath};
use crate::state::AppState;
use crate::views::{TaskEnvelope, TaskView};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tasker_core::schedule::{CatchUp, ScheduleSpec};
use tasker_engine::schedules::ScheduleInfo;
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of `POST /tasker/schedules`, bare or wrapped in `{"schedule": ...}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// Unique name (letters, digits, `_`, `-`, `.`).
    #[schema(example = "nightly-report")]
    pub name: String,
    /// Namespace of the template (default `default`).
    pub namespace: Option<String>,
    /// Template to run.
    #[schema(example = "report")]
    pub template: String,
    /// Exact template version; the latest registered when omitted.
    pub version: Option<String>,
    /// Cron expression: 5 fields, or 6 with seconds first. Give this or `every_seconds`.
    #[schema(example = "0 2 * * *")]
    pub cron: Option<String>,
    /// IANA time zone the cron expression is read in (default `UTC`).
    #[schema(example = "Europe/Paris")]
    pub timezone: Option<String>,
    /// A fixed interval in seconds instead of a cron expression.
    #[schema(minimum = 1)]
    pub every_seconds: Option<u64>,
    /// Missed ticks: `none`, `latest` (default) or `all`.
    #[schema(value_type = Option<String>, example = "latest")]
    pub catch_up: Option<CatchUp>,
    /// How far back missed ticks are looked for (default `scheduler.catch_up_window_seconds`).
    #[schema(minimum = 1)]
    pub catch_up_window_seconds: Option<u64>,
    /// Each task's context; strings may hold `{{schedule.name}}`,
    /// `{{schedule.scheduled_for}}`, `{{schedule.date}}`, `{{schedule.manual}}`.
    #[schema(value_type = Option<crate::json::JsonObject>)]
    pub context: Option<Value>,
}

impl ApiBody for CreateSchedule {
    const ENVELOPES: &'static [&'static str] = &["schedule"];
}

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Template namespace.
    pub namespace: String,
    /// Template name.
    pub template: String,
    /// Exact version, or null for the latest.
    pub version: Option<String>,
    /// Cron expression (null for an interval).
    pub cron: Option<String>,
    /// Time zone of the cron expression (null: UTC).
    pub timezone: Option<String>,
    /// Interval in seconds (null for a cron expression).
    pub every_seconds: Option<u64>,
    /// `none`, `latest` or `all`.
    #[schema(value_type = String)]
    pub catch_up: CatchUp,
    /// The schedule's own catch-up window, or null for the engine's.
    pub catch_up_window_seconds: Option<u64>,
    /// The context template.
    #[schema(value_type = crate::json::JsonObject)]
    pub context: Value,
    /// `api` or `template` (a template file's `schedules:`).
    #[schema(value_type = String)]
    pub source: tasker_store::ScheduleSource,
    /// Since when it is paused; null when it runs.
    pub paused_at: Option<DateTime<Utc>>,
    /// The newest tick fired (or settled by a resume).
    pub last_tick_at: Option<DateTime<Utc>>,
    /// The next fire times (empty while paused).
    pub next_fire_times: Vec<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl ScheduleView {
    fn from_info(i: ScheduleInfo) -> Self {
        let r = i.row;
        ScheduleView {
            id: r.id,
            name: r.spec.name,
            namespace: r.spec.namespace,
            template: r.spec.template,
            version: r.spec.version,
            cron: r.spec.cron,
            timezone: r.spec.timezone,
            every_seconds: r.spec.every_seconds,
            catch_up: r.spec.catch_up,
            catch_up_window_seconds: r.spec.catch_up_window_seconds,
            context: r.spec.context,
            source: r.source,
            paused_at: r.paused_at,
            last_tick_at: r.last_tick_at,
            next_fire_times: i.next_fire_times,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `{"schedule": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleEnvelope {
    /// The schedule.
    pub schedule: ScheduleView,
}

/// `{"schedules": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// Every schedule, by name.
    pub schedules: Vec<ScheduleView>,
}

/// `{name}` in a path.
#[derive(Debug, Deserialize)]
pub struct SchedulePath {
    /// Schedule name.
    pub name: String,
}

fn envelope(i: ScheduleInfo) -> Json<ScheduleEnvelope> {
    Json(ScheduleEnvelope {
        schedule: ScheduleView::from_info(i),
    })
}

/// Creates a schedule.
#[utoipa::path(
    post,
    path = "/tasker/schedules",
    tag = "schedules",
    request_body(content = CreateSchedule, description = "The schedule, bare or wrapped in `{\"schedule\": ...}`."),
    responses(
        (status = 201, description = "Created, with its next fire times.", body = ScheduleEnvelope),
        (status = 400, description = "A bad field (`details.field`: `cron`, `timezone`, `every_seconds`, `template`, `context`, ...).", body = ErrorBody),
        (status = 409, description = "A schedule with this name exists (`conflict`).", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
        (status = 422, description = "The rendered context violates the template's JSON Schema.", body = ErrorBody),
    )
)]
pub async fn schedules_create(
    State(st): State<AppState>,
    body: ApiJson<CreateSchedule>,
) -> Result<(StatusCode, Json<ScheduleEnvelope>), ApiError> {
    let env = body.envelope;
    let b = body.value;
    let spec = ScheduleSpec {
        name: b.name,
        namespace: b
            .namespace
            .unwrap_or_else(|| tasker_core::template::DEFAULT_NAMESPACE.to_string()),
        template: b.template,
        version: b.version,
        cron: b.cron,
        timezone: b.timezone,
        every_seconds: b.every_seconds,
        catch_up: b.catch_up.unwrap_or_default(),
        catch_up_window_seconds: b.catch_up_window_seconds,
        context: b.context.unwrap_or_else(|| serde_json::json!({})),
    };
    let info = st
        .tasker()
        .create_schedule(spec)
        .await
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    Ok((StatusCode::CREATED, envelope(info)))
}

/// Lists every schedule with its next fire times.
#[utoipa::path(
    get,
    path = "/tasker/schedules",
    tag = "schedules",
    responses((status = 200, description = "Every schedule, by name.", body = ScheduleList))
)]
pub async fn schedules_index(State(st): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let all = st.tasker().list_schedules().await?;
    Ok(Json(ScheduleList {
        schedules: all.into_iter().map(ScheduleView::from_info).collect(),
    }))
}

/// One schedule.
#[utoipa::path(
    get,
    path = "/tasker/schedules/{name}",
    tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "The schedule.", body = ScheduleEnvelope),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    )
)]
pub async fn schedules_show(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<SchedulePath>,
) -> Result<Json<ScheduleEnvelope>, ApiError> {
    Ok(envelope(st.tasker().get_schedule(&p.name).await?))
}

/// Deletes a schedule (its tasks stay; one from a template file comes back
/// when a process loads that file again).
#[utoipa::path(
    delete,
    path = "/tasker/schedules/{name}",
    tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    )
)]
pub async fn schedules_delete(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<SchedulePath>,
) -> Result<StatusCode, ApiError> {
    st.tasker().delete_schedule(&p.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses a schedule: no tick fires until resumed.
#[utoipa::path(
    post,
    path = "/tasker/schedules/{name}/pause",
    tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "The schedule, with `paused_at` set.", body = ScheduleEnvelope),
        (status = 404, description = "No such schedule.", body = ErrorBody),
        (status = 409, description = "Already paused (`conflict`).", body = ErrorBody),
    )
)]
pub async fn schedules_pause(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<SchedulePath>,
) -> Result<Json<ScheduleEnvelope>, ApiError> {
    Ok(envelope(st.tasker().pause_schedule(&p.name).await?))
}

/// Resumes a schedule from now (ticks missed while paused are skipped).
#[utoipa::path(
    post,
    path = "/tasker/schedules/{name}/resume",
    tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 200, description = "The schedule, with `paused_at` null.", body = ScheduleEnvelope),
        (status = 404, description = "No such schedule.", body = ErrorBody),
        (status = 409, description = "Not paused (`conflict`).", body = ErrorBody),
    )
)]
pub async fn schedules_resume(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<SchedulePath>,
) -> Result<Json<ScheduleEnvelope>, ApiError> {
    Ok(envelope(st.tasker().resume_schedule(&p.name).await?))
}

/// Fires a schedule now, by hand (also while paused): creates one task.
#[utoipa::path(
    post,
    path = "/tasker/schedules/{name}/trigger",
    tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 201, description = "The task created.", body = TaskEnvelope),
        (status = 404, description = "No such schedule (`not_found`), or its template is not registered here (`template_not_found`).", body = ErrorBody),
        (status = 422, description = "The rendered context violates the template's JSON Schema.", body = ErrorBody),
    )
)]
pub async fn schedules_trigger(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<SchedulePath>,
) -> Result<(StatusCode, Json<TaskEnvelope>), ApiError> {
    let task = st.tasker().trigger_schedule(&p.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(TaskEnvelope {
            task: TaskView::from_row(task),
        }),
    ))
}
