//! The flow page: schedules (next fire times, paused or not) and paused
//! namespaces and templates — the answers of `GET /tasker/schedules` and
//! `GET /tasker/flow/pauses`, computed by the same handlers. Each section
//! shows only when the viewer may read its API route.

use super::{Chrome, respond};
use crate::format;
use crate::session::{Refusal, Viewer};
use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use tasker_server::AppState;
use tasker_server::routes::flow::pauses_index;
use tasker_server::routes::schedules::{ScheduleView, schedules_index};
use tasker_server::views::PauseView;

/// One schedule row.
pub struct ScheduleRow {
    /// Schedule name.
    pub name: String,
    /// `namespace/template` (with `@version` when pinned).
    pub template: String,
    /// The cron expression and time zone, or the interval.
    pub when: String,
    /// Whether paused.
    pub paused: bool,
    /// The next fire times, formatted.
    pub next: String,
    /// The last tick that fired, formatted (or `—`).
    pub last: String,
}

/// One pause row.
pub struct PauseRow {
    /// `namespace` or `namespace/template`.
    pub scope: String,
    /// Since when.
    pub since: String,
    /// Who paused it.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// The page. A section is `None` when the viewer may not read its route.
#[derive(Template)]
#[template(path = "flow.html")]
pub struct FlowPage {
    /// Frame.
    pub chrome: Chrome,
    /// The schedules.
    pub schedules: Option<Vec<ScheduleRow>>,
    /// The pauses.
    pub pauses: Option<Vec<PauseRow>>,
}

/// `GET /tasker/ui/flow`.
pub async fn page(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, Refusal> {
    let path = format!("{}/flow", crate::BASE);
    let viewer = Viewer::from_request(&st, &headers, &path).await?;
    let may_read = |route: &str| viewer.permit(&st, "GET", route, None).is_ok();
    let schedules = if may_read("/tasker/schedules") {
        let Json(list) = schedules_index(State(st.clone())).await?;
        Some(list.schedules.into_iter().map(schedule_row).collect())
    } else {
        None
    };
    let pauses = if may_read("/tasker/flow/pauses") {
        let Json(list) = pauses_index(State(st.clone())).await?;
        Some(list.pauses.into_iter().map(pause_row).collect())
    } else {
        None
    };
    let page = FlowPage {
        chrome: Chrome::new(&viewer, "Flow", "flow"),
        schedules,
        pauses,
    };
    Ok(respond(&viewer, &headers, &page))
}

/// A schedule of the API's answer, formatted for the table.
fn schedule_row(s: ScheduleView) -> ScheduleRow {
    ScheduleRow {
        template: match &s.version {
            Some(v) => format!("{}/{}@{v}", s.namespace, s.template),
            None => format!("{}/{}", s.namespace, s.template),
        },
        when: match (&s.cron, s.every_seconds) {
            (Some(c), _) => format!("cron {c} ({})", s.timezone.as_deref().unwrap_or("UTC")),
            (None, Some(n)) => format!("every {n} s"),
            (None, None) => "—".into(),
        },
        paused: s.paused_at.is_some(),
        next: if s.paused_at.is_some() || s.next_fire_times.is_empty() {
            "—".into()
        } else {
            s.next_fire_times
                .iter()
                .map(|t| format::time(*t))
                .collect::<Vec<_>>()
                .join(", ")
        },
        last: s
            .last_tick_at
            .map(format::time)
            .unwrap_or_else(|| "—".into()),
        name: s.name,
    }
}

/// A pause of the API's answer, formatted for the table.
fn pause_row(p: PauseView) -> PauseRow {
    PauseRow {
        scope: match (&p.namespace, &p.name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (Some(ns), None) => ns.clone(),
            _ => p.scope.clone(),
        },
        since: format::time(p.since),
        by: p.by.unwrap_or_else(|| "—".into()),
        reason: p.reason.unwrap_or_else(|| "—".into()),
    }
}
