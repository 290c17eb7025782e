//! The buttons. Each checks the CSRF token, then the permission of the API
//! route it mirrors (same table, same namespace scoping), then calls the
//! same service method as that route, so it refuses with the API's status
//! and error code. Pressed through htmx, the answer is a message for the
//! page's `#flash` region (and `HX-Trigger: tasker:changed`, so the page
//! refreshes at once); without JavaScript, a redirect back to the page or
//! an error page.

use crate::pages::task::{load, parse_id};
use crate::session::{CSRF_FIELD, Refusal, Viewer};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use tasker_server::{ApiError, AppState};

/// The message shown after a button.
#[derive(Template)]
#[template(path = "flash.html")]
pub struct Flash {
    /// `ok` or `error`.
    pub kind: &'static str,
    /// HTTP status.
    pub status: u16,
    /// The API's error code (`ok` on success).
    pub code: &'static str,
    /// What happened.
    pub message: String,
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// The fields a button's form sends (`application/x-www-form-urlencoded`).
#[derive(Debug, Default)]
struct Form {
    csrf: Option<String>,
    results: Option<String>,
}

fn form(body: &[u8]) -> Form {
    let mut f = Form::default();
    for (k, v) in form_pairs(body) {
        match k.as_str() {
            CSRF_FIELD => f.csrf = Some(v),
            "results" => f.results = Some(v),
            _ => {}
        }
    }
    f
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

/// The answer to a refused button.
fn refused(headers: &HeaderMap, r: Refusal) -> Response {
    match (r, is_htmx(headers)) {
        (Refusal::Error(e), true) => flash_error(&e),
        (Refusal::Login { .. }, true) => flash_error(&tasker_server::auth::unauthenticated(
            "your login has expired; reload the page to log in again",
        )),
        (r, false) => r.into_response(),
    }
}

fn flash_error(e: &ApiError) -> Response {
    let f = Flash {
        kind: "error",
        status: e.kind().status().as_u16(),
        code: e.code(),
        message: e.message().to_string(),
    };
    let body = f.render().unwrap_or_default();
    (e.kind().status(), Html(body)).into_response()
}

/// The answer to a button that worked.
fn done(headers: &HeaderMap, message: String, back: &str) -> Response {
    if is_htmx(headers) {
        let f = Flash {
            kind: "ok",
            status: 200,
            code: "ok",
            message,
        };
        let mut res = Html(f.render().unwrap_or_default()).into_response();
        res.headers_mut()
            .insert("hx-trigger", HeaderValue::from_static("tasker:changed"));
        res
    } else {
        (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, back.to_string())],
        )
            .into_response()
    }
}

/// Who presses, with a valid CSRF token.
async fn presser(
    st: &AppState,
    headers: &HeaderMap,
    back: &str,
    body: &[u8],
) -> Result<(Viewer, Form), Refusal> {
    let viewer = Viewer::from_request(st, headers, back).await?;
    let f = form(body);
    viewer.check_csrf(f.csrf.as_deref())?;
    Ok((viewer, f))
}

/// Which button (a step's carries the step id from its path).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    TaskCancel,
    TaskRetry,
    StepRetry(String),
    StepCancel(String),
    StepResolve(String),
}

impl Action {
    /// The API route this button mirrors (its permission).
    fn route(&self) -> (&'static str, &'static str) {
        match self {
            Action::TaskCancel => ("DELETE", "/tasker/tasks/{task_id}"),
            Action::TaskRetry => ("POST", "/tasker/tasks/{task_id}/retry"),
            Action::StepRetry(_) => ("POST", "/tasker/tasks/{task_id}/steps/{step_id}/retry"),
            Action::StepCancel(_) => ("DELETE", "/tasker/tasks/{task_id}/steps/{step_id}"),
            Action::StepResolve(_) => ("POST", "/tasker/tasks/{task_id}/steps/{step_id}/resolve"),
        }
    }

    /// The step id of a step's button.
    fn step(&self) -> Option<&str> {
        match self {
            Action::TaskCancel | Action::TaskRetry => None,
            Action::StepRetry(s) | Action::StepCancel(s) | Action::StepResolve(s) => Some(s),
        }
    }
}

