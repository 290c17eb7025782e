//! Webhook subscribers (docs/EVENTS.md, "Webhooks"): register, list, show,
//! delete, their deliveries (dead letters with `status=dead`) and
//! redelivery. Every process's dispatcher reads them from the database.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBody, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tasker_engine::webhooks::WebhookRequest;
use tasker_store::{DeliveryRow, DeliveryStatus, WebhookRow, WebhookSource};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A subscriber to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Unique name: 1 to 100 of letters, digits, `_`, `-`, `.`.
    #[schema(example = "ops-alerts")]
    pub name: String,
    /// Where events are POSTed (`http`/`https`; the `[http]` SSRF policy
    /// applies: internal addresses are refused unless allowed).
    #[schema(example = "https://hooks.example.com/tasker")]
    pub url: String,
    /// Event types or patterns (`task.*`, `step.failed`, `*`); default every event.
    #[schema(example = json!(["task.*", "step.failed"]))]
    pub events: Option<Vec<String>>,
    /// Only events of tasks in these namespaces (default: all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Key of the `Tasker-Signature` HMAC (leave out for unsigned deliveries).
    pub secret: Option<String>,
    /// Attempts before a delivery is dead-lettered, 1 to 100 (default 10).
    pub max_attempts: Option<u32>,
    /// Per-request timeout, seconds, at most 300 (default 10).
    pub timeout_seconds: Option<f64>,
}

impl ApiBody for CreateWebhook {
    const ENVELOPES: &'static [&'static str] = &["webhook"];
}

/// A subscriber (its secret is never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types or patterns.
    pub events: Vec<String>,
    /// Namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Whether deliveries are signed.
    pub signed: bool,
    /// Attempts before a dead letter.
    pub max_attempts: u32,
    /// Per-request timeout, seconds.
    pub timeout_seconds: f64,
    /// `config` (`[[webhooks]]`, synced at start) or `api`.
    #[schema(example = "api")]
    pub source: String,
    /// Highest event id fanned out to it so far.
    pub event_cursor: i64,
    /// Created.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub created_at: DateTime<Utc>,
}

impl From<WebhookRow> for WebhookView {
    fn from(r: WebhookRow) -> Self {
        WebhookView {
            id: r.id,
            name: r.name,
            url: r.url,
            events: r.event_types,
            namespaces: r.namespaces,
            signed: r.secret.is_some(),
            max_attempts: r.max_attempts,
            timeout_seconds: f64::from(r.timeout_ms) / 1000.0,
            source: match r.source {
                WebhookSource::Config => "config",
                WebhookSource::Api => "api",
            }
            .into(),
            event_cursor: r.event_cursor,
            created_at: r.created_at,
        }
    }
}

/// `{"webhook": ...}`
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEnvelope {
    /// The subscriber.
    pub webhook: WebhookView,
}

/// Every subscriber.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// By name.
    pub webhooks: Vec<WebhookView>,
}

/// One (event, subscriber) delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event id (its `Tasker-Event-Id`).
    pub event_id: i64,
    /// The event's type.
    pub event_type: String,
    /// The event's task.
    pub task_id: Uuid,
    /// `pending`, `delivered` or `dead` (a dead letter).
    #[schema(example = "dead")]
    pub status: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Next attempt (pending ones).
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub next_attempt_at: DateTime<Utc>,
    /// The process holding it while in flight.
    pub lease_owner: Option<String>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// The receiver's last HTTP status.
    pub last_status_code: Option<u16>,
    /// When it was delivered.
    #[serde(serialize_with = "tasker_core::time::micros_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the event happened.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub event_created_at: DateTime<Utc>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(r: DeliveryRow) -> Self {
        DeliveryView {
            event_id: r.event_id,
            event_type: r.event_type,
            task_id: r.task_id,
            status: match r.status {
                DeliveryStatus::Pending => "pending",
                DeliveryStatus::Delivered => "delivered",
                DeliveryStatus::Dead => "dead",
            }
            .into(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            lease_owner: r.lease_owner,
            last_error: r.last_error,
            last_status_code: r.last_status_code,
            delivered_at: r.delivered_at,
            event_created_at: r.event_created_at,
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// By event id.
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `after` for the next page.
    pub next_after: i64,
}

/// Query parameters of `GET /tasker/webhooks/{webhook_id}/deliveries`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `dead` (dead letters); default all.
    pub status: Option<String>,
    /// Only event ids above this (default 0).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// What to send again.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// These events' deliveries (dead or delivered); leave out for every dead letter.
    pub event_ids: Option<Vec<i64>>,
}

impl ApiBody for RedeliverRequest {
    fn empty() -> Option<Self> {
        Some(RedeliverRequest::default())
    }
}

/// How many deliveries were made pending again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// Deliveries pending again, with a fresh attempt budget.
    pub redelivered: u64,
}

/// `{webhook_id}` in a path.
#[derive(Debug, Deserialize)]
pub struct WebhookPath {
    /// Webhook id.
    pub webhook_id: Uuid,
}

