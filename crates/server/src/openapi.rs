//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes and the views' `ToSchema` derives, then completed (see
//! `complete`) with what attributes cannot say: the statuses the middleware
//! adds to every operation, constraints on array items, an optional body.
//!
//! The tests validate every response the route tests receive, and every
//! example, against this document (`tests/common/openapi.rs`), so it cannot
//! drift from the server.
//!
//! Every route of [`crate::route_table`] must appear in `paths(...)` below;
//! the `openapi_covers_every_route` test fails otherwise.

use crate::routes::{
    analytics, docs, events, handlers, health, metrics, pause, steps, tasks, workers,
};
use crate::state::ServerConfig;
use serde_json::{Value, json};
use std::sync::LazyLock;
use utoipa::OpenApi;

/// The document's generator.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tasker REST API",
        description = "Workflow orchestration: create tasks from templates, follow their steps, \
                       inspect dependency graphs, retry or resolve failures. Every error has the \
                       shape `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        license(name = "MIT")
    ),
    paths(
        tasks::tasks_create,
        tasks::tasks_index,
        tasks::tasks_show,
        tasks::tasks_update,
        tasks::tasks_cancel,
        tasks::tasks_retry,
        pause::tasks_pause,
        pause::tasks_resume,
        crate::routes::restart::tasks_restart,
        crate::routes::flow::pauses_index,
        crate::routes::flow::pauses_create,
        crate::routes::flow::pauses_delete_namespace,
        crate::routes::flow::pauses_delete_template,
        crate::routes::schedules::schedules_create,
        crate::routes::schedules::schedules_index,
        crate::routes::schedules::schedules_show,
        crate::routes::schedules::schedules_delete,
        crate::routes::schedules::schedules_pause,
        crate::routes::schedules::schedules_resume,
        crate::routes::schedules::schedules_trigger,
        crate::routes::annotations::annotations_create,
        steps::steps_index,
        steps::steps_show,
        steps::steps_update,
        steps::steps_cancel,
        steps::steps_resolve,
        steps::steps_retry,
        workers::workers_claim,
        workers::steps_heartbeat,
        workers::steps_complete,
        workers::steps_fail,
        events::steps_events,
        events::events_index,
        events::events_stream,
        events::task_events,
        events::task_transitions,
        crate::routes::webhooks::webhooks_create,
        crate::routes::webhooks::webhooks_index,
        crate::routes::webhooks::webhooks_show,
        crate::routes::webhooks::webhooks_destroy,
        crate::routes::webhooks::webhooks_deliveries,
        crate::routes::webhooks::webhooks_redeliver,
        handlers::handlers_index,
        handlers::handlers_namespace,
        handlers::handlers_show,
        health::health_live,
        health::health_ready,
        health::health_status,
        metrics::metrics_index,
        analytics::analytics_performance,
        analytics::analytics_bottlenecks,
        docs::openapi_json,
        docs::docs_redirect,
        docs::docs_index,
        docs::docs_asset,
        crate::graphql::http::graphql_post,
        crate::graphql::http::graphql_ws,
        crate::graphql::graphiql::graphiql_page,
        crate::graphql::graphiql::graphiql_asset,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::error::ErrorDetails,
        crate::json::JsonObject,
        crate::json::JsonValue,
        crate::views::State,
        tasker_core::analysis::DependencyGraphWeights,
    )),
    tags(
        (name = "tasks", description = "Tasks: runs of a template."),
        (name = "steps", description = "The steps of a task."),
        (name = "flow", description = "Pause or resume a whole namespace or template: the incident switch (docs/FLOW_CONTROL.md)."),
        (name = "schedules", description = "Schedules: a template run on a cron expression or an interval, one task per tick across processes (docs/FLOW_CONTROL.md)."),
        (name = "workers", description = "External workers in any language: claim steps (long polling), renew leases, report results."),
        (name = "events", description = "Lifecycle events (recorded with every state change; cursor, long polling, Server-Sent Events) and the transition history."),
        (name = "webhooks", description = "Webhook subscribers: events POSTed to your URL, signed, retried, dead-lettered (docs/EVENTS.md)."),
        (name = "handlers", description = "Discovery of registered task templates and their dependency graphs."),
        (name = "health", description = "Liveness, readiness and status (never cached)."),
        (name = "observability", description = "Prometheus metrics and analytics over recent history (docs/OBSERVABILITY.md)."),
        (name = "docs", description = "This document and Swagger UI."),
    )
)]
pub struct ApiDoc;

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    complete(&mut doc);
    doc
});

/// The document for the default settings (built once).
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// The document as this server serves it: the default one, with the limits
/// that depend on the settings (the largest page) filled in from `config`.
pub fn document_for(config: &ServerConfig) -> Value {
    let mut doc = DOCUMENT.clone();
    if let Some(params) = doc
        .pointer_mut("/paths/~1tasker~1tasks/get/parameters")
        .and_then(Value::as_array_mut)
    {
        for p in params.iter_mut().filter(|p| p["name"] == "limit") {
            p["schema"]["maximum"] = json!(config.max_page_size);
        }
    }
    doc
}

