//! The task list: filters (status, namespace, name, version, created range,
//! tags or a task id to jump to, correlation id), counts per status under the same
//! filters, and paging. The filters go through the API's list rules
//! ([`tasker_engine::requests::TaskListRequest`]), so a bad filter gets the
//! API's error code.

use super::{Chrome, respond};
use crate::format;
use crate::session::{Refusal, Viewer, encode};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use tasker_core::TaskState;
use tasker_engine::requests::{PageLimits, TaskListRequest};
use tasker_server::{ApiError, AppState};
use tasker_store::CountMode;

/// Rows per page.
pub const PAGE_SIZE: u32 = 25;

/// The filter form's fields (all text: bad values are reported, not rejected by the extractor).
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    /// Task state.
    #[serde(default)]
    pub status: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Template name.
    #[serde(default)]
    pub name: String,
    /// Template version.
    #[serde(default)]
    pub version: String,
    /// Created at or after (`YYYY-MM-DDTHH:MM`, UTC, or RFC 3339).
    #[serde(default)]
    pub since: String,
    /// Created before.
    #[serde(default)]
    pub until: String,
    /// Tags (comma-separated), or a task id to open.
    #[serde(default)]
    pub q: String,
    /// Correlation id (exact).
    #[serde(default)]
    pub correlation_id: String,
    /// Page number, from 1.
    #[serde(default)]
    pub page: Option<u32>,
}

/// One row.
pub struct Row {
    /// Task id.
    pub id: String,
    /// `namespace.name`.
    pub name: String,
    /// Version.
    pub version: String,
    /// State.
    pub status: &'static str,
    /// Steps done / total.
    pub progress: String,
    /// Created.
    pub created: String,
    /// Created, ISO.
    pub created_iso: String,
    /// Tags.
    pub tags: String,
    /// Correlation id.
    pub correlation_id: String,
}

