//! External workers: claim steps, renew leases, report results.
//!
//! Workers in any language poll `POST /tasker/workers/claim` (long polling:
//! the request waits up to `wait_seconds` for work), run the step, renew the
//! lease with `heartbeat` while it runs, then `complete` or `fail`. A result
//! sent after the lease was lost (expired and rescued, or the task cancelled)
//! is refused with 409 `lease_lost`. See docs/HANDLERS.md for the protocol.
//!
//! A claim whose answer never reaches the worker (it disconnected, or the
//! request timed out, after the claim committed) gives its steps back at
//! once instead of leaving them leased to nobody (`crate::delivery`).

use crate::delivery::{GuardedBody, Undelivered};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath};
#[allow(unused_imports)] // Named in schema attributes.
use crate::json::{JsonObject, JsonValue, object_or_empty};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use tasker_engine::StepError;
use tasker_engine::external::{ExternalClaim, ExternalStep};
use tasker_store::LeaseRef;
use utoipa::ToSchema;
use uuid::Uuid;

/// `{step_id}` in a path.
#[derive(Debug, Deserialize)]
pub struct StepIdPath {
    /// Step id.
    pub step_id: Uuid,
}

/// The namespaces a claim may take steps from: what the worker asked for,
/// within what its grants allow (a key scoped to `billing` asking for no
/// namespace claims from `billing` only; asking for another is a 403).
fn claim_namespaces(
    grants: &tasker_auth::Grants,
    asked: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ApiError> {
    const CLAIM: &str = "tasker.worker:claim";
    let Some(allowed) = grants.namespaces_for(CLAIM) else {
        return Ok(asked);
    };
    match asked {
        None => Ok(Some(allowed)),
        Some(asked) => {
            if let Some(ns) = asked.iter().find(|ns| !allowed.contains(ns)) {
                return Err(crate::auth::forbidden(CLAIM, Some(ns)).field("namespaces"));
            }
            Ok(Some(asked))
        }
    }
}

/// A claim request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The worker's id, recorded as the lease owner (1–200 characters, not blank).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub worker_id: String,
    /// Handler kinds this worker runs, e.g. `["external"]` or `["resize_image"]` (at least one, none blank).
    #[schema(min_items = 1)]
    pub handler_kinds: Vec<String>,
    /// Only steps of tasks in these namespaces (default: any).
    pub namespaces: Option<Vec<String>>,
    /// At most this many steps (1–100, default 1).
    #[schema(minimum = 1, maximum = 100)]
    pub max_steps: Option<u32>,
    /// Lease length in seconds (1–3600, default 30). Heartbeat before it ends.
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_seconds: Option<f64>,
    /// Wait up to this many seconds for work when none is ready (0–20, default 10).
    #[schema(minimum = 0, maximum = 20)]
    pub wait_seconds: Option<f64>,
}

impl ApiBody for ClaimRequest {
    const ENVELOPES: &'static [&'static str] = &["claim"];
}

/// One claimed step: everything a handler needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimedStepView {
    /// Step id (use it in heartbeat / complete / fail).
    pub step_id: Uuid,
    /// Present with every heartbeat / complete / fail of this attempt.
    pub lease_token: Uuid,
    /// When the lease ends unless renewed.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub lease_expires_at: DateTime<Utc>,
    /// Task id.
    pub task_id: Uuid,
    /// Step name.
    pub step_name: String,
    /// Template namespace.
    pub namespace: String,
    /// Template name.
    pub task_name: String,
    /// Template version.
    pub version: String,
    /// Handler kind.
    pub handler_kind: String,
    /// Handler configuration from the template (`{}` when it gives none).
    #[schema(value_type = JsonObject)]
    pub handler_config: Value,
    /// Static inputs from the template (`{}` when it gives none).
    #[schema(value_type = JsonObject)]
    pub inputs: Value,
    /// The task's context.
    #[schema(value_type = JsonObject)]
    pub context: Value,
    /// Results of the parent steps, by step name (each any JSON value).
    #[schema(value_type = std::collections::HashMap<String, JsonValue>)]
    pub parent_results: serde_json::Map<String, Value>,
    /// This attempt (1 = first).
    pub attempt: i32,
    /// Attempts allowed in total.
    pub max_attempts: i32,
    /// Per-attempt timeout the worker should enforce.
    pub timeout_seconds: Option<f64>,
    /// Stable across attempts: use it to make side effects idempotent.
    pub idempotency_key: String,
    /// The task's correlation id: forward it.
    pub correlation_id: String,
    /// W3C trace context of the task's root span: send it as the
    /// `traceparent` of the work done for this step, so it joins the task's
    /// trace (docs/OBSERVABILITY.md).
    pub traceparent: String,
}

