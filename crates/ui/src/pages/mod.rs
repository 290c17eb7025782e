//! The pages, one file each, and what they share: the frame around every
//! page ([`Chrome`]) and rendering a template into a response.

pub mod error;
pub mod flow;
pub mod handlers;
pub mod list;
pub mod login;
pub mod step;
pub mod system;
pub mod task;

use crate::session::Viewer;
use askama::Template;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};

/// What the frame of every page shows.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The page title.
    pub title: String,
    /// Which main navigation entry is current (`tasks`, `handlers`, `flow`, `system`).
    pub nav: &'static str,
    /// The CSRF token (for the logout form).
    pub csrf: String,
    /// The logged-in subject, when authentication is on.
    pub subject: Option<String>,
    /// The live-update stream of the page (empty: none).
    pub live: String,
}

impl Chrome {
    /// The frame for `viewer`.
    pub fn new(viewer: &Viewer, title: impl Into<String>, nav: &'static str) -> Self {
        Chrome {
            title: title.into(),
            nav,
            csrf: viewer.csrf.clone(),
            subject: viewer.subject().map(str::to_string),
            live: String::new(),
        }
    }
}

/// Renders `t` as a 200 page (a rendering failure is a 500 page).
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(s) => Html(s).into_response(),
        Err(e) => error::page(&tasker_server::ApiError::internal(format!(
            "dashboard template failed: {e}"
        ))),
    }
}

/// [`render`], adding the viewer's CSRF cookie when it is new.
pub fn respond<T: Template>(viewer: &Viewer, headers: &HeaderMap, t: &T) -> Response {
    viewer.finish(headers, render(t))
}
