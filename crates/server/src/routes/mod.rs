//! The route table: one file per resource, registered here.
//!
//! Routes are added through [`Routes::add`], which records each method and
//! path as it hands them to axum. That record ([`route_table`]) is what the
//! OpenAPI completeness test compares with the generated document, since an
//! axum `Router` cannot list its own routes.

pub mod analytics;
pub mod annotations;
pub mod docs;
pub mod events;
pub mod flow;
pub mod handlers;
pub mod health;
pub mod metrics;
pub mod pause;
pub mod restart;
pub mod schedules;
pub mod steps;
pub mod tasks;
pub mod webhooks;
pub mod workers;

use crate::state::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

/// Every route lives under this prefix.
pub const PREFIX: &str = "/tasker";

/// One registered route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// HTTP method.
    pub method: Method,
    /// Path template, axum / OpenAPI style (`/tasker/tasks/{task_id}`).
    pub path: &'static str,
}

/// A router under construction, with the record of what went into it.
pub(crate) struct Routes {
    pub(crate) router: Router<AppState>,
    pub(crate) table: Vec<RouteInfo>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Registers `handler` for `method` on `path` (same path, several
    /// methods: axum merges them).
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        // Only the standard methods are used below; an unknown one would be
        // a programming error caught by the route tests.
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.router = self.router.route(path, on(filter, handler));
        self.table.push(RouteInfo { method, path });
        self
    }
}

