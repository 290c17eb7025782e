//! Pausing a whole namespace or template (docs/FLOW_CONTROL.md): the
//! incident switch. No new step of the scope starts (its open tasks' steps
//! leave the ready queue; running ones finish), tasks created meanwhile
//! wait too, and resuming puts back only what no other pause holds: a task
//! paused by itself stays paused.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a pause covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowScope {
    /// The namespace.
    pub namespace: String,
    /// One template of it (by name, all versions), or `None` for all.
    pub name: Option<String>,
}

impl FlowScope {
    /// The stored form of `name` (`''` for the whole namespace).
    pub fn name_key(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// `namespace` or `namespace.name`, for messages.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("template {}.{}", self.namespace, n),
            None => format!("namespace {}", self.namespace),
        }
    }
}

/// A paused scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowPauseRow {
    /// What it covers.
    pub scope: FlowScope,
    /// Since when.
    pub paused_at: DateTime<Utc>,
    /// Who paused it.
    pub paused_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

impl FlowPauseRow {
    /// Whether this pause holds tasks of template `namespace.name`.
    pub fn covers(&self, namespace: &str, name: &str) -> bool {
        self.scope.namespace == namespace && self.scope.name.as_deref().is_none_or(|n| n == name)
    }
}

/// The pause among `pauses` that holds template `namespace.name`, the
/// namespace's first (it is the wider one).
pub fn covering<'a>(
    pauses: &'a [FlowPauseRow],
    namespace: &str,
    name: &str,
) -> Option<&'a FlowPauseRow> {
    pauses
        .iter()
        .filter(|p| p.covers(namespace, name))
        .min_by_key(|p| p.scope.name.is_some())
}

/// The conflict of pausing a paused scope.
pub fn already_paused(scope: &FlowScope) -> crate::StoreError {
    crate::StoreError::Conflict(format!("{} is already paused", scope.label()))
}

/// The conflict of resuming a scope that is not paused.
pub fn not_paused(scope: &FlowScope) -> crate::StoreError {
    crate::StoreError::Conflict(format!("{} is not paused", scope.label()))
}