/// Registers a webhook subscriber; it receives the events recorded from now on.
#[utoipa::path(
    post,
    path = "/tasker/webhooks",
    tag = "webhooks",
    request_body(content = CreateWebhook),
    responses(
        (status = 201, description = "Registered.", body = WebhookEnvelope),
        (status = 400, description = "A bad field, or a URL the SSRF policy refuses (named in `details.field`).", body = ErrorBody),
        (status = 409, description = "The name is taken.", body = ErrorBody),
    )
)]
pub async fn webhooks_create(
    State(st): State<AppState>,
    body: ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookEnvelope>), ApiError> {
    let env = body.envelope;
    let b = body.value;
    let row = st
        .tasker()
        .create_webhook(WebhookRequest {
            name: b.name,
            url: b.url,
            events: b.events,
            namespaces: b.namespaces,
            secret: b.secret,
            max_attempts: b.max_attempts,
            timeout_seconds: b.timeout_seconds,
        })
        .await
        .map_err(|e| ApiError::from(e).in_envelope(env))?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookEnvelope {
            webhook: row.into(),
        }),
    ))
}

/// Every webhook subscriber (from the configuration and the API).
#[utoipa::path(
    get,
    path = "/tasker/webhooks",
    tag = "webhooks",
    responses((status = 200, description = "By name.", body = WebhookList))
)]
pub async fn webhooks_index(State(st): State<AppState>) -> Result<Json<WebhookList>, ApiError> {
    let hooks = st.tasker().webhooks().await?;
    Ok(Json(WebhookList {
        webhooks: hooks.into_iter().map(WebhookView::from).collect(),
    }))
}

/// One webhook subscriber.
#[utoipa::path(
    get,
    path = "/tasker/webhooks/{webhook_id}",
    tag = "webhooks",
    params(("webhook_id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The subscriber.", body = WebhookEnvelope),
        (status = 400, description = "`webhook_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such webhook.", body = ErrorBody),
    )
)]
pub async fn webhooks_show(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<WebhookPath>,
) -> Result<Json<WebhookEnvelope>, ApiError> {
    let row = st.tasker().webhook(p.webhook_id).await?;
    Ok(Json(WebhookEnvelope {
        webhook: row.into(),
    }))
}

/// Deletes a webhook subscriber and its deliveries (one from the
/// configuration comes back at the next start unless removed there).
#[utoipa::path(
    delete,
    path = "/tasker/webhooks/{webhook_id}",
    tag = "webhooks",
    params(("webhook_id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`webhook_id` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such webhook.", body = ErrorBody),
    )
)]
pub async fn webhooks_destroy(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<WebhookPath>,
) -> Result<StatusCode, ApiError> {
    st.tasker().delete_webhook(p.webhook_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A subscriber's deliveries by event id; `status=dead` lists its dead letters.
#[utoipa::path(
    get,
    path = "/tasker/webhooks/{webhook_id}/deliveries",
    tag = "webhooks",
    params(("webhook_id" = Uuid, Path, description = "Webhook id"), DeliveriesQuery),
    responses(
        (status = 200, description = "Deliveries after `after`, by event id.", body = DeliveryList),
        (status = 400, description = "A bad parameter (named in `details.field`).", body = ErrorBody),
        (status = 404, description = "No such webhook.", body = ErrorBody),
    )
)]
pub async fn webhooks_deliveries(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<WebhookPath>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let after = q.after.unwrap_or(0);
    let rows = st
        .tasker()
        .webhook_deliveries(
            p.webhook_id,
            q.status.as_deref(),
            after,
            q.limit.unwrap_or(100),
        )
        .await?;
    let next_after = rows.last().map_or(after, |d| d.event_id);
    Ok(Json(DeliveryList {
        deliveries: rows.into_iter().map(DeliveryView::from).collect(),
        next_after,
    }))
}

/// Sends deliveries again with a fresh attempt budget: the listed events'
/// (dead or delivered), or every dead letter of the subscriber.
#[utoipa::path(
    post,
    path = "/tasker/webhooks/{webhook_id}/redeliver",
    tag = "webhooks",
    params(("webhook_id" = Uuid, Path, description = "Webhook id")),
    request_body(content = RedeliverRequest, description = "Optional; empty: every dead letter."),
    responses(
        (status = 200, description = "How many deliveries are pending again.", body = Redelivered),
        (status = 400, description = "A bad body (named in `details.field`).", body = ErrorBody),
        (status = 404, description = "No such webhook.", body = ErrorBody),
    )
)]
pub async fn webhooks_redeliver(
    State(st): State<AppState>,
    ApiPath(p): ApiPath<WebhookPath>,
    body: ApiJson<RedeliverRequest>,
) -> Result<Json<Redelivered>, ApiError> {
    let n = st
        .tasker()
        .redeliver_webhook(p.webhook_id, body.value.event_ids)
        .await?;
    Ok(Json(Redelivered { redelivered: n }))
}
