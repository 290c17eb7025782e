//! `/tasker/flow/pauses` (docs/FLOW_CONTROL.md): pause or resume a whole
//! namespace or template, the incident switch. Thin: the service
//! (`tasker_engine::flow`) applies the rules, the store the change.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath};
use crate::state::AppState;
use crate::views::PauseView;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tasker_store::FlowScope;
use utoipa::ToSchema;

/// The body of `POST /tasker/flow/pauses`, bare or wrapped in `{"pause": ...}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePause {
    /// The namespace to pause.
    #[schema(example = "payments")]
    pub namespace: String,
    /// Only this template of it (all its versions); the whole namespace when omitted.
    #[schema(example = "charge")]
    pub name: Option<String>,
    /// Why (shown in every read of the tasks it holds).
    #[schema(max_length = 1024, example = "PSP outage")]
    pub reason: Option<String>,
}

impl ApiBody for CreatePause {
    const ENVELOPES: &'static [&'static str] = &["pause"];
}

/// `{"pause": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseEnvelope {
    /// The pause (created, or lifted by a resume).
    pub pause: PauseView,
}

/// `{"pauses": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseList {
    /// Every paused namespace and template.
    pub pauses: Vec<PauseView>,
}

/// `{namespace}` in a path.
#[derive(Debug, Deserialize)]
pub struct NamespacePath {
    /// Namespace.
    pub namespace: String,
}

/// `{namespace}/{name}` in a path.
#[derive(Debug, Deserialize)]
pub struct TemplatePath {
    /// Namespace.
    pub namespace: String,
    /// Template name.
    pub name: String,
}

fn by(st: &AppState, identity: Option<&Extension<tasker_auth::Identity>>) -> Option<String> {
    crate::auth::actor(st, identity.map(|Extension(i)| i))
}

/// Lists the paused namespaces and templates.
#[utoipa::path(
    get,
    path = "/tasker/flow/pauses",
    tag = "flow",
    responses((status = 200, description = "Every paused namespace and template.", body = PauseList))
)]
pub async fn pauses_index(State(st): State<AppState>) -> Result<Json<PauseList>, ApiError> {
    let all = st.tasker().flow_pauses().await?;
    Ok(Json(PauseList {
        pauses: all.iter().map(PauseView::of_flow).collect(),
    }))
}

/// Pauses a namespace or one template of it: no new step of it starts
/// (running ones finish), tasks created meanwhile wait too.
#[utoipa::path(
    post,
    path = "/tasker/flow/pauses",
    tag = "flow",
    request_body(content = CreatePause, description = "What to pause, bare or wrapped in `{\"pause\": ...}`."),
    responses(
        (status = 201, description = "Paused.", body = PauseEnvelope),
        (status = 400, description = "A bad `namespace`, `name` or `reason` (`details.field`).", body = ErrorBody),
        (status = 409, description = "Already paused (`conflict`).", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
    )
)]
pub async fn pauses_create(
    State(st): State<AppState>,
    identity: Option<Extension<tasker_auth::Identity>>,
    body: ApiJson<CreatePause>,
) -> Result<(StatusCode, Json<PauseEnvelope>), ApiError> {
    let env = body.envelope;
    let b = body.value;
    let scope = FlowScope {
        namespace: b.namespace,
        name: b.name,
    };
    let who = by(&st, identity.as_ref());
    let row = st
        .tasker()
        .pause_scope(&scope, who.as_deref(), b.reason.as_deref())
        .await
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    Ok((
        StatusCode::CREATED,
        Json(PauseEnvelope {
            pause: PauseView::of_flow(&row),
        }),
    ))
}

async fn resume(
    st: &AppState,
    identity: Option<&Extension<tasker_auth::Identity>>,
    scope: FlowScope,
) -> Result<Json<PauseEnvelope>, ApiError> {
    let who = by(st, identity);
    let row = st.tasker().resume_scope(&scope, who.as_deref()).await?;
    Ok(Json(PauseEnvelope {
        pause: PauseView::of_flow(&row),
    }))
}

/// Resumes a paused namespace (a template paused by itself, or a task
/// paused by itself, stays paused).
#[utoipa::path(
    delete,
    path = "/tasker/flow/pauses/{namespace}",
    tag = "flow",
    params(("namespace" = String, Path, description = "Namespace")),
    responses(
        (status = 200, description = "Resumed: the pause that was lifted.", body = PauseEnvelope),
        (status = 400, description = "A bad namespace.", body = ErrorBody),
        (status = 409, description = "Not paused (`conflict`).", body = ErrorBody),
    )
)]
pub async fn pauses_delete_namespace(
    State(st): State<AppState>,
    identity: Option<Extension<tasker_auth::Identity>>,
    ApiPath(p): ApiPath<NamespacePath>,
) -> Result<Json<PauseEnvelope>, ApiError> {
    let scope = FlowScope {
        namespace: p.namespace,
        name: None,
    };
    resume(&st, identity.as_ref(), scope).await
}

/// Resumes a paused template (its namespace's pause, if any, still holds it).
#[utoipa::path(
    delete,
    path = "/tasker/flow/pauses/{namespace}/{name}",
    tag = "flow",
    params(
        ("namespace" = String, Path, description = "Namespace"),
        ("name" = String, Path, description = "Template name"),
    ),
    responses(
        (status = 200, description = "Resumed: the pause that was lifted.", body = PauseEnvelope),
        (status = 400, description = "A bad namespace or name.", body = ErrorBody),
        (status = 409, description = "Not paused (`conflict`).", body = ErrorBody),
    )
)]
pub async fn pauses_delete_template(
    State(st): State<AppState>,
    identity: Option<Extension<tasker_auth::Identity>>,
    ApiPath(p): ApiPath<TemplatePath>,
) -> Result<Json<PauseEnvelope>, ApiError> {
    let scope = FlowScope {
        namespace: p.namespace,
        name: Some(p.name),
    };
    resume(&st, identity.as_ref(), scope).await
}
