//! Restart a task from a step (docs/FLOW_CONTROL.md): the rules both
//! backends apply, so they refuse the same requests with the same errors.
//!
//! The chosen step and every step downstream of it go back to `pending`
//! with a fresh attempt budget (`max_attempts = attempts + retry_limit`),
//! their results and errors cleared; steps upstream keep their results.
//! The task goes back to `pending`. This is the one operator override of
//! "finished states are final": it is recorded as transitions (task and
//! steps) with metadata `{"action": "restart", "step", "by", "reason"}`.

use crate::StoreError;
use serde_json::{Map, Value};
use tasker_core::{InvalidTransition, TaskState};

/// Whether a task in `status` may be restarted: finished or failed only.
pub fn check_restart(status: TaskState) -> Result<(), StoreError> {
    if matches!(status, TaskState::Pending | TaskState::InProgress) {
        return Err(InvalidTransition {
            entity: "task",
            from: status.to_string(),
            to: "pending".to_string(),
            reason: Some(
                "a running task cannot be restarted from a step: wait for it to finish, or cancel it first",
            ),
        }
        .into());
    }
    Ok(())
}

/// The refusal of a restart point whose parents are not all done.
pub fn parents_not_done(step: &str, parents: &[String]) -> StoreError {
    StoreError::Conflict(format!(
        "step `{step}` waits for {} that did not finish: restart from there instead",
        parents
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The metadata of every transition a restart writes.
pub fn metadata(step: &str, by: Option<&str>, reason: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("action".into(), "restart".into());
    m.insert("step".into(), step.into());
    if let Some(by) = by {
        m.insert("by".into(), by.into());
    }
    if let Some(reason) = reason {
        m.insert("reason".into(), reason.into());
    }
    Value::Object(m)
}
