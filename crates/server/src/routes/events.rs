//! Lifecycle events (docs/EVENTS.md): the event feed with a cursor and long
//! polling, its Server-Sent Events stream, a task's events and its full
//! transition history, and custom events from external workers.
//!
//! Events are read from the store's outbox (written in the transaction of
//! each state change), so a consumer that resumes with `after=<last id>`
//! (or SSE's `Last-Event-ID`) misses nothing and sees nothing twice.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath, ApiQuery};
#[allow(unused_imports)] // Named in schema attributes.
use crate::json::{JsonObject, JsonValue};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tasker_engine::Tasker;
use tasker_engine::requests::{DEFAULT_EVENT_LIMIT, EventPageRequest};
use tasker_store::{EventQuery, EventRow};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Longest long poll (under the server's request timeout, like claims).
const MAX_WAIT: f64 = 20.0;
/// How long the stream waits for events before asking again (the
/// keep-alive comments keep the connection open meanwhile).
const STREAM_WAIT: Duration = Duration::from_secs(15);

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Position in the event sequence: ascending in commit order; resume
    /// with `after=<id>`.
    pub id: i64,
    /// Type, e.g. `task.completed`, `step.failed` or a custom `custom.*` name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The task.
    pub task_id: Uuid,
    /// The step (step and custom events).
    pub step_id: Option<Uuid>,
    /// The task's namespace.
    pub namespace: String,
    /// When the change happened.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub created_at: DateTime<Utc>,
    /// Type-specific fields (docs/EVENTS.md), sensitive values masked.
    #[schema(value_type = JsonObject)]
    pub payload: Value,
}

impl From<EventRow> for EventView {
    fn from(r: EventRow) -> Self {
        EventView {
            id: r.id,
            event_type: r.event_type,
            task_id: r.task_id,
            step_id: r.step_id,
            namespace: r.namespace,
            created_at: r.created_at,
            payload: r.payload,
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Events, oldest first.
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page (the last id here, or the `after`
    /// asked for when the page is empty).
    pub next_after: i64,
}

/// Query parameters of `GET /tasker/events` and `GET /tasker/events/stream`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a higher id (default 0: from the oldest kept). On
    /// the stream, the `Last-Event-ID` header wins over it.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1 to 1000 (default 100). On the stream: end it after this
    /// many events (default: never).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Comma-separated types or patterns: `task.completed`, `step.*`, `*`
    /// (default: every type).
    #[serde(rename = "type")]
    #[param(rename = "type", example = "task.*,step.failed")]
    pub types: Option<String>,
    /// Only this task's events.
    pub task_id: Option<Uuid>,
    /// Only events of tasks in this namespace.
    pub namespace: Option<String>,
    /// Wait up to this many seconds (0–20, default 0) for the first event
    /// when none is there yet. Not used by the stream.
    #[param(minimum = 0, maximum = 20)]
    pub wait_seconds: Option<f64>,
}

/// Query parameters of `GET /tasker/tasks/{task_id}/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskEventsQuery {
    /// Only events with a higher id (default 0).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Comma-separated types or patterns (default: every type).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub types: Option<String>,
}

/// `{task_id}` in a path.
#[derive(Debug, Deserialize)]
pub struct TaskIdPath {
    /// Task id.
    pub task_id: Uuid,
}

/// `{step_id}` in a path.
#[derive(Debug, Deserialize)]
pub struct StepIdPath {
    /// Step id.
    pub step_id: Uuid,
}

/// The comma-separated type patterns, checked by the shared rules
/// ([`EventPageRequest`]).
fn parse_types(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let types: Vec<String> = raw
        .map(|r| r.split(',').map(|t| t.trim().to_string()).collect())
        .unwrap_or_default();
    Ok(EventPageRequest {
        types,
        ..Default::default()
    }
    .to_query()?
    .types)
}

fn check_after(after: Option<i64>) -> Result<i64, ApiError> {
    Ok(EventPageRequest {
        after,
        ..Default::default()
    }
    .to_query()?
    .after)
}

fn check_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    Ok(EventPageRequest {
        limit,
        ..Default::default()
    }
    .to_query()?
    .limit)
}

fn page(events: Vec<EventRow>, after: i64) -> EventList {
    let next_after = events.last().map_or(after, |e| e.id);
    EventList {
        events: events.into_iter().map(EventView::from).collect(),
        next_after,
    }
}

