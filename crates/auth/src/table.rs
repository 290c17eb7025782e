//! The one table mapping every route of the REST API to what it requires.
//!
//! The server looks each request's matched route up here; a route missing
//! from the table is refused (403), and the server's `auth_table` test walks
//! its router and fails when a route has no row, so the table cannot fall
//! behind the routes. docs/SECURITY.md's table is checked against this one.

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Never authenticated (liveness and readiness probes).
    Public,
    /// `tasker.health_status:index`, unless `health.status_requires_auth = false`.
    Status,
    /// The API description: public unless `auth.docs_require_auth = true`
    /// (then any authenticated caller).
    Docs,
    /// Any authenticated caller; what it may do is then decided per
    /// operation and field ([`GRAPHQL`]), as on the GraphQL endpoint.
    Authenticated,
    /// This permission (`resource:action`).
    Permission(&'static str),
}

/// One row: method, path template (as registered with the router), access.
pub type Row = (&'static str, &'static str, Access);

use Access::{Authenticated, Docs, Permission as P, Public, Status};

/// Every route and its access.
pub const ROUTES: &[Row] = &[
    ("POST", "/tasker/tasks", P("tasker.task:create")),
    ("GET", "/tasker/tasks", P("tasker.task:index")),
    ("GET", "/tasker/tasks/{task_id}", P("tasker.task:show")),
    ("PATCH", "/tasker/tasks/{task_id}", P("tasker.task:update")),
    ("DELETE", "/tasker/tasks/{task_id}", P("tasker.task:cancel")),
    (
        "POST",
        "/tasker/tasks/{task_id}/annotations",
        P("tasker.task:update"),
    ),
    (
        "POST",
        "/tasker/tasks/{task_id}/retry",
        P("tasker.task:retry"),
    ),
    (
        "POST",
        "/tasker/tasks/{task_id}/pause",
        P("tasker.task:pause"),
    ),
    (
        "POST",
        "/tasker/tasks/{task_id}/resume",
        P("tasker.task:resume"),
    ),
    (
        "POST",
        "/tasker/tasks/{task_id}/restart",
        P("tasker.task:restart"),
    ),
    ("GET", "/tasker/flow/pauses", P("tasker.flow:index")),
    ("POST", "/tasker/flow/pauses", P("tasker.flow:pause")),
    (
        "DELETE",
        "/tasker/flow/pauses/{namespace}",
        P("tasker.flow:resume"),
    ),
    (
        "DELETE",
        "/tasker/flow/pauses/{namespace}/{name}",
        P("tasker.flow:resume"),
    ),
    ("POST", "/tasker/schedules", P("tasker.schedule:create")),
    ("GET", "/tasker/schedules", P("tasker.schedule:index")),
    ("GET", "/tasker/schedules/{name}", P("tasker.schedule:show")),
    (
        "DELETE",
        "/tasker/schedules/{name}",
        P("tasker.schedule:destroy"),
    ),
    (
        "POST",
        "/tasker/schedules/{name}/pause",
        P("tasker.schedule:pause"),
    ),
    (
        "POST",
        "/tasker/schedules/{name}/resume",
        P("tasker.schedule:resume"),
    ),
    (
        "POST",
        "/tasker/schedules/{name}/trigger",
        P("tasker.schedule:trigger"),
    ),
    (
        "GET",
        "/tasker/tasks/{task_id}/steps",
        P("tasker.workflow_step:index"),
    ),
    (
        "GET",
        "/tasker/tasks/{task_id}/steps/{step_id}",
        P("tasker.workflow_step:show"),
    ),
    (
        "PATCH",
        "/tasker/tasks/{task_id}/steps/{step_id}",
        P("tasker.workflow_step:update"),
    ),
    (
        "DELETE",
        "/tasker/tasks/{task_id}/steps/{step_id}",
        P("tasker.workflow_step:cancel"),
    ),
    (
        "POST",
        "/tasker/tasks/{task_id}/steps/{step_id}/resolve",
        P("tasker.workflow_step:resolve"),
    ),
    (
        "POST",
        "/tasker/tasks/{task_id}/steps/{step_id}/retry",
        P("tasker.workflow_step:retry"),
    ),
    ("POST", "/tasker/workers/claim", P("tasker.worker:claim")),
    (
        "POST",
        "/tasker/steps/{step_id}/heartbeat",
        P("tasker.worker:heartbeat"),
    ),
    (
        "POST",
        "/tasker/steps/{step_id}/complete",
        P("tasker.worker:complete"),
    ),
    (
        "POST",
        "/tasker/steps/{step_id}/fail",
        P("tasker.worker:fail"),
    ),
    (
        "POST",
        "/tasker/steps/{step_id}/events",
        P("tasker.worker:emit"),
    ),
    ("POST", "/tasker/webhooks", P("tasker.webhook:create")),
    ("GET", "/tasker/webhooks", P("tasker.webhook:index")),
    (
        "GET",
        "/tasker/webhooks/{webhook_id}",
        P("tasker.webhook:show"),
    ),
    (
        "DELETE",
        "/tasker/webhooks/{webhook_id}",
        P("tasker.webhook:destroy"),
    ),
    (
        "GET",
        "/tasker/webhooks/{webhook_id}/deliveries",
        P("tasker.webhook:index"),
    ),
    (
        "POST",
        "/tasker/webhooks/{webhook_id}/redeliver",
        P("tasker.webhook:redeliver"),
    ),
    ("GET", "/tasker/events", P("tasker.event:index")),
    ("GET", "/tasker/events/stream", P("tasker.event:index")),
    (
        "GET",
        "/tasker/tasks/{task_id}/events",
        P("tasker.event:index"),
    ),
    (
        "GET",
        "/tasker/tasks/{task_id}/transitions",
        P("tasker.task:show"),
    ),
    ("GET", "/tasker/handlers", P("tasker.handler:index")),
    (
        "GET",
        "/tasker/handlers/{namespace}",
        P("tasker.handler:index"),
    ),
    (
        "GET",
        "/tasker/handlers/{namespace}/{name}",
        P("tasker.handler:show"),
    ),
    ("GET", "/tasker/health/live", Public),
    ("GET", "/tasker/health/ready", Public),
    ("GET", "/tasker/health/status", Status),
    ("GET", "/tasker/metrics", P("tasker.metrics:index")),
    (
        "GET",
        "/tasker/analytics/performance",
        P("tasker.analytics:index"),
    ),
    (
        "GET",
        "/tasker/analytics/bottlenecks",
        P("tasker.analytics:index"),
    ),
    ("GET", "/tasker/openapi.json", Docs),
    ("GET", "/tasker/docs", Docs),
    ("GET", "/tasker/docs/", Docs),
    ("GET", "/tasker/docs/{file}", Docs),
    // GraphQL: the endpoint needs a caller; each operation checks [`GRAPHQL`].
    ("POST", "/tasker/graphql", Authenticated),
    ("GET", "/tasker/graphql/ws", Authenticated),
    // GraphiQL is a page like Swagger UI: it runs nothing by itself.
    ("GET", "/tasker/graphql", Docs),
    ("GET", "/tasker/graphql/assets/{file}", Docs),
];

