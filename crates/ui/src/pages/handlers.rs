//! The handlers pages: namespaces, their templates and versions, and one
//! template's graph (the same picture as a task's, without states), step
//! templates and context schema. Built from the same answers as
//! `GET /tasker/handlers` and `GET /tasker/handlers/{namespace}/{name}`.

use super::{Chrome, respond};
use crate::session::{Refusal, Viewer};
use crate::svg;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;
use tasker_server::AppState;
use tasker_server::routes::handlers::{find_handler, handlers_index};

/// One template name with its versions.
pub struct TemplateLine {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Versions, oldest first.
    pub versions: Vec<String>,
}

/// The index page.
#[derive(Template)]
#[template(path = "handlers.html")]
pub struct HandlersPage {
    /// Frame.
    pub chrome: Chrome,
    /// Every template the viewer may see.
    pub templates: Vec<TemplateLine>,
}

/// One step template.
pub struct StepTemplateLine {
    /// Name.
    pub name: String,
    /// Handler kind.
    pub kind: String,
    /// Whether this process runs the kind.
    pub available: bool,
    /// Depends on.
    pub depends_on: String,
    /// Attempts.
    pub retry_limit: u32,
    /// Retryable.
    pub retryable: bool,
    /// Timeout.
    pub timeout: String,
}

/// A template's page.
#[derive(Template)]
#[template(path = "handler.html")]
pub struct HandlerPage {
    /// Frame.
    pub chrome: Chrome,
    /// `namespace.name@version`.
    pub full_name: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// This version.
    pub version: String,
    /// Every version.
    pub versions: Vec<String>,
    /// Description.
    pub description: String,
    /// The graph.
    pub svg: String,
    /// Step templates.
    pub steps: Vec<StepTemplateLine>,
    /// The context schema, pretty (None: none).
    pub schema: Option<String>,
}

/// `GET /tasker/ui/handlers`.
pub async fn index(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, Refusal> {
    let path = format!("{}/handlers", crate::BASE);
    let viewer = Viewer::from_request(&st, &headers, &path).await?;
    viewer.permit_any("GET", "/tasker/handlers/{namespace}")?;
    let list = handlers_index(State(st.clone())).await.0;
    let mut templates = Vec::new();
    for ns in list.namespaces {
        if !viewer.may(&st, "GET", "/tasker/handlers/{namespace}", Some(&ns.name)) {
            continue;
        }
        let names = st
            .tasker()
            .with_registry(|r| r.names(&ns.name))
            .unwrap_or_default();
        for (name, versions) in names {
            templates.push(TemplateLine {
                namespace: ns.name.clone(),
                name: name.to_string(),
                versions: versions.iter().map(ToString::to_string).collect(),
            });
        }
    }
    let page = HandlersPage {
        chrome: Chrome::new(&viewer, "Handlers", "handlers"),
        templates,
    };
    Ok(respond(&viewer, &headers, &page))
}

/// Query of a template's page.
#[derive(Debug, Default, Deserialize)]
pub struct VersionQuery {
    /// A version, or `latest` (default).
    #[serde(default)]
    pub version: Option<String>,
}

/// `GET /tasker/ui/handlers/{namespace}/{name}`.
pub async fn show(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, Refusal> {
    let path = format!("{}/handlers/{namespace}/{name}", crate::BASE);
    let viewer = Viewer::from_request(&st, &headers, &path).await?;
    viewer.permit(
        &st,
        "GET",
        "/tasker/handlers/{namespace}/{name}",
        Some(&namespace),
    )?;
    let h = find_handler(&st, &namespace, &name, q.version.as_deref())?;
    let index: HashMap<&str, usize> = h
        .dependency_graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let nodes: Vec<svg::Node> = h
        .dependency_graph
        .nodes
        .iter()
        .map(|n| svg::Node {
            name: n.name.clone(),
            level: n.level,
            state: None,
            detail: n.handler_kind.clone(),
            href: None,
            in_chain: false,
            parents: n
                .dependencies
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect(),
        })
        .collect();
    let svg = svg::render(
        &nodes,
        &format!("Dependency graph of template {}", h.full_name),
    );
    let steps = h
        .step_templates
        .iter()
        .map(|s| StepTemplateLine {
            name: s.name.clone(),
            kind: s.handler_kind.clone(),
            available: s.handler_available,
            depends_on: s.depends_on.join(", "),
            retry_limit: s.default_retry_limit,
            retryable: s.default_retryable,
            timeout: s
                .timeout_seconds
                .map(|t| format!("{t} s"))
                .unwrap_or_default(),
        })
        .collect();
    let page = HandlerPage {
        chrome: Chrome::new(&viewer, h.full_name.clone(), "handlers"),
        schema: h
            .context_schema
            .as_ref()
            .map(|s| serde_json::to_string_pretty(s).unwrap_or_default()),
        full_name: h.full_name,
        namespace: h.namespace,
        name: h.name,
        version: h.version,
        versions: h.versions,
        description: h.description.unwrap_or_default(),
        svg,
        steps,
    };
    Ok(respond(&viewer, &headers, &page))
}
