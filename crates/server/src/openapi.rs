//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes and the views' `ToSchema` derives.
//!
//! Every route of [`crate::route_table`] must appear in `paths(...)` below;
//! the `openapi_covers_every_route` test fails otherwise.

use crate::routes::{docs, handlers, health, steps, tasks, workers};
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
        handlers::handlers_index,
        handlers::handlers_namespace,
        handlers::handlers_show,
        health::health_live,
        health::health_ready,
        health::health_status,
        docs::openapi_json,
        docs::docs_redirect,
        docs::docs_index,
        docs::docs_asset,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::views::State,
        tasker_core::analysis::DependencyGraphWeights,
    )),
    tags(
        (name = "tasks", description = "Tasks: runs of a template."),
        (name = "steps", description = "The steps of a task."),
        (name = "workers", description = "External workers in any language: claim steps (long polling), renew leases, report results."),
        (name = "handlers", description = "Discovery of registered task templates and their dependency graphs."),
        (name = "health", description = "Liveness, readiness and status (never cached)."),
        (name = "docs", description = "This document and Swagger UI."),
    )
)]
pub struct ApiDoc;

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// The document (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    &DOCUMENT
}
