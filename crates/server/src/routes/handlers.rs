//! `/tasker/handlers`: discovery of the registered task templates
//! ("task handlers" in the reference), with their dependency graphs.
//!
//! Versions are ordered by semver precedence, so `0.10.0` is newer than
//! `0.9.0` (the reference compared strings, Q14). Edges come from every
//! dependency, `depends_on_step` and `depends_on_steps` alike (the reference's
//! discovery graph ignored `depends_on_steps`).

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::json::{JsonObject, object_or_empty};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tasker_core::TaskTemplate;
use utoipa::{IntoParams, ToSchema};

/// One namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceSummary {
    /// Namespace.
    pub name: String,
    /// Distinct template names.
    pub handler_count: usize,
    /// Name × version pairs.
    pub version_count: usize,
}

/// `GET /tasker/handlers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceList {
    /// Namespaces, sorted by name.
    pub namespaces: Vec<NamespaceSummary>,
    /// Number of namespaces.
    pub total_namespaces: usize,
    /// Distinct template names over all namespaces.
    pub total_handlers: usize,
    /// When this answer was made.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub generated_at: DateTime<Utc>,
}

/// One template name with its versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlerSummary {
    /// Template name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Versions, oldest first by semver.
    pub versions: Vec<String>,
    /// The newest version by semver.
    pub latest_version: String,
    /// Number of versions.
    pub version_count: usize,
}

/// `GET /tasker/handlers/{namespace}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceHandlers {
    /// Namespace.
    pub namespace: String,
    /// Templates, sorted by name.
    pub handlers: Vec<HandlerSummary>,
    /// Number of templates.
    pub total_handlers: usize,
    /// When this answer was made.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub generated_at: DateTime<Utc>,
}

/// One step template.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepTemplateView {
    /// Step name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// External system (informational).
    pub dependent_system: String,
    /// Handler kind.
    pub handler_kind: String,
    /// Handler configuration (`{}` when the template gives none).
    #[schema(value_type = JsonObject)]
    pub handler_config: Value,
    /// Whether this process can run the kind (false for kinds left to external workers).
    pub handler_available: bool,
    /// Steps it waits for (`depends_on_step` and `depends_on_steps`).
    pub depends_on: Vec<String>,
    /// Whether failures are retried.
    pub default_retryable: bool,
    /// Total attempts allowed.
    pub default_retry_limit: u32,
    /// Stored only.
    pub skippable: bool,
    /// Per-attempt timeout.
    pub timeout_seconds: Option<f64>,
    /// Static inputs (`{}` when the template gives none).
    #[schema(value_type = JsonObject)]
    pub inputs: Value,
}

/// A node of a template's dependency graph.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateNode {
    /// Step name (the node id).
    pub id: String,
    /// Step name.
    pub name: String,
    /// Handler kind.
    pub handler_kind: String,
    /// Level: 0 for roots, else 1 + the deepest parent's level.
    pub level: usize,
    /// Steps it waits for.
    pub dependencies: Vec<String>,
    /// Number of those.
    pub dependency_count: usize,
}

/// An edge of a template's dependency graph.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateEdge {
    /// The step depended on.
    pub from: String,
    /// The dependent step.
    pub to: String,
    /// Always `dependency`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Shape figures of a template's graph.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraphSummary {
    /// Steps.
    pub total_steps: usize,
    /// Edges.
    pub total_dependencies: usize,
    /// Deepest level + 1 (steps on the longest path).
    pub max_depth: usize,
    /// Most steps sharing one level.
    pub parallel_branches: usize,
    /// Always false: templates with cycles are rejected at load time.
    pub has_cycles: bool,
}

/// A template's dependency graph.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateGraph {
    /// Steps.
    pub nodes: Vec<TemplateNode>,
    /// Dependencies.
    pub edges: Vec<TemplateEdge>,
    /// A topological order (parents first; ties in template order).
    pub execution_order: Vec<String>,
    /// Step names by level, level 0 first: each level can run in parallel.
    pub levels: Vec<Vec<String>>,
    /// Steps with no dependencies.
    pub roots: Vec<String>,
    /// Steps nothing depends on.
    pub leaves: Vec<String>,
    /// Shape figures.
    pub summary: GraphSummary,
}

/// A template in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlerDetail {
    /// Template name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// This version.
    pub version: String,
    /// `namespace.name@version`.
    pub full_name: String,
    /// Free text.
    pub description: Option<String>,
    /// Every registered version, oldest first by semver.
    pub versions: Vec<String>,
    /// The newest version.
    pub latest_version: String,
    /// JSON Schema a task's context must satisfy.
    #[schema(value_type = Option<JsonObject>)]
    pub context_schema: Option<Value>,
    /// True when this process can run every step's handler kind.
    pub available: bool,
    /// Step templates, in template order.
    pub step_templates: Vec<StepTemplateView>,
    /// The dependency graph.
    pub dependency_graph: TemplateGraph,
}