impl From<ExternalStep> for ClaimedStepView {
    fn from(e: ExternalStep) -> Self {
        let s = e.step;
        ClaimedStepView {
            step_id: s.step_id,
            lease_token: s.lease_token,
            lease_expires_at: s.lease_expires_at,
            task_id: s.task_id,
            step_name: s.step_name,
            namespace: s.namespace,
            task_name: s.task_name,
            version: s.version,
            handler_kind: s.handler.kind,
            handler_config: object_or_empty(s.handler.config),
            inputs: object_or_empty(s.inputs),
            context: s.context,
            parent_results: s.parent_results,
            attempt: s.attempt,
            max_attempts: s.max_attempts,
            timeout_seconds: s.timeout_seconds,
            idempotency_key: e.idempotency_key,
            traceparent: tasker_engine::telemetry::traceparent_of_task(s.task_id),
            correlation_id: s.correlation_id,
        }
    }
}

/// The steps a claim returned (possibly none).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimResponse {
    /// Claimed steps.
    pub steps: Vec<ClaimedStepView>,
}

/// A heartbeat.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The token from the claim.
    pub lease_token: Uuid,
    /// New lease length from now, in seconds (1–3600, default 30).
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_seconds: Option<f64>,
}

impl ApiBody for HeartbeatRequest {}

/// The renewed lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    /// Step id.
    pub step_id: Uuid,
    /// New expiry.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub lease_expires_at: DateTime<Utc>,
}

/// A successful attempt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The token from the claim.
    pub lease_token: Uuid,
    /// The step's results: any JSON value (default `{}`).
    #[schema(value_type = Option<JsonValue>)]
    pub results: Option<Value>,
}

impl ApiBody for CompleteRequest {}

/// A failed attempt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// The token from the claim.
    pub lease_token: Uuid,
    /// What went wrong (recorded on the step; not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub message: String,
    /// False: do not retry (permanent). Default true.
    pub retryable: Option<bool>,
    /// Retry no sooner than this many seconds (0–86400; e.g. an upstream Retry-After); capped by the backoff maximum.
    #[schema(minimum = 0, maximum = 86400)]
    pub retry_after_seconds: Option<f64>,
    /// Optional machine-readable code (e.g. `HTTP_404`).
    pub code: Option<String>,
}

impl ApiBody for FailRequest {}

/// Acknowledgement of a result.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Step id.
    pub step_id: Uuid,
    /// Always `accepted`.
    pub status: &'static str,
}

fn seconds(
    field: &str,
    v: Option<f64>,
    default: f64,
    max: f64,
    min: f64,
) -> Result<Duration, ApiError> {
    let s = v.unwrap_or(default);
    if !(s.is_finite() && s >= min && s <= max) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{field}: must be between {min} and {max}"),
        )
        .field(field));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Claims ready steps of the given handler kinds, waiting for work up to `wait_seconds`.
#[utoipa::path(
    post,
    path = "/tasker/workers/claim",
    tag = "workers",
    request_body(content = ClaimRequest, description = "Who is asking and for what."),
    responses(
        (status = 200, description = "The claimed steps (an empty list when none became ready in time).", body = ClaimResponse),
        (status = 400, description = "Malformed body or a field out of range (`details.field` names it).", body = ErrorBody),
        (status = 413, description = "Body larger than the limit.", body = ErrorBody),
        (status = 415, description = "Body is not JSON.", body = ErrorBody),
    )
)]
pub async fn workers_claim(
    State(st): State<AppState>,
    identity: Option<axum::Extension<tasker_auth::Identity>>,
    body: ApiJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    let env = body.envelope;
    let b = body.value;
    let namespaces = match identity {
        Some(axum::Extension(id)) => claim_namespaces(&id.grants, b.namespaces)?,
        None => b.namespaces,
    };
    let claim = ExternalClaim {
        worker_id: b.worker_id,
        kinds: b.handler_kinds,
        namespaces,
        max_steps: b.max_steps.unwrap_or(1),
        lease: seconds("lease_seconds", b.lease_seconds, 30.0, 3600.0, 1.0)
            .map_err(|e| e.in_envelope(env))?,
        wait: seconds(
            "wait_seconds",
            b.wait_seconds,
            10.0,
            crate::state::MAX_CLAIM_WAIT.as_secs_f64(),
            0.0,
        )
        .map_err(|e| e.in_envelope(env))?,
    };
    // In a task of its own, so a claim that committed is never lost with a
    // dropped request (see `crate::delivery`).
    let (mut tx, rx) = tokio::sync::oneshot::channel();
    let tasker = st.tasker().clone();
    tokio::spawn(async move {
        let result = tasker.external_claim_until(claim, tx.closed()).await;
        if let Err(Ok(steps)) = tx.send(result) {
            let leases: Vec<LeaseRef> = steps.iter().map(lease_of).collect();
            drop(Undelivered::new(
                tasker,
                leases,
                "the request ended (client gone or timed out) before the claim answered",
            ));
        }
    });
    let steps = rx
        .await
        .map_err(|_| ApiError::internal("the claim task ended without an answer"))?
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    let leases: Vec<LeaseRef> = steps.iter().map(lease_of).collect();
    let guard = Undelivered::new(
        st.tasker().clone(),
        leases,
        "the claim's answer could not be handed to the worker's connection",
    );
    let body = ClaimResponse {
        steps: steps.into_iter().map(ClaimedStepView::from).collect(),
    };
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ApiError::internal(format!("cannot encode a claim: {e}")))?;
    Ok((
        [(CONTENT_TYPE, "application/json")],
        axum::body::Body::new(GuardedBody::new(bytes, guard)),
    )
        .into_response())
}

