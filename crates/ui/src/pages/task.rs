//! The task page: the DAG, the execution summary, the steps with their
//! buttons, the transitions and the (masked) context. The region below the
//! buttons refreshes itself when the live stream reports a change.

use super::{Chrome, respond};
use crate::format;
use crate::session::{Refusal, Viewer};
use crate::svg;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tasker_core::analysis::DependencyAnalysis;
use tasker_core::{StepState, TaskState};
use tasker_engine::TaskStatus;
use tasker_server::AppState;
use tasker_store::StepRow;
use uuid::Uuid;

/// Transitions listed on the page (the newest; the API has them all).
pub const MAX_TRANSITIONS: usize = 200;
/// Rows of the step table per page.
pub const STEP_PAGE: usize = 50;

/// Which part of the step table is shown (`?step_page=2&step_state=error`).
#[derive(Debug, Default, Deserialize)]
pub struct StepView {
    /// Page of the step table, from 1 (text: a bad value is reported).
    #[serde(default)]
    pub step_page: String,
    /// Only steps in this state.
    #[serde(default)]
    pub step_state: String,
}

impl StepView {
    /// The page number and state filter, or a 400 naming the parameter.
    fn parse(&self) -> Result<(usize, Option<StepState>), Refusal> {
        let bad = |field: &str, message: String| {
            Refusal::Error(
                tasker_server::ApiError::bad_request("invalid_parameter", message).field(field),
            )
        };
        let page = match self.step_page.trim() {
            "" => 1,
            p => match p.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(bad(
                        "step_page",
                        format!("`step_page`: `{p}` is not a page number (1, 2, ...)"),
                    ));
                }
            },
        };
        let state = match self.step_state.trim() {
            "" => None,
            t => Some(
                t.parse::<StepState>()
                    .map_err(|e| bad("step_state", format!("`step_state`: {e}")))?,
            ),
        };
        Ok((page, state))
    }
}

/// One entry of the step table's state filter: (state or `all`, count, link, current).
pub struct StateLink {
    /// `all` or a step state.
    pub state: &'static str,
    /// Steps in that state.
    pub count: usize,
    /// The table filtered by it.
    pub link: String,
    /// The filter shown now.
    pub current: bool,
}

/// One step of the table.
pub struct StepLine {
    /// Step id.
    pub id: String,
    /// Name.
    pub name: String,
    /// State.
    pub status: &'static str,
    /// `attempts/max`.
    pub attempts: String,
    /// Last attempt's duration.
    pub duration: String,
    /// Last error, shortened.
    pub error: String,
    /// Shows a retry button.
    pub can_retry: bool,
    /// Shows a cancel button.
    pub can_cancel: bool,
}

/// One lifecycle event of the timeline.
pub struct TransitionLine {
    /// When.
    pub when: String,
    /// When, ISO.
    pub when_iso: String,
    /// `task` or the step's name.
    pub what: String,
    /// The event type (`step.failed`).
    pub from: String,
    /// The state it led to, when it is a change of state.
    pub to: String,
    /// Error message or who asked.
    pub note: String,
}

