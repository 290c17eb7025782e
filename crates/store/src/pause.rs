//! Pause / resume rules shared by both backends (docs/FLOW_CONTROL.md).
//!
//! Pausing is a flag, not a task state: the task keeps its status and
//! counters (so the finaliser rule is untouched), its steps leave the ready
//! index, running ones finish, and resuming puts them back. The checks live
//! here so both stores refuse the same requests with the same errors.

use crate::{StoreError, StoreResult};
use serde_json::{Value, json};
use tasker_core::{InvalidTransition, TaskState};
use uuid::Uuid;

/// Whether a task in `status` (paused or not) may be paused now.
pub fn check_pause(id: Uuid, status: TaskState, paused: bool) -> StoreResult<()> {
    if status.is_terminal() {
        return Err(InvalidTransition {
            entity: "task",
            from: status.to_string(),
            to: "paused".to_string(),
            reason: Some("a finished task cannot be paused"),
        }
        .into());
    }
    if paused {
        return Err(StoreError::Conflict(format!("task {id} is already paused")));
    }
    Ok(())
}

/// Whether a task may be resumed now (it must be paused).
pub fn check_resume(id: Uuid, paused: bool) -> StoreResult<()> {
    if !paused {
        return Err(StoreError::Conflict(format!("task {id} is not paused")));
    }
    Ok(())
}

/// The metadata of the transition a pause (`"pause"`) or resume
/// (`"resume"`) writes: the task's state does not change, so the action is
/// named, with who asked when known.
pub fn action_metadata(action: &str, by: Option<&str>) -> Value {
    match by {
        Some(by) => json!({ "action": action, "by": by }),
        None => json!({ "action": action }),
    }
}