fn lease_of(s: &ExternalStep) -> LeaseRef {
    LeaseRef {
        step_id: s.step.step_id,
        token: s.step.lease_token,
    }
}

/// Renews the lease of a claimed step.
#[utoipa::path(
    post,
    path = "/tasker/steps/{step_id}/heartbeat",
    tag = "workers",
    params(("step_id" = Uuid, Path, description = "Step id")),
    request_body(content = HeartbeatRequest),
    responses(
        (status = 200, description = "The lease was renewed.", body = LeaseView),
        (status = 400, description = "Malformed body or id.", body = ErrorBody),
        (status = 404, description = "No such step.", body = ErrorBody),
        (status = 409, description = "The lease is no longer held (`lease_lost`): stop working on the step.", body = ErrorBody),
    )
)]
pub async fn steps_heartbeat(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepIdPath>,
    body: ApiJson<HeartbeatRequest>,
) -> Result<Json<LeaseView>, ApiError> {
    let b = body.value;
    let lease = seconds("lease_seconds", b.lease_seconds, 30.0, 3600.0, 1.0)?;
    let until = st
        .tasker()
        .external_heartbeat(p.step_id, b.lease_token, lease)
        .await?;
    Ok(Json(LeaseView {
        step_id: p.step_id,
        lease_expires_at: until,
    }))
}

/// Records a successful attempt of a claimed step.
#[utoipa::path(
    post,
    path = "/tasker/steps/{step_id}/complete",
    tag = "workers",
    params(("step_id" = Uuid, Path, description = "Step id")),
    request_body(content = CompleteRequest),
    responses(
        (status = 200, description = "Recorded; children may start.", body = Accepted),
        (status = 400, description = "Malformed body or id.", body = ErrorBody),
        (status = 404, description = "No such step.", body = ErrorBody),
        (status = 409, description = "The lease is no longer held (`lease_lost`): the result is ignored.", body = ErrorBody),
    )
)]
pub async fn steps_complete(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepIdPath>,
    body: ApiJson<CompleteRequest>,
) -> Result<Json<Accepted>, ApiError> {
    let b = body.value;
    let results = b
        .results
        .unwrap_or_else(|| Value::Object(Default::default()));
    st.tasker()
        .external_complete(p.step_id, b.lease_token, results)
        .await?;
    Ok(Json(Accepted {
        step_id: p.step_id,
        status: "accepted",
    }))
}

/// Records a failed attempt; retried with backoff while attempts remain, unless not retryable.
#[utoipa::path(
    post,
    path = "/tasker/steps/{step_id}/fail",
    tag = "workers",
    params(("step_id" = Uuid, Path, description = "Step id")),
    request_body(content = FailRequest),
    responses(
        (status = 200, description = "Recorded.", body = Accepted),
        (status = 400, description = "Malformed body, id, or `retry_after_seconds`.", body = ErrorBody),
        (status = 404, description = "No such step.", body = ErrorBody),
        (status = 409, description = "The lease is no longer held (`lease_lost`).", body = ErrorBody),
    )
)]
pub async fn steps_fail(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<StepIdPath>,
    body: ApiJson<FailRequest>,
) -> Result<Json<Accepted>, ApiError> {
    let b = body.value;
    if b.message.trim().is_empty() {
        return Err(
            ApiError::bad_request("invalid_field", "message: must not be empty").field("message"),
        );
    }
    let mut error = if b.retryable.unwrap_or(true) {
        StepError::retryable(b.message)
    } else {
        StepError::permanent(b.message)
    };
    if let Some(code) = b.code {
        error = error.with_code(code);
    }
    if b.retry_after_seconds.is_some() {
        error = error.with_retry_after(seconds(
            "retry_after_seconds",
            b.retry_after_seconds,
            0.0,
            86_400.0,
            0.0,
        )?);
    }
    st.tasker()
        .external_fail(p.step_id, b.lease_token, error)
        .await?;
    Ok(Json(Accepted {
        step_id: p.step_id,
        status: "accepted",
    }))
}