/// The GraphQL operations and guarded fields, by `Type.field`, with the
/// permission each needs: the same permissions as the REST routes that do
/// the same thing. The server's completeness test fails when a root field of
/// the schema has no row here.
pub const GRAPHQL: &[(&str, &str)] = &[
    ("Query.task", "tasker.task:show"),
    ("Query.tasks", "tasker.task:index"),
    ("Query.step", "tasker.workflow_step:show"),
    ("Query.handlers", "tasker.handler:index"),
    ("Query.handler", "tasker.handler:show"),
    ("Query.health", "tasker.health_status:index"),
    ("Task.steps", "tasker.workflow_step:index"),
    ("Task.events", "tasker.event:index"),
    ("Mutation.createTask", "tasker.task:create"),
    ("Mutation.updateTask", "tasker.task:update"),
    ("Mutation.annotateTask", "tasker.task:update"),
    ("Mutation.cancelTask", "tasker.task:cancel"),
    ("Mutation.retryTask", "tasker.task:retry"),
    ("Mutation.pauseTask", "tasker.task:pause"),
    ("Mutation.resumeTask", "tasker.task:resume"),
    ("Mutation.restartTask", "tasker.task:restart"),
    ("Mutation.updateStep", "tasker.workflow_step:update"),
    ("Mutation.cancelStep", "tasker.workflow_step:cancel"),
    ("Mutation.retryStep", "tasker.workflow_step:retry"),
    ("Mutation.resolveStep", "tasker.workflow_step:resolve"),
    ("Query.schedules", "tasker.schedule:index"),
    ("Query.schedule", "tasker.schedule:show"),
    ("Query.flowPauses", "tasker.flow:index"),
    ("Mutation.createSchedule", "tasker.schedule:create"),
    ("Mutation.deleteSchedule", "tasker.schedule:destroy"),
    ("Mutation.pauseSchedule", "tasker.schedule:pause"),
    ("Mutation.resumeSchedule", "tasker.schedule:resume"),
    ("Mutation.triggerSchedule", "tasker.schedule:trigger"),
    ("Mutation.pauseFlow", "tasker.flow:pause"),
    ("Mutation.resumeFlow", "tasker.flow:resume"),
    ("Subscription.taskUpdated", "tasker.task:show"),
    ("Subscription.stepUpdated", "tasker.workflow_step:index"),
    ("Subscription.tasks", "tasker.task:index"),
];

/// The permission a GraphQL `Type.field` needs, if it is guarded.
pub fn graphql_permission(field: &str) -> Option<&'static str> {
    GRAPHQL.iter().find(|(f, _)| *f == field).map(|(_, p)| *p)
}

/// The access of `method` `path_template`, if the table has the route.
pub fn access(method: &str, path_template: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path_template)
        .map(|(_, _, a)| *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_in_the_table_exists() {
        for (m, p, a) in ROUTES {
            if let Access::Permission(perm) = a {
                assert!(crate::permission::is_known(perm), "{m} {p}: {perm}");
            }
        }
    }

    #[test]
    fn every_graphql_permission_exists() {
        for (f, perm) in GRAPHQL {
            assert!(crate::permission::is_known(perm), "{f}: {perm}");
        }
        assert_eq!(graphql_permission("Query.task"), Some("tasker.task:show"));
        assert_eq!(graphql_permission("Query.nope"), None);
    }

    #[test]
    fn rows_are_unique() {
        for (i, (m, p, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[i + 1..].iter().any(|(m2, p2, _)| m2 == m && p2 == p),
                "{m} {p} twice"
            );
        }
    }

    #[test]
    fn probes_are_public() {
        assert_eq!(access("GET", "/tasker/health/live"), Some(Access::Public));
        assert_eq!(access("GET", "/tasker/health/ready"), Some(Access::Public));
        assert_eq!(access("GET", "/tasker/nope"), None);
    }
}