/// Every button: the CSRF token, the route's permission (the task's
/// namespace), the step when it is a step's button, the service call, and
/// the answer ([`done`] or [`refused`]).
async fn press(
    st: AppState,
    headers: HeaderMap,
    task_id: String,
    body: Bytes,
    action: Action,
) -> Response {
    let back = match action.step() {
        Some(s) => format!("{}/tasks/{task_id}/steps/{s}", crate::BASE),
        None => format!("{}/tasks/{task_id}", crate::BASE),
    };
    let run = async {
        let (viewer, f) = presser(&st, &headers, &back, &body).await?;
        let t = load(&st, &viewer, &task_id, &[action.route()]).await?;
        let tasker = st.tasker();
        let by = viewer.actor(&st);
        let by = by.as_deref();
        let step = match action.step() {
            Some(s) => Some(tasker.step_in_task(t.task.id, parse_id("step", s)?).await?),
            None => None,
        };
        let step_id = step.as_ref().map(|s| s.id).unwrap_or_default();
        let (what, verb, row_status) = match &action {
            Action::TaskCancel => {
                let row = tasker.cancel_task(t.task.id, by).await?;
                ("Task".to_string(), "cancelled", row.status.to_string())
            }
            Action::TaskRetry => {
                let row = tasker.retry_task(t.task.id, by).await?;
                ("Task".to_string(), "retried", row.status.to_string())
            }
            Action::StepRetry(_) => {
                let row = tasker.retry_step(step_id, by).await?;
                (
                    format!("Step {}", row.name),
                    "retried",
                    row.status.to_string(),
                )
            }
            Action::StepCancel(_) => {
                let row = tasker.cancel_step(step_id, by).await?;
                (
                    format!("Step {}", row.name),
                    "cancelled",
                    row.status.to_string(),
                )
            }
            Action::StepResolve(_) => {
                let results = parse_results(f.results.as_deref())?;
                let row = tasker.resolve_step(step_id, results, by).await?;
                (
                    format!("Step {}", row.name),
                    "resolved",
                    row.status.to_string(),
                )
            }
        };
        Ok::<_, Refusal>(format!("{what} {verb} (now {row_status})."))
    };
    match run.await {
        Ok(m) => done(&headers, m, &back),
        Err(r) => refused(&headers, r),
    }
}

/// `POST /tasker/ui/tasks/{task_id}/cancel`: as `DELETE /tasker/tasks/{task_id}`.
pub async fn task_cancel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    body: Bytes,
) -> Response {
    press(st, headers, task_id, body, Action::TaskCancel).await
}

/// `POST /tasker/ui/tasks/{task_id}/retry`: as `POST /tasker/tasks/{task_id}/retry`.
pub async fn task_retry(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    body: Bytes,
) -> Response {
    press(st, headers, task_id, body, Action::TaskRetry).await
}

/// `POST /tasker/ui/tasks/{task_id}/steps/{step_id}/retry`.
pub async fn step_retry(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((task_id, step_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    press(st, headers, task_id, body, Action::StepRetry(step_id)).await
}

/// `POST /tasker/ui/tasks/{task_id}/steps/{step_id}/cancel`.
pub async fn step_cancel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((task_id, step_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    press(st, headers, task_id, body, Action::StepCancel(step_id)).await
}

/// `POST /tasker/ui/tasks/{task_id}/steps/{step_id}/resolve`.
pub async fn step_resolve(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((task_id, step_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    press(st, headers, task_id, body, Action::StepResolve(step_id)).await
}

/// The results editor's text: JSON (empty means `{}`, the API's default);
/// anything else is the API's `malformed_json`, naming `results`.
fn parse_results(text: Option<&str>) -> Result<Value, Refusal> {
    match text.map(str::trim) {
        None | Some("") => Ok(Value::Object(Default::default())),
        Some(t) => serde_json::from_str(t).map_err(|e| {
            Refusal::Error(
                ApiError::bad_request(
                    "malformed_json",
                    format!("the results are not valid JSON: {e}"),
                )
                .field("results"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_results_parse() {
        let f = form(b"_csrf=abc&results=%7B%22a%22%3A1%7D&x=1");
        assert_eq!(f.csrf.as_deref(), Some("abc"));
        assert_eq!(parse_results(f.results.as_deref()).unwrap()["a"], 1);
        assert_eq!(parse_results(Some(" ")).unwrap(), serde_json::json!({}));
        match parse_results(Some("{nope")) {
            Err(Refusal::Error(e)) => assert_eq!(e.code(), "malformed_json"),
            other => panic!("{other:?}"),
        }
    }
}