/// The page.
#[derive(Template)]
#[template(path = "task.html")]
pub struct TaskPage {
    /// Frame.
    pub chrome: Chrome,
    /// This page's URL.
    pub here: String,
    /// Task id.
    pub id: String,
    /// `namespace.name`.
    pub title: String,
    /// Version.
    pub version: String,
    /// State.
    pub status: &'static str,
    /// Paused by an operator.
    pub paused: bool,
    /// Facts: (label, value).
    pub facts: Vec<(&'static str, String)>,
    /// Summary: (label, value).
    pub summary: Vec<(&'static str, String)>,
    /// The analysis' recommendations.
    pub recommendations: Vec<String>,
    /// The DAG.
    pub svg: String,
    /// This page of the step table.
    pub steps: Vec<StepLine>,
    /// The table's state filter, with counts.
    pub step_states: Vec<StateLink>,
    /// "Steps 51–100 of 1000" (of the filtered ones).
    pub steps_caption: String,
    /// Link to the table's previous page.
    pub steps_prev: Option<String>,
    /// Link to the table's next page.
    pub steps_next: Option<String>,
    /// Newest transitions first.
    pub transitions: Vec<TransitionLine>,
    /// Older transitions not listed.
    pub transitions_hidden: usize,
    /// Context, masked, pretty.
    pub context: String,
    /// CSRF token for the forms.
    pub csrf: String,
    /// Show the cancel-task button.
    pub can_cancel: bool,
    /// Show the retry-task button.
    pub can_retry: bool,
}

/// Serialised name of an enum value (`blocked_by_failures`).
pub fn label<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Parses an id from a path (anything else names nothing: 404).
pub fn parse_id(what: &str, text: &str) -> Result<Uuid, Refusal> {
    Uuid::try_parse(text).map_err(|_| Refusal::Error(super::error::not_found(what, text)))
}

/// Loads a task for `viewer`, with the API's checks in the API's order:
/// some grant for the first route (403), the task (404), then every route
/// for the task's namespace (403).
pub async fn load(
    st: &AppState,
    viewer: &Viewer,
    task_id: &str,
    routes: &[(&str, &str)],
) -> Result<TaskStatus, Refusal> {
    if let Some((m, p)) = routes.first() {
        viewer.permit_any(m, p)?;
    }
    let id = parse_id("task", task_id)?;
    let status = st.tasker().task_status(id).await?;
    for (m, p) in routes {
        viewer.permit(st, m, p, Some(&status.task.namespace))?;
    }
    Ok(status)
}

/// The picture's nodes for a task's steps.
pub fn nodes(
    task_id: Uuid,
    steps: &[StepRow],
    analysis: Option<&DependencyAnalysis>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<svg::Node> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut chain: std::collections::HashSet<Uuid> = Default::default();
    let mut levels: HashMap<Uuid, usize> = HashMap::new();
    if let Some(a) = analysis {
        for c in &a.error_chains.error_chains {
            chain.insert(c.error_step_id);
            chain.extend(c.blocked_downstream_steps.iter().copied());
        }
        levels = a
            .dependency_graph
            .dependency_levels
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
    }
    steps
        .iter()
        .map(|s| {
            let mut detail = format!("{} · {}/{}", s.status.as_str(), s.attempts, s.max_attempts);
            if let Some(ms) = format::step_duration_ms(s, now) {
                detail.push_str(" · ");
                detail.push_str(&format::duration(ms));
            }
            svg::Node {
                name: s.name.clone(),
                level: levels.get(&s.id).copied().unwrap_or(0),
                state: Some(s.status),
                detail,
                href: Some(format!("{}/tasks/{task_id}/steps/{}", crate::BASE, s.id)),
                in_chain: chain.contains(&s.id),
                parents: s
                    .parents
                    .iter()
                    .filter_map(|p| index.get(p.as_str()).copied())
                    .collect(),
            }
        })
        .collect()
}

/// `GET /tasker/ui/tasks/{task_id}`.
pub async fn page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    view: Result<Query<StepView>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Refusal> {
    let here = format!("{}/tasks/{task_id}", crate::BASE);
    let viewer = Viewer::from_request(&st, &headers, &here).await?;
    let Query(view) = view.map_err(|e| {
        Refusal::Error(tasker_server::ApiError::bad_request(
            "invalid_parameter",
            format!("the page's query is malformed: {e}"),
        ))
    })?;
    let page = build(&st, &viewer, &task_id, &view).await?;
    Ok(respond(&viewer, &headers, &page))
}

/// Every lifecycle event of a task, oldest first (masked), read 1,000 at a time.
async fn timeline(st: &AppState, task_id: Uuid) -> Result<Vec<tasker_store::EventRow>, Refusal> {
    let mut out = Vec::new();
    let mut query = tasker_store::EventQuery {
        after: 0,
        limit: 1000,
        types: Vec::new(),
        task_id: Some(task_id),
        namespace: None,
    };
    loop {
        let page = st.tasker().events(&query).await?;
        let full = page.len() == 1000;
        if let Some(last) = page.last() {
            query.after = last.id;
        }
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// The page's content (also what the benchmark renders).
pub async fn build(
    st: &AppState,
    viewer: &Viewer,
    task_id: &str,
    view: &StepView,
) -> Result<TaskPage, Refusal> {
    let (step_page, step_state) = view.parse()?;
    let tasker = st.tasker();
    // Read before the page's data: a change after this is announced live.
    let after = tasker.store().events_last_id().await.unwrap_or(0);
    let status = load(
        st,
        viewer,
        task_id,
        &[
            ("GET", "/tasker/tasks/{task_id}"),
            ("GET", "/tasker/tasks/{task_id}/steps"),
        ],
    )
    .await?;
    let task = &status.task;
    let ns = task.namespace.as_str();
    let base = format!("{}/tasks/{}", crate::BASE, task.id);
    let now = tasker.now();
    let steps = tasker.task_steps(task.id).await?;
    let analysis = st
        .cache()
        .get_or_compute(task.id, &steps, now, &st.config().dependency_graph)
        .await
        .ok()
        .map(|(a, _)| a);
    // The timeline is the task's lifecycle events (one indexed read per
    // 1,000, masked), not its transition history, which reads each step's
    // transitions apart (a thousand reads for a thousand steps).
    let history = if viewer.may(st, "GET", "/tasker/tasks/{task_id}/events", Some(ns)) {
        timeline(st, task.id).await?
    } else {
        Vec::new()
    };

    let mut chrome = Chrome::new(viewer, format!("{}.{}", task.namespace, task.name), "tasks");
    if viewer.may(st, "GET", "/tasker/events/stream", Some(ns)) {
        chrome.live = super::list::live_url(after, Some((task.id, ns)), None);
    }
    let may_retry_step = viewer.may(
        st,
        "POST",
        "/tasker/tasks/{task_id}/steps/{step_id}/retry",
        Some(ns),
    );
    let may_cancel_step = viewer.may(
        st,
        "DELETE",
        "/tasker/tasks/{task_id}/steps/{step_id}",
        Some(ns),
    );
    let finished = matches!(
        task.status,
        TaskState::Complete | TaskState::Cancelled | TaskState::ResolvedManually
    );
    // The table shows one page of the (filtered) steps; the picture and the
    // counts cover them all.
    let table = StepTable::new(&steps, &base, step_state, step_page);
    let lines = table
        .rows
        .iter()
        .map(|s| StepLine {
            id: s.id.to_string(),
            name: s.name.clone(),
            status: s.status.as_str(),
            attempts: format!("{}/{}", s.attempts, s.max_attempts),
            duration: format::step_duration_ms(s, now)
                .map(format::duration)
                .unwrap_or_default(),
            error: s
                .last_error
                .as_ref()
                .map(|e| format::truncate(&e.message, 240))
                .unwrap_or_default(),
            can_retry: may_retry_step && s.status == StepState::Error,
            can_cancel: may_cancel_step
                && !finished
                && matches!(s.status, StepState::Pending | StepState::Error),
        })
        .collect();
    let total = history.len();
    let transitions = history
        .iter()
        .rev()
        .take(MAX_TRANSITIONS)
        .map(|e| {
            let p = &e.payload;
            let text = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let note = p
                .pointer("/error/message")
                .and_then(|v| v.as_str())
                .map(|m| format::truncate(m, 240))
                .or_else(|| text("by").map(|b| format!("by {b}")))
                .unwrap_or_default();
            TransitionLine {
                when: format::time(e.created_at),
                when_iso: format::iso(e.created_at),
                what: text("step_name").unwrap_or_else(|| "task".into()),
                from: e.event_type.clone(),
                to: text("to").unwrap_or_default(),
                note,
            }
        })
        .collect();
    let exec = &status.execution;
    let mut summary = vec![
        ("Completion", format!("{:.1} %", exec.completion_percentage)),
        ("Health", label(&exec.health_status)),
        ("Execution", label(&exec.execution_status)),
        ("Recommended action", label(&exec.recommended_action)),
    ];
    let mut recommendations = Vec::new();
    if let Some(a) = &analysis {
        let s = &a.task_execution_summary;
        summary.push(("Overall health", label(&s.overall_health)));
        summary.push(("Levels", s.dependency_levels.to_string()));
        summary.push(("Longest path", s.longest_path_length.to_string()));
        summary.push(("Error chains", s.error_chains_count.to_string()));
        recommendations = s.recommendations.clone();
    }
    let mut facts = vec![
        ("Id", task.id.to_string()),
        ("Correlation id", task.correlation_id.clone()),
        ("Created", format::time(task.created_at)),
        ("Updated", format::time(task.updated_at)),
        ("Initiator", task.initiator.clone()),
        ("Source system", task.source_system.clone()),
        ("Reason", task.reason.clone()),
        ("Tags", task.tags.join(", ")),
    ];
    if let Some(c) = task.completed_at {
        facts.push(("Finished", format::time(c)));
    }
    let nodes = nodes(task.id, &steps, analysis.as_deref(), now);
    let svg = svg::render(
        &nodes,
        &format!(
            "Dependency graph of {}.{}: {} steps, {}",
            task.namespace,
            task.name,
            steps.len(),
            task.status.as_str()
        ),
    );
    Ok(TaskPage {
        here: table.here,
        id: task.id.to_string(),
        title: format!("{}.{}", task.namespace, task.name),
        version: task.version.clone(),
        status: task.status.as_str(),
        paused: task.paused_at.is_some(),
        facts,
        summary,
        recommendations,
        svg,
        steps: lines,
        step_states: table.states,
        steps_caption: table.caption,
        steps_prev: table.prev,
        steps_next: table.next,
        transitions,
        transitions_hidden: total.saturating_sub(MAX_TRANSITIONS),
        context: format::masked_json(tasker.masker(), &task.context),
        csrf: viewer.csrf.clone(),
        can_cancel: !finished && viewer.may(st, "DELETE", "/tasker/tasks/{task_id}", Some(ns)),
        can_retry: task.status == TaskState::Error
            && viewer.may(st, "POST", "/tasker/tasks/{task_id}/retry", Some(ns)),
        chrome,
    })
}

/// One page of the step table and its links.
struct StepTable<'a> {
    /// The steps of this page, in template order.
    rows: Vec<&'a StepRow>,
    /// The page's own URL (what live refreshes fetch).
    here: String,
    states: Vec<StateLink>,
    caption: String,
    prev: Option<String>,
    next: Option<String>,
}

impl<'a> StepTable<'a> {
    fn new(steps: &'a [StepRow], base: &str, state: Option<StepState>, page: usize) -> Self {
        let link = |state: Option<StepState>, page: usize| {
            let mut q: Vec<(&str, String)> = Vec::new();
            if let Some(s) = state {
                q.push(("step_state", s.as_str().to_string()));
            }
            if page > 1 {
                q.push(("step_page", page.to_string()));
            }
            if q.is_empty() {
                base.to_string()
            } else {
                format!(
                    "{base}?{}",
                    serde_urlencoded::to_string(&q).unwrap_or_default()
                )
            }
        };
        let mut states = vec![StateLink {
            state: "all",
            count: steps.len(),
            link: link(None, 1),
            current: state.is_none(),
        }];
        for s in StepState::ALL {
            let count = steps.iter().filter(|r| r.status == s).count();
            if count > 0 || state == Some(s) {
                states.push(StateLink {
                    state: s.as_str(),
                    count,
                    link: link(Some(s), 1),
                    current: state == Some(s),
                });
            }
        }
        let matching: Vec<&StepRow> = steps
            .iter()
            .filter(|r| state.is_none_or(|s| r.status == s))
            .collect();
        let total = matching.len();
        let start = (page - 1).saturating_mul(STEP_PAGE).min(total);
        let end = (start + STEP_PAGE).min(total);
        let caption = if total == 0 {
            "No step matches.".to_string()
        } else if start == end {
            format!("Page {page} is past the last of {total} steps.")
        } else {
            format!("Steps {}–{end} of {total}", start + 1)
        };
        StepTable {
            rows: matching[start..end].to_vec(),
            here: link(state, page),
            states,
            caption,
            prev: (page > 1).then(|| link(state, (page - 1).min(total.div_ceil(STEP_PAGE).max(1)))),
            next: (end < total).then(|| link(state, page + 1)),
        }
    }
}
