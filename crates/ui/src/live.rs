//! Live updates: `GET /tasker/ui/live` streams one Server-Sent Event per
//! lifecycle event (of one task, or one namespace, or all), read from the
//! events outbox by the same machinery as `/tasker/events/stream`
//! ([`tasker_server::routes::events::event_rows`]): woken at once by this
//! process's changes, and within half a second by other processes' (the
//! outbox is re-read on that backstop), PostgreSQL included.
//!
//! Each message is unnamed (so `EventSource.onmessage` sees it), carries
//! the event id (a reconnecting browser resumes after it) and a small JSON
//! body (`type`, `task_id`, `step_id`); the page's script only needs to
//! know that something changed, and fetches the region again.

use crate::session::{Refusal, Viewer};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use std::time::Duration;
use tasker_server::{ApiError, AppState};
use tasker_store::EventQuery;

/// Query of the stream.
#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    /// Only events after this id (the page's render time).
    #[serde(default)]
    pub after: Option<i64>,
    /// Only this task's events.
    #[serde(default)]
    pub task_id: Option<uuid::Uuid>,
    /// Only this namespace's events.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `GET /tasker/ui/live`: needs what `GET /tasker/events/stream` needs.
pub async fn stream(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<LiveQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => {
            return crate::pages::error::page(&ApiError::bad_request(
                "invalid_parameter",
                format!("the live stream's query is malformed: {e}"),
            ));
        }
    };
    let viewer = match Viewer::from_request(&st, &headers, crate::BASE).await {
        Ok(v) => v,
        // A stream cannot follow the login redirect: say 401.
        Err(Refusal::Login { .. }) => {
            return crate::pages::error::page(&tasker_server::auth::unauthenticated(
                "log in to the dashboard first",
            ));
        }
        Err(r) => return r.into_response(),
    };
    if let Err(r) = viewer.permit(&st, "GET", "/tasker/events/stream", q.namespace.as_deref()) {
        return r.into_response();
    }
    let mut after = q.after.unwrap_or(0).max(0);
    if let Some(id) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|a| *a >= 0)
    {
        after = id;
    }
    let query = EventQuery {
        after,
        limit: 100,
        types: Vec::new(),
        task_id: q.task_id,
        namespace: q.namespace,
    };
    let events =
        tasker_server::routes::events::event_rows(st.tasker().clone(), query, None).map(|e| {
            let body = serde_json::json!({
                "type": e.event_type,
                "task_id": e.task_id,
                "step_id": e.step_id,
            });
            Ok::<_, std::convert::Infallible>(
                Event::default().id(e.id.to_string()).data(body.to_string()),
            )
        });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}
