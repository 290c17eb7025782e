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
    /// This permission (`resource:action`).
    Permission(&'static str),
}

/// One row: method, path template (as registered with the router), access.
pub type Row = (&'static str, &'static str, Access);

use Access::{Docs, Permission as P, Public, Status};

/// Every route and its access.
pub const ROUTES: &[Row] = &[
    ("POST", "/tasker/tasks", P("tasker.task:create")),
    ("GET", "/tasker/tasks", P("tasker.task:index")),
    ("GET", "/tasker/tasks/{task_id}", P("tasker.task:show")),
    ("PATCH", "/tasker/tasks/{task_id}", P("tasker.task:update")),
    ("DELETE", "/tasker/tasks/{task_id}", P("tasker.task:cancel")),
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
];

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
