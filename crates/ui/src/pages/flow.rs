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
use tasker_server::routes::schedules::schedules_index;

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

/// The page.
#[derive(Template)]
#[template(path = "flow.html")]
pub struct FlowPage {
    /// Frame.
    pub chrome: Chrome,
    /// Whether the viewer may read the schedules.
    pub schedules_allowed: bool,
    /// The schedules.
    pub schedules: Vec<ScheduleRow>,
    /// Whether the viewer may read the pauses.
    pub pauses_allowed: bool,
    /// The pauses.
    pub pauses: Vec<PauseRow>,
}

/// `GET /tasker/ui/flow`.
pub async fn page(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, Refusal> {
    let path = format!("{}/flow", crate::BASE);
    let viewer = Viewer::from_request(&st, &headers, &path).await?;
    let schedules = match viewer.permit(&st, "GET", "/tasker/schedules", None) {
        Ok(()) => {
            let Json(list) = schedules_index(State(st.clone())).await?;
            Some(
                list.schedules
                    .into_iter()
                    .map(|s| ScheduleRow {
                        template: match &s.version {
                            Some(v) => format!("{}/{}@{v}", s.namespace, s.template),
                            None => format!("{}/{}", s.namespace, s.template),
                        },
                        when: match (&s.cron, s.every_seconds) {
                            (Some(c), _) => {
                                format!("cron {c} ({})", s.timezone.as_deref().unwrap_or("UTC"))
                            }
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
                    })
                    .collect(),
            )
        }
        Err(_) => None,
    };
    let pauses = match viewer.permit(&st, "GET", "/tasker/flow/pauses", None) {
        Ok(()) => {
            let Json(list) = pauses_index(State(st.clone())).await?;
            Some(
                list.pauses
                    .into_iter()
                    .map(|p| PauseRow {
                        scope: match (&p.namespace, &p.name) {
                            (Some(ns), Some(n)) => format!("{ns}/{n}"),
                            (Some(ns), None) => ns.clone(),
                            _ => p.scope.clone(),
                        },
                        since: format::time(p.since),
                        by: p.by.unwrap_or_else(|| "—".into()),
                        reason: p.reason.unwrap_or_else(|| "—".into()),
                    })
                    .collect(),
            )
        }
        Err(_) => None,
    };
    let page = FlowPage {
        chrome: Chrome::new(&viewer, "Flow", "flow"),
        schedules_allowed: schedules.is_some(),
        schedules: schedules.unwrap_or_default(),
        pauses_allowed: pauses.is_some(),
        pauses: pauses.unwrap_or_default(),
    };
    Ok(respond(&viewer, &headers, &page))
}
