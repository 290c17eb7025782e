//! One error type for every route, and its one mapping to a response.
//!
//! Every error leaves as
//! `{"error": {"code": "...", "message": "...", "details": {...}}}` with the
//! status of its [`ErrorKind`]. `details.field` names the offending input
//! (`task.context`, `limit`, `step_id`) whenever one is to blame.
//!
//! User input never produces a 500: bad JSON, unknown fields, wrong types,
//! unknown ids and forbidden transitions each have their own 4xx. Internal
//! failures answer with an opaque message; the real one travels in a response
//! extension ([`InternalDetail`]) that the logging middleware writes to the log
//! with the request id, and strips.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tasker_core::registry::RegistryError;
use tasker_engine::EngineError;
use tasker_store::StoreError;
use utoipa::ToSchema;

/// What went wrong, as far as the client is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400: malformed body, parameter or path segment.
    BadRequest,
    /// 401: credentials missing or invalid (`WWW-Authenticate: Bearer`).
    Unauthorized,
    /// 403: authenticated, but without the permission the route needs.
    Forbidden,
    /// 404: no such task, step, template or route.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: illegal state transition, duplicate identity, conflicting edit.
    Conflict,
    /// 413: body larger than the configured limit.
    PayloadTooLarge,
    /// 415: body is not JSON.
    UnsupportedMediaType,
    /// 422: well-formed, but the context violates the template's schema.
    Unprocessable,
    /// 503: the database is unavailable or the request timed out.
    Unavailable,
    /// 500: a bug or a corrupt row; never caused by input.
    Internal,
}

