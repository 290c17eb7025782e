//! Correlation ids: one id follows a request into the task it creates and
//! into every log line of every step of that task, in any process.
//!
//! Taken from `X-Correlation-ID`, else `X-Request-ID` (which the request-id
//! layer fills in when the client sent none), returned as
//! `X-Correlation-ID` on every response.
//!
//! A malformed `X-Request-ID` is a transport detail: [`sanitize_request_id`]
//! drops it so the request-id layer generates a fresh one (a probe must
//! never fail on a header). A malformed `X-Correlation-ID` is a 400
//! (`invalid_header`) because the id would be stored on the task the
//! request creates, so silently replacing it would lose the caller's
//! correlation; on the health routes it is replaced instead.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Header carrying the correlation id.
pub const HEADER: &str = "x-correlation-id";

/// The request's correlation id (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// 1–128 characters of `A-Z a-z 0-9 . _ : -`: safe in logs, headers and URLs.
pub fn valid(id: &str) -> bool {
    tasker_engine::requests::valid_correlation_id(id)
}

/// Middleware (outside the request-id layer): removes an `X-Request-ID` that
/// is not a [`valid`] id, so a fresh one is generated and echoed instead.
pub async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    let bad = req
        .headers()
        .get_all("x-request-id")
        .iter()
        .any(|v| !v.to_str().is_ok_and(valid))
        || req.headers().get_all("x-request-id").iter().count() > 1;
    if bad {
        tracing::debug!("ignoring a malformed X-Request-ID header; generating a fresh id");
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

/// The id a request carries: `Ok(None)` when it carries none, `Err` when malformed.
fn from_headers(headers: &axum::http::HeaderMap) -> Result<Option<String>, ()> {
    let value = headers.get(HEADER).or_else(|| headers.get("x-request-id"));
    match value {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if valid(s) => Ok(Some(s.to_string())),
            _ => Err(()),
        },
    }
}

/// Middleware: resolves the id, stores it in the request, echoes it on the response.
pub async fn correlation(mut req: Request, next: Next) -> Response {
    let id = match from_headers(req.headers()) {
        Ok(Some(id)) => id,
        Ok(None) => uuid::Uuid::new_v4().simple().to_string(),
        // Probes must never fail on a header.
        Err(()) if req.uri().path().starts_with("/tasker/health/") => {
            uuid::Uuid::new_v4().simple().to_string()
        }
        Err(()) => {
            return ApiError::bad_request(
                "invalid_header",
                "X-Correlation-ID / X-Request-ID: must be 1-128 characters of letters, digits, `.`, `_`, `:` or `-`",
            )
            .field("X-Correlation-ID")
            .into_response();
        }
    };
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let mut res = next.run(req).await;
    if !res.headers().contains_key(HEADER)
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        res.headers_mut().insert(HEADER, v);
    }
    res
}