/// The event feed: every recorded event after a cursor, filtered.
#[utoipa::path(
    get,
    path = "/tasker/events",
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "Events after `after`, oldest first (empty when none came within `wait_seconds`).", body = EventList),
        (status = 400, description = "A bad parameter (named in `details.field`).", body = ErrorBody),
    )
)]
pub async fn events_index(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    let after = check_after(q.after)?;
    let query = EventQuery {
        after,
        limit: check_limit(q.limit)?,
        types: parse_types(q.types.as_deref())?,
        task_id: q.task_id,
        namespace: q.namespace,
    };
    let wait = q.wait_seconds.unwrap_or(0.0);
    if !(wait.is_finite() && (0.0..=MAX_WAIT).contains(&wait)) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("query parameter `wait_seconds`: must be between 0 and {MAX_WAIT}"),
        )
        .field("wait_seconds"));
    }
    let events = st
        .tasker()
        .wait_for_events(&query, Duration::from_secs_f64(wait))
        .await?;
    Ok(Json(page(events, after)))
}

/// What the stream carries between reads.
struct StreamState {
    tasker: Tasker,
    query: EventQuery,
    buffered: VecDeque<EventRow>,
    /// Events still to send before the stream ends (None: endless).
    left: Option<u32>,
}

/// The event feed as Server-Sent Events: each event is sent with its id
/// (`id:`), its type (`event:`) and the event as JSON (`data:`). A client
/// that reconnects with `Last-Event-ID` resumes after it. Endless unless
/// `limit` is given.
#[utoipa::path(
    get,
    path = "/tasker/events/stream",
    tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id (sent by SSE clients on reconnect; wins over `after`)."),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`; each message's `data` is an event as in `GET /tasker/events`.", content_type = "text/event-stream", body = String),
        (status = 400, description = "A bad parameter or `Last-Event-ID` (named in `details.field`).", body = ErrorBody),
    )
)]
pub async fn events_stream(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut after = check_after(q.after)?;
    if let Some(v) = headers.get("last-event-id") {
        after = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|a| *a >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    "header `Last-Event-ID`: must be an event id (an integer, 0 or more)",
                )
                .field("Last-Event-ID")
            })?;
    }
    let query = EventQuery {
        after,
        limit: DEFAULT_EVENT_LIMIT,
        types: parse_types(q.types.as_deref())?,
        task_id: q.task_id,
        namespace: q.namespace,
    };
    let left = match q.limit {
        Some(_) => Some(check_limit(q.limit)?),
        None => None,
    };
    let events = event_rows(st.tasker().clone(), query, left).map(|e| {
        Ok(Event::default()
            .id(e.id.to_string())
            .event(e.event_type.clone())
            .json_data(EventView::from(e))
            .unwrap_or_else(|_| Event::default().comment("unserialisable event")))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

/// The outbox from `query.after` on, as an endless stream of rows (masked):
/// woken by the store's change signals, with the long poll's short re-read
/// for other processes' commits. Ends after `left` events when given, or
/// when the database cannot be read (the client resumes from its last id).
/// Shared by `/tasker/events/stream` and the dashboard's live updates.
pub fn event_rows(
    tasker: Tasker,
    query: EventQuery,
    left: Option<u32>,
) -> impl futures::Stream<Item = EventRow> + Send + 'static {
    let state = StreamState {
        tasker,
        query,
        buffered: VecDeque::new(),
        left,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.left == Some(0) {
                return None;
            }
            if let Some(e) = s.buffered.pop_front() {
                s.query.after = e.id;
                s.left = s.left.map(|n| n - 1);
                return Some((e, s));
            }
            match s.tasker.wait_for_events(&s.query, STREAM_WAIT).await {
                Ok(rows) => s.buffered.extend(rows),
                Err(e) => {
                    // The database is away: say so and end the stream; the
                    // client reconnects with its Last-Event-ID.
                    tracing::warn!(error = %e, "event stream read failed");
                    return None;
                }
            }
        }
    })
}

/// A task's events.
#[utoipa::path(
    get,
    path = "/tasker/tasks/{task_id}/events",
    tag = "events",
    params(("task_id" = Uuid, Path, description = "Task id"), TaskEventsQuery),
    responses(
        (status = 200, description = "The task's events after `after`, oldest first.", body = EventList),
        (status = 400, description = "`task_id` is not a UUID, or a bad parameter.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
    )
)]
pub async fn task_events(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskIdPath>,
    ApiQuery(q): ApiQuery<TaskEventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    let after = check_after(q.after)?;
    let query = EventQuery {
        after,
        limit: check_limit(q.limit)?,
        types: parse_types(q.types.as_deref())?,
        task_id: Some(p.task_id),
        namespace: None,
    };
    st.tasker().store().task_get(p.task_id).await?; // 404 for unknown tasks
    let events = st.tasker().events(&query).await?;
    Ok(Json(page(events, after)))
}

