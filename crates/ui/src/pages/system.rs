//! The system page: the figures of `GET /tasker/health/status` (health,
//! counts in the status window, pool, engine state; the same answer,
//! computed by the same handler) and the ready queue as `/tasker/metrics`
//! reads it.

use super::{Chrome, respond};
use crate::format;
use crate::session::{Refusal, Viewer};
use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use tasker_server::routes::metrics::QUEUE_CAP;
use tasker_server::{ApiError, AppState};

/// The page.
#[derive(Template)]
#[template(path = "system.html")]
pub struct SystemPage {
    /// Frame.
    pub chrome: Chrome,
    /// `healthy`, `unhealthy`, `error`.
    pub status: String,
    /// Whether healthy.
    pub healthy: bool,
    /// The status answer as nested lists (escaped HTML).
    pub figures: String,
    /// Claimable steps now (capped).
    pub queue: String,
    /// How long the oldest ready step has waited.
    pub oldest: String,
    /// The vendored htmx version.
    pub htmx: &'static str,
}

/// `GET /tasker/ui/system`: needs what `GET /tasker/health/status` needs.
pub async fn page(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, Refusal> {
    let path = format!("{}/system", crate::BASE);
    let viewer = Viewer::from_request(&st, &headers, &path).await?;
    viewer.permit(&st, "GET", "/tasker/health/status", None)?;
    let res = tasker_server::routes::health::health_status(State(st.clone())).await;
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::internal(format!("status body: {e}")))?;
    let status: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("status body: {e}")))?;
    let tasker = st.tasker();
    let now = tasker.now();
    let (queue, oldest) = match tasker.store().queue_depth(now, QUEUE_CAP).await {
        Ok(q) => (
            if q.ready >= u64::from(QUEUE_CAP) {
                format!("{}+", q.ready)
            } else {
                q.ready.to_string()
            },
            q.oldest_ready_at
                .map(|t| format::duration((now - t).num_milliseconds()))
                .unwrap_or_else(|| "—".into()),
        ),
        Err(e) => (
            format!("unavailable ({})", ApiError::from(e).code()),
            "—".into(),
        ),
    };
    let page = SystemPage {
        chrome: Chrome::new(&viewer, "System", "system"),
        healthy: status["healthy"].as_bool().unwrap_or(false),
        status: status["status"].as_str().unwrap_or("unknown").to_string(),
        figures: format::json_dl(&status),
        queue,
        oldest,
        htmx: crate::assets::HTMX_VERSION,
    };
    Ok(respond(&viewer, &headers, &page))
}
