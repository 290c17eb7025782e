//! The dashboard's static files, compiled into the binary: one stylesheet,
//! htmx 2 (vendored from the npm package `htmx.org`, 0BSD licence, see
//! `assets/htmx.LICENSE`), and the small live-update script. Nothing is
//! fetched from the internet, at build time or at run time.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The vendored htmx release.
pub const HTMX_VERSION: &str = "2.0.11";

const CSS: &str = include_str!("../assets/ui.css");
const HTMX: &str = include_str!("../assets/htmx.min.js");
const JS: &str = include_str!("../assets/ui.js");

/// `GET /tasker/ui/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "ui.css" => (CSS, "text/css; charset=utf-8"),
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "ui.js" => (JS, "text/javascript; charset=utf-8"),
        _ => {
            return crate::pages::error::page(&tasker_server::ApiError::not_found(
                "not_found",
                format!("no dashboard asset `{file}`"),
            ));
        }
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            // Versioned by the binary: a short cache is enough.
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}