/// The security schemes: a bearer JWT or API key in `Authorization`, or an
/// API key in `X-API-Key`.
fn security_schemes() -> Value {
    json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A JWT, or an API key (`tk_...`) made by `tasker keys create`. Only when the server's `auth.mode` is not `none`."
        },
        "api_key": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key (`tk_...`) made by `tasker keys create`."
        }
    })
}

/// An operation's security, its permission in the description, and its 401/403.
fn describe_access(
    op: &mut serde_json::Map<String, Value>,
    access: Option<tasker_auth::table::Access>,
    with: &dyn Fn(&str) -> Value,
) {
    use tasker_auth::table::Access;
    let (note, security) = match access {
        Some(Access::Public) | None => {
            op.insert("security".into(), json!([]));
            return;
        }
        Some(Access::Permission(p)) => (
            format!("Permission: `{p}` (when authentication is on)."),
            json!([{"bearer": []}, {"api_key": []}]),
        ),
        Some(Access::Status) => (
            "Permission: `tasker.health_status:index` when authentication is on, unless `health.status_requires_auth = false`.".to_string(),
            json!([{}, {"bearer": []}, {"api_key": []}]),
        ),
        Some(Access::Authenticated) => (
            "Any authenticated caller (when authentication is on); each GraphQL operation then needs its own permission (docs/GRAPHQL.md).".to_string(),
            json!([{"bearer": []}, {"api_key": []}]),
        ),
        Some(Access::Docs) => (
            "Open unless `auth.docs_require_auth = true` (then any authenticated caller).".to_string(),
            json!([{}, {"bearer": []}, {"api_key": []}]),
        ),
    };
    let description = op
        .get("description")
        .and_then(Value::as_str)
        .map(|d| format!("{d}\n\n{note}"))
        .unwrap_or(note);
    op.insert("description".into(), json!(description));
    op.insert("security".into(), security);
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        responses.entry("401").or_insert_with(|| {
            let mut r = with("Credentials missing or invalid (`unauthenticated`); `WWW-Authenticate: Bearer`.");
            r["headers"] = json!({"www-authenticate": {"schema": {"type": "string"}, "description": "`Bearer realm=\"tasker\"`"}});
            r
        });
        responses.entry("403").or_insert_with(|| {
            with("The caller lacks the permission (`forbidden`; `details.permission`, and `details.namespace` for a namespace-scoped one).")
        });
    }
}

/// What the attributes cannot say, added to the generated document.
fn complete(doc: &mut Value) {
    // Statuses every operation can answer, from the middleware rather than
    // the handler: 500 (a bug, or a panic), 503 (database unavailable, or
    // the request timeout), 405 (the path answers other methods only).
    let error = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}});
    let with = |description: &str| {
        let mut r = error.clone();
        r["description"] = json!(description);
        r
    };
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let access = tasker_auth::table::access(&method.to_ascii_uppercase(), path);
                describe_access(op, access, &with);
                let has_body = op.contains_key("requestBody");
                let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                    continue;
                };
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| with(description));
                };
                add(
                    "500",
                    "Internal error (`internal_error`): a bug, never caused by input; the cause is logged with the request id.",
                );
                add(
                    "503",
                    "The database is unavailable (`unavailable`) or the request took longer than the server's request timeout (`timeout`); try again later.",
                );
                add(
                    "405",
                    "Only when this path is sent another method (`method_not_allowed`; `Allow` lists the methods).",
                );
                if has_body {
                    add(
                        "400",
                        "Malformed body (`malformed_json`, `invalid_body`, `invalid_field`; `details.field` names the field).",
                    );
                    add("413", "Body larger than the limit (`payload_too_large`).");
                    add("415", "Body is not JSON (`unsupported_media_type`).");
                }
            }
        }
    }
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("securitySchemes".into(), security_schemes());
    }
    // The resolve body is optional: no body means `{"results": {}}`.
    if let Some(body) = doc.pointer_mut(
        "/paths/~1tasker~1tasks~1{task_id}~1steps~1{step_id}~1resolve/post/requestBody",
    ) {
        body["required"] = json!(false);
    }
    // Constraints on array items, which the attributes cannot express.
    let tag = json!({"type": "string", "minLength": 1, "maxLength": 128});
    for pointer in [
        "/components/schemas/CreateTask/properties/tags/items",
        "/components/schemas/UpdateTask/properties/tags/items",
    ] {
        if let Some(items) = doc.pointer_mut(pointer) {
            *items = tag.clone();
        }
    }
    if let Some(items) =
        doc.pointer_mut("/components/schemas/ClaimRequest/properties/handler_kinds/items")
    {
        *items = json!({"type": "string", "minLength": 1, "pattern": "\\S"});
    }
    // Any JSON value: no type at all.
    if let Some(any) = doc.pointer_mut("/components/schemas/JsonValue") {
        *any = json!({"description": "Any JSON value: object, array, string, number, boolean or null."});
    }
}