/// Builds every route (without middleware or state).
pub(crate) fn build() -> Routes {
    use Method as M;
    Routes::new()
        // Tasks.
        .add(M::POST, "/tasker/tasks", tasks::tasks_create)
        .add(M::GET, "/tasker/tasks", tasks::tasks_index)
        .add(M::GET, "/tasker/tasks/{task_id}", tasks::tasks_show)
        .add(M::PATCH, "/tasker/tasks/{task_id}", tasks::tasks_update)
        .add(M::DELETE, "/tasker/tasks/{task_id}", tasks::tasks_cancel)
        .add(M::POST, "/tasker/tasks/{task_id}/retry", tasks::tasks_retry)
        .add(M::POST, "/tasker/tasks/{task_id}/pause", pause::tasks_pause)
        .add(
            M::POST,
            "/tasker/tasks/{task_id}/restart",
            restart::tasks_restart,
        )
        .add(
            M::POST,
            "/tasker/tasks/{task_id}/resume",
            pause::tasks_resume,
        )
        .add(
            M::POST,
            "/tasker/tasks/{task_id}/annotations",
            annotations::annotations_create,
        )
        // Namespace and template pauses.
        .add(M::GET, "/tasker/flow/pauses", flow::pauses_index)
        .add(M::POST, "/tasker/flow/pauses", flow::pauses_create)
        .add(
            M::DELETE,
            "/tasker/flow/pauses/{namespace}",
            flow::pauses_delete_namespace,
        )
        .add(
            M::DELETE,
            "/tasker/flow/pauses/{namespace}/{name}",
            flow::pauses_delete_template,
        )
        // Schedules.
        .add(M::POST, "/tasker/schedules", schedules::schedules_create)
        .add(M::GET, "/tasker/schedules", schedules::schedules_index)
        .add(
            M::GET,
            "/tasker/schedules/{name}",
            schedules::schedules_show,
        )
        .add(
            M::DELETE,
            "/tasker/schedules/{name}",
            schedules::schedules_delete,
        )
        .add(
            M::POST,
            "/tasker/schedules/{name}/pause",
            schedules::schedules_pause,
        )
        .add(
            M::POST,
            "/tasker/schedules/{name}/resume",
            schedules::schedules_resume,
        )
        .add(
            M::POST,
            "/tasker/schedules/{name}/trigger",
            schedules::schedules_trigger,
        )
        // Steps.
        .add(M::GET, "/tasker/tasks/{task_id}/steps", steps::steps_index)
        .add(
            M::GET,
            "/tasker/tasks/{task_id}/steps/{step_id}",
            steps::steps_show,
        )
        .add(
            M::PATCH,
            "/tasker/tasks/{task_id}/steps/{step_id}",
            steps::steps_update,
        )
        .add(
            M::DELETE,
            "/tasker/tasks/{task_id}/steps/{step_id}",
            steps::steps_cancel,
        )
        .add(
            M::POST,
            "/tasker/tasks/{task_id}/steps/{step_id}/resolve",
            steps::steps_resolve,
        )
        .add(
            M::POST,
            "/tasker/tasks/{task_id}/steps/{step_id}/retry",
            steps::steps_retry,
        )
        // External workers.
        .add(M::POST, "/tasker/workers/claim", workers::workers_claim)
        .add(
            M::POST,
            "/tasker/steps/{step_id}/heartbeat",
            workers::steps_heartbeat,
        )
        .add(
            M::POST,
            "/tasker/steps/{step_id}/complete",
            workers::steps_complete,
        )
        .add(M::POST, "/tasker/steps/{step_id}/fail", workers::steps_fail)
        .add(
            M::POST,
            "/tasker/steps/{step_id}/events",
            events::steps_events,
        )
        // Lifecycle events and history.
        .add(M::GET, "/tasker/events", events::events_index)
        .add(M::GET, "/tasker/events/stream", events::events_stream)
        .add(
            M::GET,
            "/tasker/tasks/{task_id}/events",
            events::task_events,
        )
        .add(
            M::GET,
            "/tasker/tasks/{task_id}/transitions",
            events::task_transitions,
        )
        // Webhook subscribers.
        .add(M::POST, "/tasker/webhooks", webhooks::webhooks_create)
        .add(M::GET, "/tasker/webhooks", webhooks::webhooks_index)
        .add(
            M::GET,
            "/tasker/webhooks/{webhook_id}",
            webhooks::webhooks_show,
        )
        .add(
            M::DELETE,
            "/tasker/webhooks/{webhook_id}",
            webhooks::webhooks_destroy,
        )
        .add(
            M::GET,
            "/tasker/webhooks/{webhook_id}/deliveries",
            webhooks::webhooks_deliveries,
        )
        .add(
            M::POST,
            "/tasker/webhooks/{webhook_id}/redeliver",
            webhooks::webhooks_redeliver,
        )
        // Handler discovery.
        .add(M::GET, "/tasker/handlers", handlers::handlers_index)
        .add(
            M::GET,
            "/tasker/handlers/{namespace}",
            handlers::handlers_namespace,
        )
        .add(
            M::GET,
            "/tasker/handlers/{namespace}/{name}",
            handlers::handlers_show,
        )
        // Health.
        .add(M::GET, "/tasker/health/live", health::health_live)
        .add(M::GET, "/tasker/health/ready", health::health_ready)
        .add(M::GET, "/tasker/health/status", health::health_status)
        // Observability.
        .add(M::GET, "/tasker/metrics", metrics::metrics_index)
        .add(
            M::GET,
            "/tasker/analytics/performance",
            analytics::analytics_performance,
        )
        .add(
            M::GET,
            "/tasker/analytics/bottlenecks",
            analytics::analytics_bottlenecks,
        )
        // The API's own description.
        .add(M::GET, "/tasker/openapi.json", docs::openapi_json)
        .add(M::GET, "/tasker/docs", docs::docs_redirect)
        .add(M::GET, "/tasker/docs/", docs::docs_index)
        .add(M::GET, "/tasker/docs/{file}", docs::docs_asset)
        // GraphQL.
        .add(
            M::POST,
            "/tasker/graphql",
            crate::graphql::http::graphql_post,
        )
        .add(
            M::GET,
            "/tasker/graphql/ws",
            crate::graphql::http::graphql_ws,
        )
        .add(
            M::GET,
            "/tasker/graphql",
            crate::graphql::graphiql::graphiql_page,
        )
        .add(
            M::GET,
            "/tasker/graphql/assets/{file}",
            crate::graphql::graphiql::graphiql_asset,
        )
}

/// Every route the server registers, in registration order.
pub fn route_table() -> Vec<RouteInfo> {
    build().table
}
