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
    /// Waiting for a task took too long.
    #[error("timed out waiting for task {0}")]
    WaitTimeout(uuid::Uuid),
}
