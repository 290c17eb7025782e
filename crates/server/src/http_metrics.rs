//! Counts every HTTP answer and its latency by method, route template and
//! status (`tasker_http_requests_total`, `tasker_http_request_duration_seconds`).
//! The route is the matched template (`/tasker/tasks/{task_id}`), never the
//! raw path, so ids cannot explode the label set; unmatched paths count
//! under `(no route)`.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The middleware.
pub(crate) async fn record(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    tasker_engine::metrics::http_request(
        method.as_str(),
        route.as_ref().map_or("(no route)", |m| m.as_str()),
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}
