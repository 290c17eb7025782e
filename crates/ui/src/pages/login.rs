//! The login form (when authentication is on) and logging out.

use super::{Chrome, respond};
use crate::session::{AUTH_COOKIE, CSRF_FIELD, Viewer, identify, new_token, set_cookie};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tasker_server::AppState;

/// The form.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Frame.
    pub chrome: Chrome,
    /// Where to go afterwards.
    pub next: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Its code.
    pub code: &'static str,
}

/// Query of the form.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Where to go afterwards.
    #[serde(default)]
    pub next: Option<String>,
    /// The credential stopped working.
    #[serde(default)]
    pub expired: Option<String>,
}

/// Only a dashboard path (no other site, no scheme): where to go after logging in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/tasker/ui/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_string()
        }
        _ => format!("{}/", crate::BASE),
    }
}

/// A viewer for the login pages: only the CSRF token matters here.
fn anonymous(headers: &HeaderMap) -> Viewer {
    let csrf = crate::session::cookie(headers, crate::session::CSRF_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    Viewer::for_login(csrf)
}

fn form_page(
    headers: &HeaderMap,
    viewer: &Viewer,
    next: String,
    error: Option<(&'static str, String)>,
    status: StatusCode,
) -> Response {
    let (code, error) = match error {
        Some((c, m)) => (c, Some(m)),
        None => ("", None),
    };
    let page = LoginPage {
        chrome: Chrome::new(viewer, "Log in", ""),
        next,
        error,
        code,
    };
    let mut res = respond(viewer, headers, &page);
    *res.status_mut() = status;
    res
}

/// `GET /tasker/ui/login`.
pub async fn form(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if !st.authenticator().settings().enabled() {
        return (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response();
    }
    let viewer = anonymous(&headers);
    let error = q.expired.map(|_| {
        (
            "unauthenticated",
            "your login is no longer valid; log in again".to_string(),
        )
    });
    form_page(&headers, &viewer, next, error, StatusCode::OK)
}

/// `POST /tasker/ui/login`: checks the credential as the API would, then
/// keeps it in the cookie (and starts a fresh CSRF token).
pub async fn submit(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let viewer = anonymous(&headers);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let next = safe_next(field("next"));
    if let Err(r) = viewer.check_csrf(field(CSRF_FIELD)) {
        return r.into_response();
    }
    let credential = field("credential").unwrap_or("").trim().to_string();
    if credential.is_empty() {
        return form_page(
            &headers,
            &viewer,
            next,
            Some(("unauthenticated", "enter an API key or a token".into())),
            StatusCode::UNAUTHORIZED,
        );
    }
    // Only printable ASCII fits a cookie value.
    if !credential
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
    {
        return form_page(
            &headers,
            &viewer,
            next,
            Some((
                "unauthenticated",
                "that is not an API key or a token".into(),
            )),
            StatusCode::UNAUTHORIZED,
        );
    }
    match identify(&st, &credential).await {
        Ok(_) => {
            let mut res = (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response();
            if let Some(v) = set_cookie(&headers, AUTH_COOKIE, Some(&credential)) {
                res.headers_mut().append(SET_COOKIE, v);
            }
            // A new token after logging in (no fixation of a planted one).
            if let Some(v) = set_cookie(&headers, crate::session::CSRF_COOKIE, Some(&new_token())) {
                res.headers_mut().append(SET_COOKIE, v);
            }
            res
        }
        Err(e) => form_page(
            &headers,
            &viewer,
            next,
            Some((e.code(), e.message().to_string())),
            e.kind().status(),
        ),
    }
}

/// `POST /tasker/ui/logout`: forgets the credential.
pub async fn logout(headers: HeaderMap, body: Bytes) -> Response {
    let viewer = anonymous(&headers);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = pairs
        .iter()
        .find(|(n, _)| n == CSRF_FIELD)
        .map(|(_, v)| v.as_str());
    if let Err(r) = viewer.check_csrf(token) {
        return r.into_response();
    }
    let mut res = (
        StatusCode::SEE_OTHER,
        [(LOCATION, format!("{}/login", crate::BASE))],
    )
        .into_response();
    if let Some(v) = set_cookie(&headers, AUTH_COOKIE, None) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(safe_next(Some("/tasker/ui/tasks/x")), "/tasker/ui/tasks/x");
        for bad in [
            "https://evil.example/",
            "//evil.example/tasker/ui/",
            "/tasker/ui//evil",
            "/other",
        ] {
            assert_eq!(safe_next(Some(bad)), "/tasker/ui/", "{bad}");
        }
    }
}
