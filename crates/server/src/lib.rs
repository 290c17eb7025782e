//! # tasker-server
//!
//! Tasker's REST API: an axum [`Router`] over the application service
//! ([`tasker_engine::Tasker`]), so the HTTP layer holds no workflow logic of
//! its own: every operation is one call into the service (or its store).
//!
//! ```no_run
//! # async fn demo(tasker: tasker_engine::Tasker) -> std::io::Result<()> {
//! use tasker_server::{AppState, ServerConfig};
//! let state = AppState::new(tasker, ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! tasker_server::serve(listener, state, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`state`] | [`AppState`] (service, settings, probes) and [`ServerConfig`] |
//! | [`error`] | [`ApiError`]: the one error → response mapping |
//! | [`extract`] | JSON body, query and path extractors whose rejections are [`ApiError`]s |
//! | [`json`] | `JsonObject` / `JsonValue`: the named free-form JSON schemas |
//! | [`views`] | what responses contain: task and step views, lists, envelopes |
//! | [`routes`] | one file per resource: `tasks`, `steps`, `workers`, `handlers`, `health`, `metrics`, `analytics`, `docs` |
//! | [`openapi`] | the OpenAPI 3.1 document generated from the handlers |
//! | [`probe`] | the readiness check's database ping and migration state |
//! | [`auth`] | authentication and authorization of every request (the table is `tasker_auth::table`) |
//! | [`jwks`] | a JWKS URL's keys, refreshed on an unknown `kid` |
//! | [`cache`] | the in-process dependency-analysis cache and its invalidation (reusable by other interfaces) |
//! | [`graphql`] | the GraphQL API over the same service, views, permissions and error codes |
//!
//! ## Routes (all under `/tasker`)
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/tasks` | create a task |
//! | GET | `/tasks` | list tasks (filters, sort, paging, totals) |
//! | GET | `/tasks/{task_id}` | a task with its steps (`?include_dependencies=true`) |
//! | PATCH | `/tasks/{task_id}` | change reason / tags |
//! | DELETE | `/tasks/{task_id}` | cancel |
//! | POST | `/tasks/{task_id}/retry` | retry a task in `error` |
//! | POST | `/tasks/{task_id}/pause`, `/tasks/{task_id}/resume` | pause / resume a task |
//! | POST | `/tasks/{task_id}/restart` | re-run a finished or failed task from a step |
//! | GET, POST | `/flow/pauses` | list paused namespaces and templates; pause one |
//! | DELETE | `/flow/pauses/{namespace}`, `/flow/pauses/{namespace}/{name}` | resume a namespace / template |
//! | GET, POST | `/schedules` | list schedules (with next fire times); create one |
//! | GET, DELETE | `/schedules/{name}` | show, delete a schedule |
//! | POST | `/schedules/{name}/pause`, `/schedules/{name}/resume`, `/schedules/{name}/trigger` | pause, resume, fire a schedule now |
//! | POST | `/tasks/{task_id}/annotations` | attach a typed JSON note to a task |
//! | GET | `/tasks/{task_id}/steps` | its steps |
//! | GET, PATCH, DELETE | `/tasks/{task_id}/steps/{step_id}` | show, edit, cancel a step |
//! | POST | `/tasks/{task_id}/steps/{step_id}/resolve` | resolve manually |
//! | POST | `/tasks/{task_id}/steps/{step_id}/retry` | retry a failed step |
//! | POST | `/workers/claim` | external workers: claim steps (long polling) |
//! | POST | `/steps/{step_id}/heartbeat`, `/steps/{step_id}/complete`, `/steps/{step_id}/fail` | external workers: renew a lease, report the outcome |
//! | POST | `/steps/{step_id}/events` | external workers: emit a custom event |
//! | GET | `/events`, `/events/stream` | lifecycle events: the feed (cursor, long polling) and its Server-Sent Events stream |
//! | GET | `/tasks/{task_id}/events`, `/tasks/{task_id}/transitions` | a task's events, its full transition history |
//! | POST, GET | `/webhooks` | webhook subscribers: register, list |
//! | GET, DELETE | `/webhooks/{webhook_id}` | one subscriber: show, delete |
//! | GET | `/webhooks/{webhook_id}/deliveries` | its deliveries (`status=dead`: dead letters) |
//! | POST | `/webhooks/{webhook_id}/redeliver` | send dead letters (or given events) again |
//! | GET | `/handlers`, `/handlers/{namespace}`, `/handlers/{namespace}/{name}` | template discovery |
//! | GET | `/health/live`, `/health/ready`, `/health/status` | health |
//! | GET | `/metrics` | Prometheus metrics |
//! | GET | `/analytics/performance`, `/analytics/bottlenecks` | analytics over recent history |
//! | GET | `/openapi.json`, `/docs`, `/docs/`, `/docs/{file}` | the API description, Swagger UI (`/docs` redirects to `/docs/`) |
//! | POST | `/graphql` | GraphQL queries and mutations (docs/GRAPHQL.md) |
//! | GET | `/graphql/ws` | GraphQL subscriptions over WebSocket (`graphql-transport-ws`) |
//! | GET | `/graphql` | GraphiQL, served offline (vendored assets) |
//! | GET | `/graphql/assets/{file}` | GraphiQL's JavaScript and CSS |
//!
//! (`tests/route_docs.rs` checks this table against [`route_table`].)
//!
//! ## Middleware
//!
//! From the outside in: a request id (`x-request-id`, generated when absent
//! or malformed, and echoed back on every answer), the correlation id, one
//! log line per request (at [`ServerConfig::request_log`]), a tracing span per request, logging of internal errors
//! (their cause is logged with the request id; the client sees an opaque
//! message), panic capture (a panicking handler answers 500 in the usual
//! shape), the request timeout (503 `timeout`), and the body size limit
//! (413 `payload_too_large`).

pub mod auth;
pub mod cache;
pub mod correlation;
pub mod cursor;
mod delivery;
pub mod error;
pub mod extract;
pub mod graphql;
mod http_metrics;
pub mod json;
pub mod jwks;
pub mod openapi;
pub mod probe;
pub mod routes;
pub mod state;
pub mod views;

pub use error::{ApiError, ErrorKind};
pub use routes::{RouteInfo, route_table};
pub use state::{AppState, EngineState, RequestLog, ServerConfig, TelemetrySettings};
pub use tasker_store::PoolStats;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use error::InternalDetail;
use std::future::Future;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The whole application: every route under `/tasker`, with middleware, over `state`.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with `extra` routes mounted beside the API (`tasker serve` mounts
/// the dashboard, `tasker-ui`, this way). They get the same middleware
/// (request id, logging, metrics, timeout, body limit) but not the API's
/// header authentication: they authenticate themselves (the dashboard reads
/// a cookie) and check the same permission table. Their paths must not
/// collide with the API's.
pub fn app_with(state: AppState, extra: Router<AppState>) -> Router {
    let cfg = state.config().clone();
    routes::build()
        .router
        // Route layer: it sees the matched route (its row of the permission
        // table); unmatched paths go to the fallback, which reads nothing.
        .route_layer(from_fn_with_state(state.clone(), auth::authorize))
        .merge(extra)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(correlation::sanitize_request_id))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                // Right after the id is set, so every answer carries it,
                // including the correlation layer's own 400s.
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(from_fn(correlation::correlation))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let correlation_id = req
                        .extensions()
                        .get::<correlation::CorrelationId>()
                        .map(|c| c.0.as_str())
                        .unwrap_or("");
                    let span = tracing::info_span!(
                        "http",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %request_id(req),
                        correlation_id = %correlation_id,
                        identity = tracing::field::Empty,
                    );
                    // A caller's `traceparent` makes this request part of its trace.
                    tasker_engine::telemetry::parent_on_traceparent(
                        &span,
                        req.headers()
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok()),
                    );
                    span
                }))
                .layer(from_fn_with_state(cfg.request_log, log_request))
                .layer(from_fn(http_metrics::record))
                .layer(from_fn(log_internal_errors))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(from_fn_with_state(cfg.request_timeout, enforce_timeout))
                .layer(DefaultBodyLimit::max(cfg.body_limit_bytes)),
        )
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Router::new(), shutdown).await
}

/// [`serve`] with `extra` routes mounted as [`app_with`] does.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    extra: Router<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app_with(state, extra))
        .with_graceful_shutdown(shutdown)
        .await
}

fn request_id(req: &Request) -> &str {
    req.headers()
        .get("x-request-id")
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .unwrap_or("")
}

async fn route_not_found(req: Request) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        format!(
            "no route for {} {}; see /tasker/docs/",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; see /tasker/docs/",
            req.method(),
            req.uri().path()
        ),
    )
}

/// Logs one line per request, after the answer: method, route template (not
/// the raw path, so ids do not explode log cardinality), status, latency,
/// request id and correlation id. Outside the timeout and panic layers, so
/// it sees their 503s and 500s too.
async fn log_request(State(level): State<RequestLog>, req: Request, next: Next) -> Response {
    if level == RequestLog::Off {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "(no route)".to_string());
    let request_id = request_id(&req).to_string();
    let correlation_id = req
        .extensions()
        .get::<correlation::CorrelationId>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    let latency_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    match level {
        RequestLog::Info => {
            tracing::info!(%method, %route, status, latency_ms, %request_id, %correlation_id, "request")
        }
        RequestLog::Debug => {
            tracing::debug!(%method, %route, status, latency_ms, %request_id, %correlation_id, "request")
        }
        RequestLog::Off => {}
    }
    res
}

/// Writes the cause of 5xx answers to the log (with the request id) and
/// keeps it out of the response.
async fn log_internal_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let id = request_id(&req).to_string();
    let mut res = next.run(req).await;
    if let Some(InternalDetail(cause)) = res.extensions_mut().remove::<InternalDetail>() {
        let status = res.status().as_u16();
        if status == 503 {
            tracing::warn!(%method, %path, request_id = %id, status, cause = %cause, "request failed: service unavailable");
        } else {
            tracing::error!(%method, %path, request_id = %id, status, cause = %cause, "request failed: internal error");
        }
    }
    res
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string());
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}

async fn enforce_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            ErrorKind::Unavailable,
            "timeout",
            format!(
                "the request took longer than {} ms; try again later",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn body(res: Response) -> serde_json::Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn req(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    /// The same middleware as `app`, around test handlers.
    fn wrap(router: Router) -> Router {
        router.layer(
            ServiceBuilder::new()
                .layer(from_fn(log_internal_errors))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(from_fn_with_state(
                    Duration::from_millis(50),
                    enforce_timeout,
                )),
        )
    }

    #[tokio::test]
    async fn slow_requests_time_out_with_the_error_shape() {
        let app = wrap(Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        ));
        let res = app.oneshot(req("/slow")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(res).await["error"]["code"], "timeout");
    }

    #[tokio::test]
    async fn panics_and_internal_errors_are_opaque_500s() {
        let app = wrap(
            Router::new()
                .route(
                    "/panic",
                    get(|| async {
                        if true {
                            panic!("secret detail");
                        }
                        "unreachable"
                    }),
                )
                .route(
                    "/internal",
                    get(|| async { ApiError::internal("database row is corrupt") }),
                ),
        );
        for path in ["/panic", "/internal"] {
            let res = app.clone().oneshot(req(path)).await.unwrap();
            assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
            // The cause was taken out of the response by the logging layer.
            assert!(res.extensions().get::<InternalDetail>().is_none());
            let json = body(res).await;
            assert_eq!(json["error"]["code"], "internal_error");
            let text = json.to_string();
            assert!(
                !text.contains("secret") && !text.contains("corrupt"),
                "{text}"
            );
        }
    }

    #[test]
    fn config_problems_name_their_keys() {
        assert!(ServerConfig::default().problems().is_empty());
        let bad = ServerConfig {
            max_page_size: 10,
            default_page_size: 20,
            body_limit_bytes: 0,
            ..ServerConfig::default()
        };
        let p = bad.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("body_limit_bytes"));
        assert!(p[1].starts_with("default_page_size"));
    }

    #[test]
    fn the_request_timeout_must_outlast_a_long_poll() {
        let short = ServerConfig {
            request_timeout: Duration::from_secs(20),
            ready_timeout: Duration::from_secs(11),
            ..ServerConfig::default()
        };
        let p = short.problems();
        assert!(p.iter().any(|m| m.starts_with("request_timeout")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("ready_timeout")), "{p:?}");
    }
}