/// The page.
#[derive(Template)]
#[template(path = "list.html")]
pub struct ListPage {
    /// Frame.
    pub chrome: Chrome,
    /// The filters as sent.
    pub f: Filters,
    /// This page's URL (live refreshes fetch it again).
    pub here: String,
    /// Every state, for the select, and whether it is the filter's.
    pub states: Vec<(&'static str, bool)>,
    /// Count per state under the other filters: (state, count, link).
    pub counts: Vec<(&'static str, i64, String)>,
    /// This page's rows.
    pub rows: Vec<Row>,
    /// The filter's error, shown instead of rows: (status, code, message).
    pub error: Option<(u16, &'static str, String)>,
    /// Link to the previous page.
    pub prev: Option<String>,
    /// Link to the next page.
    pub next: Option<String>,
    /// Page number.
    pub page: u32,
    /// Matching tasks, when counted.
    pub total: Option<i64>,
}

fn parse_time(field: &str, v: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    // What `<input type="datetime-local">` sends, read as UTC.
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err(ApiError::bad_request(
        "invalid_parameter",
        format!("`{field}`: `{v}` is not a time (use 2026-01-01T00:00, UTC, or RFC 3339)"),
    )
    .field(field))
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

impl Filters {
    /// The list request these filters make (status and paging aside).
    fn request(&self) -> Result<TaskListRequest, ApiError> {
        let status = match non_empty(&self.status) {
            Some(s) => Some(s.parse::<TaskState>().map_err(|e| {
                ApiError::bad_request("invalid_parameter", format!("`status`: {e}")).field("status")
            })?),
            None => None,
        };
        Ok(TaskListRequest {
            status,
            namespace: non_empty(&self.namespace),
            name: non_empty(&self.name),
            version: non_empty(&self.version),
            created_since: parse_time("since", &self.since)?,
            created_until: parse_time("until", &self.until)?,
            tags: non_empty(&self.q)
                .map(|q| {
                    q.split(',')
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            correlation_id: non_empty(&self.correlation_id),
            ..Default::default()
        })
    }

    /// The query string of these filters with `status` replaced.
    fn link(&self, status: &str, page: Option<u32>) -> String {
        let mut pairs: Vec<(&str, String)> = vec![];
        for (k, v) in [
            ("status", status),
            ("namespace", &self.namespace),
            ("name", &self.name),
            ("version", &self.version),
            ("since", &self.since),
            ("until", &self.until),
            ("q", &self.q),
            ("correlation_id", &self.correlation_id),
        ] {
            if !v.trim().is_empty() {
                pairs.push((k, v.trim().to_string()));
            }
        }
        if let Some(p) = page {
            pairs.push(("page", p.to_string()));
        }
        let q = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("{}/?{q}", crate::BASE)
    }
}

/// `GET /tasker/ui/`.
pub async fn page(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<Filters>,
) -> Result<Response, Refusal> {
    let here = uri.path_and_query().map_or("/tasker/ui/", |p| p.as_str());
    let viewer = Viewer::from_request(&st, &headers, here).await?;
    let ns = non_empty(&f.namespace);
    viewer.permit(&st, "GET", "/tasker/tasks", ns.as_deref())?;
    // A task id in the search box opens the task.
    if let Ok(id) = uuid::Uuid::try_parse(f.q.trim()) {
        return Ok(Redirect::to(&format!("{}/tasks/{id}", crate::BASE)).into_response());
    }
    let mut chrome = Chrome::new(&viewer, "Tasks", "tasks");
    let page_no = f.page.unwrap_or(1).max(1);
    let mut out = ListPage {
        chrome: chrome.clone(),
        here: here.to_string(),
        states: TaskState::ALL
            .iter()
            .map(|s| (s.as_str(), f.status.trim() == s.as_str()))
            .collect(),
        counts: Vec::new(),
        rows: Vec::new(),
        error: None,
        prev: None,
        next: None,
        page: page_no,
        total: None,
        f: Filters::default(),
    };
    let tasker = st.tasker();
    let limits = PageLimits {
        default: PAGE_SIZE,
        max: PAGE_SIZE.max(st.config().max_page_size),
    };
    let base = match f.request() {
        Ok(b) => b,
        Err(e) => {
            out.error = Some((
                e.kind().status().as_u16(),
                e.code(),
                e.message().to_string(),
            ));
            out.f = f;
            let mut res = respond(&viewer, &headers, &out);
            *res.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            return Ok(res);
        }
    };
    // Live: any lifecycle event (of this namespace, when filtered) refreshes the list.
    if viewer.may(&st, "GET", "/tasker/events/stream", ns.as_deref()) {
        let after = tasker.store().events_last_id().await.unwrap_or(0);
        chrome.live = live_url(after, None, ns.as_deref());
    }
    out.chrome = chrome;
    let request = TaskListRequest {
        limit: Some(PAGE_SIZE),
        offset: Some((page_no - 1).saturating_mul(PAGE_SIZE)),
        count: CountMode::Exact,
        ..base.clone()
    };
    match tasker.list_tasks_checked(&request, limits).await {
        Ok(p) => {
            out.total = p.total;
            let more = p
                .total
                .is_some_and(|t| i64::from(page_no) * i64::from(PAGE_SIZE) < t);
            out.rows = p.items.into_iter().map(row).collect();
            if page_no > 1 {
                out.prev = Some(f.link(&f.status, Some(page_no - 1)));
            }
            if more {
                out.next = Some(f.link(&f.status, Some(page_no + 1)));
            }
        }
        Err(e) => {
            let e = ApiError::from(e);
            out.error = Some((
                e.kind().status().as_u16(),
                e.code(),
                e.message().to_string(),
            ));
        }
    }
    if out.error.is_none() {
        for s in TaskState::ALL {
            let q = TaskListRequest {
                status: Some(s),
                limit: Some(1),
                count: CountMode::Exact,
                ..base.clone()
            };
            let n = tasker
                .list_tasks_checked(&q, limits)
                .await
                .map_err(ApiError::from)?
                .total
                .unwrap_or(0);
            out.counts.push((s.as_str(), n, f.link(s.as_str(), None)));
        }
    }
    let status = if out.error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    out.f = f;
    let mut res = respond(&viewer, &headers, &out);
    *res.status_mut() = status;
    Ok(res)
}

fn row(t: tasker_store::TaskRow) -> Row {
    Row {
        id: t.id.to_string(),
        name: format!("{}.{}", t.namespace, t.name),
        version: t.version,
        status: t.status.as_str(),
        progress: format!("{}/{}", t.steps_total - t.steps_remaining, t.steps_total),
        created: format::time(t.created_at),
        created_iso: format::iso(t.created_at),
        tags: t.tags.join(", "),
        correlation_id: t.correlation_id,
    }
}

/// The live-update URL after event `after`, for one task or a namespace.
pub fn live_url(after: i64, task: Option<(uuid::Uuid, &str)>, namespace: Option<&str>) -> String {
    let mut url = format!("{}/live?after={after}", crate::BASE);
    if let Some((id, ns)) = task {
        url.push_str(&format!("&task_id={id}&namespace={}", encode(ns)));
    } else if let Some(ns) = namespace {
        url.push_str(&format!("&namespace={}", encode(ns)));
    }
    url
}
