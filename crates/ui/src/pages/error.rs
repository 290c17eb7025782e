//! Error pages: every refusal shows the API's status and error code.

use super::Chrome;
use askama::Template;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use tasker_server::{ApiError, ErrorKind};

/// A page for an error.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Frame.
    pub chrome: Chrome,
    /// HTTP status.
    pub status: u16,
    /// Short heading.
    pub heading: &'static str,
    /// The API's error code.
    pub code: &'static str,
    /// The API's message (internal causes are never shown).
    pub message: String,
}

fn heading(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not found",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::Unauthorized => "not logged in",
        ErrorKind::Conflict => "conflict",
        ErrorKind::BadRequest => "bad request",
        ErrorKind::Unavailable => "unavailable",
        _ => "error",
    }
}

/// The error page of `e`, with its status. Internal errors keep their cause
/// for the log (as the API does) and show an opaque message.
pub fn page(e: &ApiError) -> Response {
    let status = e.kind().status();
    let p = ErrorPage {
        chrome: Chrome {
            title: format!("{} {}", status.as_u16(), heading(e.kind())),
            ..Chrome::default()
        },
        status: status.as_u16(),
        heading: heading(e.kind()),
        code: e.code(),
        message: e.message().to_string(),
    };
    let body = p
        .render()
        .unwrap_or_else(|_| format!("{} {}", status.as_u16(), e.code()));
    let mut res = (status, Html(body)).into_response();
    // Hand internal causes to the server's logging layer, as API errors do.
    let mut api = e.clone().into_response();
    if let Some(detail) = api
        .extensions_mut()
        .remove::<tasker_server::error::InternalDetail>()
    {
        res.extensions_mut().insert(detail);
    }
    res
}

/// Any other path under `/tasker/ui/`: a 404 page.
pub async fn unknown_page(uri: Uri) -> Response {
    page(&ApiError::not_found(
        "route_not_found",
        format!("no dashboard page at {}", uri.path()),
    ))
}

/// 404 for an id that names nothing (or is not an id at all).
pub fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::not_found("not_found", format!("no {what} with id `{id}`"))
}

/// The status of `e`.
pub fn status_of(e: &ApiError) -> StatusCode {
    e.kind().status()
}