impl ErrorKind {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error a handler returns. Build one with the constructors, add
/// [`ApiError::field`] / [`ApiError::detail`], and return it with `?`.
#[derive(Debug, Clone)]
pub struct ApiError {
    kind: ErrorKind,
    code: &'static str,
    message: String,
    details: Map<String, Value>,
    /// Logged, never sent.
    internal: Option<String>,
}

/// The internal cause of a 500 or 503, carried to the logging middleware.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl ApiError {
    /// An error of `kind` with a machine `code` and a human message.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            code,
            message: message.into(),
            details: Map::new(),
            internal: None,
        }
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    /// 500 with an opaque message; `cause` is only logged.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            ErrorKind::Internal,
            "internal_error",
            "internal server error; the cause has been logged",
        );
        e.internal = Some(cause.into());
        e
    }

    /// 503 because the database cannot be reached; `cause` is only logged.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            ErrorKind::Unavailable,
            "unavailable",
            "the database is unavailable; try again later",
        );
        e.internal = Some(cause.into());
        e
    }

    /// Names the input at fault (`details.field`).
    pub fn field(self, path: impl Into<String>) -> Self {
        self.detail("field", Value::String(path.into()))
    }

    /// Adds a detail.
    pub fn detail(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_string(), value);
        self
    }

    /// Prefixes `details.field` (e.g. with `task` when the body was wrapped
    /// in `{"task": {...}}`), so the path matches what the client sent.
    pub fn in_envelope(mut self, envelope: Option<&str>) -> Self {
        if let (Some(prefix), Some(Value::String(f))) = (envelope, self.details.get_mut("field")) {
            *f = if f.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{f}")
            };
        }
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `details.field`, when an input is to blame.
    pub fn field_name(&self) -> Option<String> {
        self.details
            .get("field")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.status(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_body`, `not_found`,
    /// `invalid_transition`, `context_schema_violation`.
    #[schema(example = "invalid_body")]
    pub code: String,
    /// What happened and, where possible, how to fix it.
    pub message: String,
    /// Structured context: `field` (path of the offending input), ids,
    /// states, violations. Always an object, possibly empty.
    #[schema(value_type = ErrorDetails)]
    pub details: Map<String, Value>,
}

/// `error.details`: which keys appear depends on the error code; all are
/// optional and more may be added.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // Only describes the wire shape of `ErrorDetail::details`.
pub struct ErrorDetails {
    /// Path of the offending input (`task.context`, `limit`, `tags[2]`, `X-Correlation-ID`).
    #[schema(required = false, nullable = false)]
    pub field: Option<String>,
    /// `context_schema_violation`: each JSON Schema violation of the context.
    #[schema(required = false, nullable = false)]
    pub violations: Option<Vec<Violation>>,
    /// `unknown_template` / `version_not_found`: the versions that exist.
    #[schema(required = false, nullable = false)]
    pub available_versions: Option<Vec<String>>,
    /// `duplicate_task`: the task an identical request created.
    #[schema(required = false, nullable = false)]
    pub existing_task_id: Option<uuid::Uuid>,
    /// `not_found` / `invalid_transition`: `task` or `step`.
    #[schema(required = false, nullable = false)]
    pub entity: Option<String>,
    /// `not_found`: the id looked up.
    #[schema(required = false, nullable = false)]
    pub id: Option<uuid::Uuid>,
    /// `not_found` of a step in a task: the task.
    #[schema(required = false, nullable = false)]
    pub task_id: Option<uuid::Uuid>,
    /// `lease_lost`: the step.
    #[schema(required = false, nullable = false)]
    pub step_id: Option<uuid::Uuid>,
    /// `invalid_transition`: the state it is in.
    #[schema(required = false, nullable = false)]
    pub from: Option<String>,
    /// `invalid_transition`: the state asked for.
    #[schema(required = false, nullable = false)]
    pub to: Option<String>,
    /// `forbidden`: the permission the request needs (`tasker.task:create`).
    #[schema(required = false, nullable = false)]
    pub permission: Option<String>,
    /// `template_not_found` / `namespace_not_found` / `handler_not_found`: the namespace
    /// (`forbidden`: the namespace the permission is missing for).
    #[schema(required = false, nullable = false)]
    pub namespace: Option<String>,
    /// `template_not_found` / `handler_not_found`: the template name.
    #[schema(required = false, nullable = false)]
    pub name: Option<String>,
    /// `template_not_found`: the version asked for (null: the latest).
    #[schema(required = false)]
    pub version: Option<String>,
    /// `malformed_json`: where the body stops being JSON.
    #[schema(required = false, nullable = false)]
    pub line: Option<u64>,
    /// `malformed_json`: where the body stops being JSON.
    #[schema(required = false, nullable = false)]
    pub column: Option<u64>,
}

/// One JSON Schema violation of a task's context.
#[derive(Debug, Serialize, ToSchema)]
pub struct Violation {
    /// JSON Pointer of the offending value (`/order_id`; empty for the root).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut res = (self.kind.status(), Json(body)).into_response();
        if self.kind == ErrorKind::Unauthorized {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"tasker\""),
            );
        }
        if let Some(cause) = self.internal {
            res.extensions_mut().insert(InternalDetail(cause));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => {
                ApiError::not_found("not_found", format!("{entity} {id} not found"))
                    .detail("entity", json!(entity))
                    .detail("id", json!(id))
            }
            StoreError::InvalidTransition(t) => {
                ApiError::conflict("invalid_transition", t.to_string())
                    .detail("entity", json!(t.entity))
                    .detail("from", json!(t.from))
                    .detail("to", json!(t.to))
            }
            StoreError::DuplicateTask { existing } => ApiError::conflict(
                "duplicate_task",
                format!("an identical request created task {existing} within the identity window"),
            )
            .detail("existing_task_id", json!(existing)),
            StoreError::Conflict(m) => ApiError::conflict("conflict", m),
            // Normally refused at the edge (see `extract`); this is the
            // backstop for any value the database still cannot store.
            StoreError::InvalidData(m) => {
                ApiError::bad_request("invalid_value", format!("a value cannot be stored: {m}"))
            }
            StoreError::Unavailable(m) => ApiError::unavailable(m),
            StoreError::Internal(m) => ApiError::internal(m),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::InvalidField { field, message } => {
                ApiError::bad_request("invalid_field", format!("{field}: {message}")).field(field)
            }
            EngineError::InvalidContext(violations) => {
                let list: Vec<Value> = violations
                    .iter()
                    .map(|v| json!({ "path": v.path, "message": v.message }))
                    .collect();
                ApiError::new(
                    ErrorKind::Unprocessable,
                    "context_schema_violation",
                    EngineError::InvalidContext(violations).to_string(),
                )
                .field("context")
                .detail("violations", Value::Array(list))
            }
            EngineError::Registry(RegistryError::NotFound {
                namespace,
                name,
                version,
            }) => ApiError::not_found(
                "template_not_found",
                RegistryError::NotFound {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    version: version.clone(),
                }
                .to_string(),
            )
            .detail("namespace", json!(namespace))
            .detail("name", json!(name))
            .detail("version", json!(version)),
            EngineError::InvalidParameter { field, message } => ApiError::bad_request(
                "invalid_parameter",
                format!("query parameter `{field}`: {message}"),
            )
            .field(field),
            EngineError::EmptyUpdate(message) => ApiError::bad_request("empty_update", message),
            EngineError::UnknownTemplate {
                field,
                message,
                available_versions,
            } => {
                let e = ApiError::bad_request("unknown_template", message).field(field);
                match available_versions {
                    Some(v) => e.detail("available_versions", json!(v)),
                    None => e,
                }
            }
            EngineError::StepNotInTask { task_id, step_id } => ApiError::not_found(
                "not_found",
                format!("step {step_id} not found in task {task_id}"),
            )
            .detail("entity", json!("step"))
            .detail("id", json!(step_id))
            .detail("task_id", json!(task_id)),
            EngineError::LeaseLost(step) => {
                ApiError::conflict("lease_lost", EngineError::LeaseLost(step).to_string())
                    .detail("step_id", json!(step))
            }
            EngineError::UnknownSchedule(name) => ApiError::not_found(
                "not_found",
                EngineError::UnknownSchedule(name.clone()).to_string(),
            )
            .detail("entity", json!("schedule"))
            .detail("name", json!(name)),
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_prefixes_the_field() {
        let e = ApiError::bad_request("x", "y")
            .field("name")
            .in_envelope(Some("task"));
        assert_eq!(e.details["field"], "task.name");
        let e = ApiError::bad_request("x", "y").in_envelope(Some("task"));
        assert!(!e.details.contains_key("field"));
    }

    #[test]
    fn internal_message_is_opaque() {
        let e = ApiError::internal("disk on fire");
        assert!(!e.message().contains("disk"));
        let res = e.into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            res.extensions()
                .get::<InternalDetail>()
                .map(|d| d.0.as_str()),
            Some("disk on fire")
        );
    }
}
