//! `GET /tasker/metrics`: Prometheus text exposition (format 0.0.4).
//!
//! Counters and histograms are recorded where things happen (the engine,
//! the HTTP middleware; names in `tasker_engine::metrics`). The gauges of
//! the ready queue and the connection pool are read here, at scrape time:
//! one bounded read of the partial ready index (at most [`QUEUE_CAP`]
//! entries counted) and the pool's own counters. Should the database be
//! away, the scrape still answers with everything else (the queue gauges
//! keep their last values) rather than losing every metric with it.

use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use tasker_engine::metrics;

/// The most ready steps a scrape counts (the gauge saturates there).
pub const QUEUE_CAP: u32 = 100_000;

/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/tasker/metrics",
    tag = "observability",
    responses(
        (status = 200, description = "Every metric in the Prometheus text format 0.0.4 (names and labels: docs/OBSERVABILITY.md).", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 503, description = "Metrics are disabled (`metrics_disabled`: `telemetry.metrics_enabled = false`), or another metrics recorder owns the process (`metrics_unavailable`).", body = ErrorBody),
    )
)]
pub async fn metrics_index(State(st): State<AppState>) -> Result<Response, ApiError> {
    if !st.config().telemetry.metrics_enabled {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "metrics_disabled",
            "metrics collection is disabled (telemetry.metrics_enabled = false)",
        ));
    }
    let Some(handle) = metrics::handle() else {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "metrics_unavailable",
            "the Prometheus recorder could not be installed (another recorder owns this process)",
        ));
    };
    let tasker = st.tasker();
    match tasker.store().queue_depth(tasker.now(), QUEUE_CAP).await {
        Ok(q) => {
            let age = q
                .oldest_ready_at
                .map(|at| (tasker.now() - at).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            metrics::queue(q.ready, age);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the ready queue"),
    }
    if let Some(p) = st.pool_status() {
        metrics::db_pool(p.size, p.idle, p.max);
    }
    Ok(([(CONTENT_TYPE, PROMETHEUS_TEXT)], handle.render()).into_response())
}
