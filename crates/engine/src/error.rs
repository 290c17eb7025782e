//! Errors of the application service.

use tasker_core::registry::RegistryError;
use tasker_core::template::{ContextViolation, TemplateErrors};
use tasker_store::StoreError;

/// What can go wrong when asking the engine to do something.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Templates failed to load or validate.
    #[error("{0}")]
    Template(#[from] TemplateErrors),
    /// Registration or lookup failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The task context does not satisfy the template's schema.
    #[error("context does not match the template's schema: {}", .0.iter().map(|v| format!("{} {}", if v.path.is_empty() { "/" } else { &v.path }, v.message)).collect::<Vec<_>>().join("; "))]
    InvalidContext(Vec<ContextViolation>),
    /// A request field is wrong.
    #[error("{field}: {message}")]
    InvalidField {
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A query parameter (paging, filter) is wrong.
    #[error("{field}: {message}")]
    InvalidParameter {
        /// Parameter name.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An edit that changes nothing.
    #[error("{0}")]
    EmptyUpdate(&'static str),
    /// A task request names a template that does not exist: `field` says
    /// which part (`namespace`, `name` or `version`) matched nothing.
    #[error("{message}")]
    UnknownTemplate {
        /// `namespace`, `name` or `version`.
        field: &'static str,
        /// What matched nothing.
        message: String,
        /// The versions that exist when only the version is wrong.
        available_versions: Option<Vec<String>>,
    },
    /// The step exists but belongs to another task.
    #[error("step {step_id} not found in task {task_id}")]
    StepNotInTask {
        /// The task asked about.
        task_id: uuid::Uuid,
        /// The step asked for.
        step_id: uuid::Uuid,
    },
    /// Steps use handler kinds nobody registered.
    #[error("template {template} uses unknown handler kind(s): {}", kinds.join(", "))]
    UnknownHandlerKinds {
        /// Template full name.
        template: String,
        /// Missing kinds.
        kinds: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The step's lease expired or was revoked (rescued, cancelled, finished): the result is rejected.
    #[error(
        "the lease on step {0} is no longer held (it expired, or the step was rescued, cancelled or finished)"
    )]
    LeaseLost(uuid::Uuid),
    /// Pruned tasks could not be archived (nothing was deleted).
    #[error("archive: {0}")]
    Archive(String),
    /// No schedule has this name.
    #[error("schedule `{0}` not found")]
    UnknownSchedule(String),
    /// Waiting for a task took too long.
    #[error("timed out waiting for task {0}")]
    WaitTimeout(uuid::Uuid),
}

impl EngineError {
    /// The stable machine code every interface reports for this error
    /// (REST `error.code`, GraphQL `UserError.code` / `extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Template(_) => "invalid_template",
            EngineError::Registry(RegistryError::NotFound { .. }) => "template_not_found",
            EngineError::Registry(_) => "invalid_template",
            EngineError::InvalidContext(_) => "context_schema_violation",
            EngineError::InvalidField { .. } => "invalid_field",
            EngineError::InvalidParameter { .. } => "invalid_parameter",
            EngineError::EmptyUpdate(_) => "empty_update",
            EngineError::UnknownTemplate { .. } => "unknown_template",
            EngineError::StepNotInTask { .. } => "not_found",
            EngineError::UnknownHandlerKinds { .. } => "unknown_handler_kinds",
            EngineError::Store(s) => s.code(),
            EngineError::LeaseLost(_) => "lease_lost",
            EngineError::Archive(_) => "archive_failed",
            EngineError::WaitTimeout(_) => "timeout",
            EngineError::UnknownSchedule(_) => "not_found",
        }
    }

    /// The input at fault, when one is to blame.
    pub fn field(&self) -> Option<String> {
        match self {
            EngineError::InvalidField { field, .. }
            | EngineError::InvalidParameter { field, .. } => Some(field.clone()),
            EngineError::UnknownTemplate { field, .. } => Some((*field).to_string()),
            EngineError::InvalidContext(_) => Some("context".into()),
            _ => None,
        }
    }

    /// Whether the cause is the server's (a bug, the database): its message
    /// is logged, and interfaces show an opaque one instead.
    pub fn is_internal(&self) -> bool {
        match self {
            EngineError::Store(s) => s.is_internal(),
            EngineError::UnknownHandlerKinds { .. }
            | EngineError::Archive(_)
            | EngineError::WaitTimeout(_) => true,
            _ => false,
        }
    }
}
