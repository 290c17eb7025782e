//! The one error type that leaves a backend. `sqlx::Error` never does.

use uuid::Uuid;

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The task or step does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// `task` or `step`.
        entity: &'static str,
        /// Its id.
        id: Uuid,
    },
    /// The state machine forbids the change.
    #[error(transparent)]
    InvalidTransition(#[from] tasker_core::InvalidTransition),
    /// A task with the same identity hash exists inside the window.
    #[error("a task with the same identity already exists: {existing}")]
    DuplicateTask {
        /// The existing task.
        existing: Uuid,
    },
    /// The request conflicts with the current state (e.g. editing a running step).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A value the database cannot store (a NUL character in text or JSON,
    /// PostgreSQL's SQLSTATE class 22). Not transient: the same value fails
    /// again. Both backends refuse the same values (see [`crate::storable`]).
    #[error("value cannot be stored: {0}")]
    InvalidData(String),
    /// The database cannot be reached (connection refused, pool timed out, shutting down).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else from the database (a bug, a corrupt row).
    #[error("database error: {0}")]
    Internal(String),
}

impl StoreError {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// The stable machine code interfaces report (REST `error.code`, GraphQL `code`).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::InvalidTransition(_) => "invalid_transition",
            StoreError::DuplicateTask { .. } => "duplicate_task",
            StoreError::Conflict(_) => "conflict",
            StoreError::InvalidData(_) => "invalid_value",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Internal(_) => "internal_error",
        }
    }

    /// Whether the cause is the server's, not the request's: interfaces
    /// log the message and show an opaque one.
    pub fn is_internal(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Internal(_))
    }
}
