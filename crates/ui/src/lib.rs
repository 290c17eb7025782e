//! # tasker-ui
//!
//! Tasker's web dashboard, served by `tasker serve` at `/tasker/ui/`:
//! server-rendered pages (askama templates, compiled into the binary) with
//! htmx (vendored, no CDN) for buttons and live updates. Every page and
//! button is a thin layer over the application service the REST API uses
//! ([`tasker_engine::Tasker`] and [`tasker_engine::requests`]), so a button
//! refuses with the same error code and status as the API.
//!
//! ```no_run
//! # async fn demo(state: tasker_server::AppState) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! tasker_server::serve_with(listener, state, tasker_ui::routes(), async {}).await
//! # }
//! ```
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`session`] | who is looking: the login cookie, the CSRF token, the permission check (the API's table) |
//! | [`pages`] | one file per page: task list, task, step, handlers, system, login, errors |
//! | [`actions`] | the buttons: cancel/retry a task, retry/cancel/resolve a step |
//! | [`live`] | Server-Sent Events telling open pages that something changed |
//! | [`svg`] | the DAG picture: layout by levels, wrapping and collapsing |
//! | [`format`] | durations, times, masked JSON |
//! | [`assets`] | the CSS, htmx and the small live-update script |
//!
//! ## Routes (all under `/tasker/ui`)
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/`, `` (redirect) | tasks: filters, counts per status, paging |
//! | GET | `/tasks/{task_id}` | a task: DAG, summary, steps, transitions, context |
//! | GET | `/tasks/{task_id}/steps/{step_id}` | a step: inputs, results, parents' results, attempts |
//! | POST | `/tasks/{task_id}/cancel`, `/tasks/{task_id}/retry` | task buttons |
//! | POST | `/tasks/{task_id}/steps/{step_id}/retry`, `.../cancel`, `.../resolve` | step buttons |
//! | GET | `/handlers`, `/handlers/{namespace}/{name}` | templates and their graphs |
//! | GET | `/system` | health figures, pool, engine, queue |
//! | GET | `/live` | Server-Sent Events: "something changed" |
//! | GET, POST | `/login`; POST `/logout` | the login form (when authentication is on) |
//! | GET | `/assets/{file}` | CSS and scripts |

pub mod actions;
pub mod assets;
pub mod format;
pub mod live;
pub mod pages;
pub mod session;
pub mod svg;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use tasker_server::AppState;

/// Where the dashboard lives.
pub const BASE: &str = "/tasker/ui";

/// Every route of the dashboard, to mount with [`tasker_server::app_with`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tasker/ui",
            get(|| async { Redirect::permanent("/tasker/ui/") }),
        )
        .route("/tasker/ui/", get(pages::list::page))
        .route("/tasker/ui/flow", get(pages::flow::page))
        .route("/tasker/ui/tasks/{task_id}", get(pages::task::page))
        .route(
            "/tasker/ui/tasks/{task_id}/steps/{step_id}",
            get(pages::step::page),
        )
        .route(
            "/tasker/ui/tasks/{task_id}/cancel",
            post(actions::task_cancel),
        )
        .route(
            "/tasker/ui/tasks/{task_id}/retry",
            post(actions::task_retry),
        )
        .route(
            "/tasker/ui/tasks/{task_id}/steps/{step_id}/retry",
            post(actions::step_retry),
        )
        .route(
            "/tasker/ui/tasks/{task_id}/steps/{step_id}/cancel",
            post(actions::step_cancel),
        )
        .route(
            "/tasker/ui/tasks/{task_id}/steps/{step_id}/resolve",
            post(actions::step_resolve),
        )
        .route("/tasker/ui/handlers", get(pages::handlers::index))
        .route(
            "/tasker/ui/handlers/{namespace}/{name}",
            get(pages::handlers::show),
        )
        .route("/tasker/ui/system", get(pages::system::page))
        .route("/tasker/ui/live", get(live::stream))
        .route(
            "/tasker/ui/login",
            get(pages::login::form).post(pages::login::submit),
        )
        .route("/tasker/ui/logout", post(pages::login::logout))
        .route("/tasker/ui/assets/{file}", get(assets::serve))
        .route("/tasker/ui/{*rest}", get(pages::error::unknown_page))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers on every dashboard answer: scripts and styles only from this
/// server (an injected inline script would not run even if escaping
/// failed), no framing (clickjacking), no referrer leaking task ids.
async fn security_headers(mut res: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    let h = res.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(axum::http::header::CACHE_CONTROL) {
        h.insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    res
}