/// `GET /tasker/handlers/{namespace}/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlerEnvelope {
    /// The template.
    pub handler: HandlerDetail,
    /// When this answer was made.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub generated_at: DateTime<Utc>,
}

/// `{namespace}` in a path.
#[derive(Debug, Deserialize)]
pub struct NamespacePath {
    /// Namespace.
    pub namespace: String,
}

/// `{namespace}/{name}` in a path.
#[derive(Debug, Deserialize)]
pub struct HandlerPath {
    /// Namespace.
    pub namespace: String,
    /// Template name.
    pub name: String,
}

/// Query parameters of handler show.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HandlerQuery {
    /// A semantic version, or `latest` (the default).
    #[param(pattern = r"^(latest|\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)$")]
    pub version: Option<String>,
}

/// Lists namespaces with their template counts.
#[utoipa::path(
    get,
    path = "/tasker/handlers",
    tag = "handlers",
    responses((status = 200, description = "Namespaces, sorted by name.", body = NamespaceList))
)]
pub async fn handlers_index(State(st): State<AppState>) -> Json<NamespaceList> {
    let namespaces: Vec<NamespaceSummary> = st.tasker().with_registry(|r| {
        r.namespaces()
            .into_iter()
            .map(|n| NamespaceSummary {
                name: n.namespace,
                handler_count: n.names,
                version_count: n.versions,
            })
            .collect()
    });
    Json(NamespaceList {
        total_namespaces: namespaces.len(),
        total_handlers: namespaces.iter().map(|n| n.handler_count).sum(),
        namespaces,
        generated_at: st.tasker().now(),
    })
}

pub(crate) fn namespace_not_found(ns: &str) -> ApiError {
    ApiError::not_found(
        "namespace_not_found",
        format!("namespace `{ns}` not found: no task template is registered in it"),
    )
    .field("namespace")
    .detail("namespace", json!(ns))
}

/// Lists a namespace's templates with their versions.
#[utoipa::path(
    get,
    path = "/tasker/handlers/{namespace}",
    tag = "handlers",
    params(("namespace" = String, Path, description = "Namespace")),
    responses(
        (status = 200, description = "Templates of the namespace, versions sorted by semver.", body = NamespaceHandlers),
        (status = 404, description = "No template is registered in the namespace (`namespace_not_found`).", body = ErrorBody),
    )
)]
pub async fn handlers_namespace(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<NamespacePath>,
) -> Result<Json<NamespaceHandlers>, ApiError> {
    let names = st
        .tasker()
        .with_registry(|r| r.names(&p.namespace))
        .ok_or_else(|| namespace_not_found(&p.namespace))?;
    let handlers: Vec<HandlerSummary> = names
        .into_iter()
        .map(|(name, versions)| {
            let versions: Vec<String> = versions.iter().map(ToString::to_string).collect();
            HandlerSummary {
                name,
                namespace: p.namespace.clone(),
                latest_version: versions.last().cloned().unwrap_or_default(),
                version_count: versions.len(),
                versions,
            }
        })
        .collect();
    Ok(Json(NamespaceHandlers {
        namespace: p.namespace,
        total_handlers: handlers.len(),
        handlers,
        generated_at: st.tasker().now(),
    }))
}

/// Shows one template version: metadata, step templates and dependency graph.
#[utoipa::path(
    get,
    path = "/tasker/handlers/{namespace}/{name}",
    tag = "handlers",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "Template name"),
        HandlerQuery,
    ),
    responses(
        (status = 200, description = "The template.", body = HandlerEnvelope),
        (status = 400, description = "`version` is not a semantic version (or `latest`).", body = ErrorBody),
        (status = 404, description = "Unknown namespace (`namespace_not_found`), template (`handler_not_found`) or version (`version_not_found`, with `details.available_versions`).", body = ErrorBody),
    )
)]
pub async fn handlers_show(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<HandlerPath>,
    ApiQuery(q): ApiQuery<HandlerQuery>,
) -> Result<Json<HandlerEnvelope>, ApiError> {
    let handler = find_handler(&st, &p.namespace, &p.name, q.version.as_deref())?;
    Ok(Json(HandlerEnvelope {
        handler,
        generated_at: st.tasker().now(),
    }))
}

