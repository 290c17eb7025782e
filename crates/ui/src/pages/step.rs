//! The step page: what it was given (inputs, its parents' results), what it
//! produced (results), every transition of its attempts with their errors,
//! the lease while it runs, and its buttons (retry, cancel, resolve with a
//! JSON results editor). Values are masked as in the logs.

use super::task::{load, parse_id};
use super::{Chrome, respond};
use crate::format;
use crate::session::{Refusal, Viewer};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tasker_core::{StepState, TaskState};
use tasker_server::AppState;

/// Parents whose results the page shows (a join of hundreds lists the
/// first ones; the API has them all).
pub const MAX_PARENTS: usize = 20;

/// One transition of the step.
pub struct AttemptLine {
    /// When.
    pub when: String,
    /// From state.
    pub from: String,
    /// To state.
    pub to: String,
    /// Attempt number, when recorded.
    pub attempt: String,
    /// Worker, when recorded.
    pub worker: String,
    /// The error: kind, code, message.
    pub error: String,
}

/// The page.
#[derive(Template)]
#[template(path = "step.html")]
pub struct StepPage {
    /// Frame.
    pub chrome: Chrome,
    /// This page's URL.
    pub here: String,
    /// Task id.
    pub task_id: String,
    /// `namespace.name` of the task.
    pub task_title: String,
    /// Step id.
    pub id: String,
    /// Name.
    pub name: String,
    /// State.
    pub status: &'static str,
    /// Facts: (label, value).
    pub facts: Vec<(&'static str, String)>,
    /// Inputs, masked.
    pub inputs: String,
    /// Results, masked (None: none yet).
    pub results: Option<String>,
    /// Parents' results: (name, masked results), at most [`MAX_PARENTS`].
    pub parents: Vec<(String, String)>,
    /// Parents not shown.
    pub parents_hidden: usize,
    /// The last error.
    pub last_error: Option<String>,
    /// Its transitions, oldest first.
    pub attempts: Vec<AttemptLine>,
    /// CSRF token.
    pub csrf: String,
    /// Show retry.
    pub can_retry: bool,
    /// Show cancel.
    pub can_cancel: bool,
    /// Show resolve.
    pub can_resolve: bool,
}

/// `GET /tasker/ui/tasks/{task_id}/steps/{step_id}`.
pub async fn page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((task_id, step_id)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let here = format!("{}/tasks/{task_id}/steps/{step_id}", crate::BASE);
    let viewer = Viewer::from_request(&st, &headers, &here).await?;
    let tasker = st.tasker();
    let after = tasker.store().events_last_id().await.unwrap_or(0);
    let status = load(
        &st,
        &viewer,
        &task_id,
        &[("GET", "/tasker/tasks/{task_id}/steps/{step_id}")],
    )
    .await?;
    let task = &status.task;
    let ns = task.namespace.as_str();
    let sid = parse_id("step", &step_id)?;
    let step = tasker.step_in_task(task.id, sid).await?;
    let steps = tasker.task_steps(task.id).await?;
    let masker = tasker.masker();
    let now = tasker.now();
    // One read of this step's transitions (not the whole task's history).
    let history = if viewer.may(&st, "GET", "/tasker/tasks/{task_id}/transitions", Some(ns)) {
        tasker
            .store()
            .step_transitions(step.id)
            .await
            .map_err(tasker_server::ApiError::from)?
    } else {
        Vec::new()
    };
    let attempts = history
        .iter()
        .map(|t| {
            let m = masker.mask(&t.metadata);
            let text = |p: &str| {
                m.pointer(p)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .unwrap_or_default()
            };
            let error = match m.get("error") {
                Some(_) => {
                    let code = text("/error/code");
                    format!(
                        "{}{}: {}",
                        text("/error/kind"),
                        if code.is_empty() {
                            String::new()
                        } else {
                            format!(" {code}")
                        },
                        text("/error/message")
                    )
                }
                None => String::new(),
            };
            AttemptLine {
                when: format::time(t.created_at),
                from: t.from_state.clone().unwrap_or_else(|| "—".into()),
                to: t.to_state.clone(),
                attempt: text("/attempt"),
                worker: text("/worker"),
                error,
            }
        })
        .collect();
    let mut facts = vec![
        ("Id", step.id.to_string()),
        ("Handler", step.handler.kind.clone()),
        (
            "Attempts",
            format!("{}/{}", step.attempts, step.max_attempts),
        ),
        ("Retryable", step.retryable.to_string()),
        ("Dependent system", step.dependent_system.clone()),
        ("Parents", parent_names(&step.parents)),
    ];
    if let Some(d) = &step.description {
        facts.push(("Description", d.clone()));
    }
    if let Some(ms) = format::step_duration_ms(&step, now) {
        facts.push(("Duration", format::duration(ms)));
    }
    if let Some(t) = step.last_attempted_at {
        facts.push(("Last attempt started", format::time(t)));
    }
    if let Some(t) = step.completed_at {
        facts.push(("Finished", format::time(t)));
    }
    if let Some(t) = step.ready_at {
        facts.push(("Ready at", format::time(t)));
    }
    if step.status == StepState::InProgress {
        if let Some(o) = &step.lease_owner {
            facts.push(("Lease owner", o.clone()));
        }
        if let Some(t) = step.lease_expires_at {
            facts.push(("Lease expires", format::time(t)));
        }
    }
    // One read of the task's steps (not one per parent); a set, so a join
    // of a thousand parents costs a thousand lookups, not a million.
    let wanted: std::collections::HashSet<&str> = step.parents.iter().map(String::as_str).collect();
    let parents: Vec<(String, String)> = steps
        .iter()
        .filter(|s| wanted.contains(s.name.as_str()))
        .take(MAX_PARENTS)
        .map(|s| {
            (
                s.name.clone(),
                s.results.as_ref().map_or_else(
                    || "(no results yet)".into(),
                    |r| format::masked_json(masker, r),
                ),
            )
        })
        .collect();
    let mut chrome = Chrome::new(
        &viewer,
        format!("{} · {}.{}", step.name, task.namespace, task.name),
        "tasks",
    );
    if viewer.may(&st, "GET", "/tasker/events/stream", Some(ns)) {
        chrome.live = super::list::live_url(after, Some((task.id, ns)), None);
    }
    let finished = matches!(
        task.status,
        TaskState::Complete | TaskState::Cancelled | TaskState::ResolvedManually
    );
    let open = matches!(step.status, StepState::Pending | StepState::Error);
    let page = StepPage {
        here,
        task_id: task.id.to_string(),
        task_title: format!("{}.{}", task.namespace, task.name),
        id: step.id.to_string(),
        name: step.name.clone(),
        status: step.status.as_str(),
        facts,
        inputs: format::masked_json(masker, &step.inputs),
        results: step
            .results
            .as_ref()
            .map(|r| format::masked_json(masker, r)),
        parents_hidden: step.parents.len().saturating_sub(parents.len()),
        parents,
        last_error: step.last_error.as_ref().map(|e| {
            format!(
                "{}{} (attempt {}): {}",
                e.kind,
                e.code.as_ref().map(|c| format!(" {c}")).unwrap_or_default(),
                e.attempt,
                e.message
            )
        }),
        attempts,
        csrf: viewer.csrf.clone(),
        can_retry: step.status == StepState::Error
            && viewer.may(
                &st,
                "POST",
                "/tasker/tasks/{task_id}/steps/{step_id}/retry",
                Some(ns),
            ),
        can_cancel: open
            && !finished
            && viewer.may(
                &st,
                "DELETE",
                "/tasker/tasks/{task_id}/steps/{step_id}",
                Some(ns),
            ),
        can_resolve: open
            && !finished
            && viewer.may(
                &st,
                "POST",
                "/tasker/tasks/{task_id}/steps/{step_id}/resolve",
                Some(ns),
            ),
        chrome,
    };
    Ok(respond(&viewer, &headers, &page))
}

/// The parents' names, the first [`MAX_PARENTS`] of a long list and the count.
fn parent_names(parents: &[String]) -> String {
    if parents.len() <= MAX_PARENTS {
        return parents.join(", ");
    }
    format!(
        "{}, … ({} in all)",
        parents[..MAX_PARENTS].join(", "),
        parents.len()
    )
}