/// One transition of a task's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionView {
    /// Id (ascending per task or step table).
    pub id: i64,
    /// The step, for a step's transition (absent for the task's own).
    pub step_id: Option<Uuid>,
    /// The step's name, for a step's transition.
    pub step_name: Option<String>,
    /// Previous state (null for a task's first: its creation; a step's
    /// history starts with its first change).
    pub from_state: Option<String>,
    /// New state.
    pub to_state: String,
    /// When.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub created_at: DateTime<Utc>,
    /// Context: attempt, worker, error, retry time, who asked (`by`).
    #[schema(value_type = JsonObject)]
    pub metadata: Value,
}

/// A task's full history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionList {
    /// The task's and its steps' transitions, oldest first.
    pub transitions: Vec<TransitionView>,
}

/// The full audit history of a task: its own transitions and its steps'.
#[utoipa::path(
    get,
    path = "/tasker/tasks/{task_id}/transitions",
    tag = "events",
    params(("task_id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "Every transition, oldest first.", body = TransitionList),
        (status = 400, description = "`task_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
    )
)]
pub async fn task_transitions(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<TaskIdPath>,
) -> Result<Json<TransitionList>, ApiError> {
    let history = st.tasker().task_history(p.task_id).await?;
    Ok(Json(TransitionList {
        transitions: history
            .into_iter()
            .map(|h| TransitionView {
                id: h.transition.id,
                step_id: h.step_id,
                step_name: h.step_name,
                from_state: h.transition.from_state,
                to_state: h.transition.to_state,
                created_at: h.transition.created_at,
                metadata: h.transition.metadata,
            })
            .collect(),
    }))
}

/// A custom event from an external worker.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmitRequest {
    /// The token from the claim: the step must be running under it.
    pub lease_token: Uuid,
    /// The event's name: contains a dot, first segment not `task`, `step`,
    /// `workflow`, `observability` or `test`; letters, digits, `_`, `-`, `.`.
    #[schema(example = "custom.order_shipped", max_length = 128)]
    pub name: String,
    /// Any JSON (default `{}`), at most 64 KiB.
    #[schema(value_type = Option<JsonValue>)]
    pub payload: Option<Value>,
}

impl ApiBody for EmitRequest {
    const ENVELOPES: &'static [&'static str] = &["event"];
}

/// Acknowledgement of a custom event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmitAccepted {
    /// The step.
    pub step_id: Uuid,
    /// The event's name.
    pub name: String,
    /// Always `accepted`.
    pub status: &'static str,
}

/// Records a custom event for a step an external worker is running.
#[utoipa::path(
    post,
    path = "/tasker/steps/{step_id}/events",
    tag = "workers",
    params(("step_id" = Uuid, Path, description = "Step id")),
    request_body(content = EmitRequest),
    responses(
        (status = 202, description = "Recorded; delivered with the task's other events.", body = EmitAccepted),
        (status = 400, description = "Malformed body or id, a bad name or payload (named in `details.field`).", body = ErrorBody),
        (status = 404, description = "No such step.", body = ErrorBody),
        (status = 409, description = "The lease is no longer held (`lease_lost`).", body = ErrorBody),
    )
)]
pub async fn steps_events(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepIdPath>,
    body: ApiJson<EmitRequest>,
) -> Result<(StatusCode, Json<EmitAccepted>), ApiError> {
    let b = body.value;
    let payload = b
        .payload
        .unwrap_or_else(|| Value::Object(Default::default()));
    st.tasker()
        .emit_event(p.step_id, &b.name, payload, Some(b.lease_token))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EmitAccepted {
            step_id: p.step_id,
            name: b.name,
            status: "accepted",
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns_are_checked() {
        assert_eq!(
            parse_types(Some("task.*, step.failed,*")).unwrap(),
            ["task.*", "step.failed", "*"]
        );
        for bad in ["", "task.", "a..b", "a b", "task.**", "%"] {
            assert!(parse_types(Some(bad)).is_err(), "{bad}");
        }
    }
}