/// One template version by namespace, name and version (`None`, empty or
/// `latest`: the newest), with the error REST and GraphQL both answer when
/// a part of the reference matches nothing.
pub fn find_handler(
    st: &AppState,
    namespace: &str,
    name: &str,
    version: Option<&str>,
) -> Result<HandlerDetail, ApiError> {
    let wanted = match version.map(str::trim) {
        None | Some("") | Some("latest") => None,
        Some(v) => Some(semver::Version::parse(v).map_err(|e| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("query parameter `version`: `{v}` is not a semantic version: {e}"),
            )
            .field("version")
        })?),
    };
    let found = st.tasker().with_registry(|r| {
        let names = r.names(namespace)?;
        let versions = names
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, vs)| vs);
        Some((versions, r.get(namespace, name, wanted.as_ref()).ok()))
    });
    let (versions, template) = match found {
        None => return Err(namespace_not_found(namespace)),
        Some((None, _)) => {
            return Err(ApiError::not_found(
                "handler_not_found",
                format!("template `{name}` not found in namespace `{namespace}`"),
            )
            .field("name")
            .detail("namespace", json!(namespace))
            .detail("name", json!(name)));
        }
        Some((Some(vs), None)) => {
            let available: Vec<String> = vs.iter().map(ToString::to_string).collect();
            return Err(ApiError::not_found(
                "version_not_found",
                format!(
                    "template `{namespace}.{name}` has no version `{}`",
                    wanted.map(|v| v.to_string()).unwrap_or_default()
                ),
            )
            .field("version")
            .detail("available_versions", json!(available)));
        }
        Some((Some(vs), Some(t))) => (vs, t),
    };
    let versions: Vec<String> = versions.iter().map(ToString::to_string).collect();
    Ok(detail(st, &template, versions))
}

fn detail(st: &AppState, t: &TaskTemplate, versions: Vec<String>) -> HandlerDetail {
    let runnable = |kind: &str| st.tasker().handlers().contains(kind);
    let step_templates: Vec<StepTemplateView> = t
        .steps
        .iter()
        .map(|s| StepTemplateView {
            name: s.name.clone(),
            description: s.description.clone(),
            dependent_system: s.dependent_system.clone(),
            handler_kind: s.handler.kind.clone(),
            handler_config: object_or_empty(s.handler.config.clone()),
            handler_available: runnable(&s.handler.kind),
            depends_on: s.depends_on.clone(),
            default_retryable: s.retryable,
            default_retry_limit: s.retry_limit,
            skippable: s.skippable,
            timeout_seconds: s.timeout_seconds,
            inputs: object_or_empty(s.inputs.clone()),
        })
        .collect();
    HandlerDetail {
        name: t.name.clone(),
        namespace: t.namespace.clone(),
        version: t.version.to_string(),
        full_name: t.full_name(),
        description: t.description.clone(),
        latest_version: versions.last().cloned().unwrap_or_default(),
        versions,
        context_schema: t.context_schema.clone(),
        available: step_templates.iter().all(|s| s.handler_available),
        step_templates,
        dependency_graph: graph(t),
    }
}

/// The template's graph, from the validated DAG (so `depends_on_step` and
/// `depends_on_steps` both count).
pub(crate) fn graph(t: &TaskTemplate) -> TemplateGraph {
    let dag = &t.dag;
    let name = |i: usize| t.steps[i].name.clone();
    let levels = dag.levels();
    let nodes = t
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| TemplateNode {
            id: s.name.clone(),
            name: s.name.clone(),
            handler_kind: s.handler.kind.clone(),
            level: levels[i],
            dependencies: s.depends_on.clone(),
            dependency_count: s.depends_on.len(),
        })
        .collect();
    let edges: Vec<TemplateEdge> = dag
        .edges()
        .into_iter()
        .map(|(p, c)| TemplateEdge {
            from: name(p),
            to: name(c),
            kind: "dependency".to_string(),
        })
        .collect();
    let mut by_level: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, &level) in levels.iter().enumerate() {
        by_level.entry(level).or_default().push(name(i));
    }
    let by_level: Vec<Vec<String>> = by_level.into_values().collect();
    TemplateGraph {
        nodes,
        summary: GraphSummary {
            total_steps: dag.len(),
            total_dependencies: edges.len(),
            max_depth: by_level.len(),
            parallel_branches: by_level.iter().map(Vec::len).max().unwrap_or(0),
            has_cycles: false,
        },
        edges,
        execution_order: dag.topological_order().iter().map(|&i| name(i)).collect(),
        levels: by_level,
        roots: dag.roots().into_iter().map(name).collect(),
        leaves: dag.leaves().into_iter().map(name).collect(),
    }
}
