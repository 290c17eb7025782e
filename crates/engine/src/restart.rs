//! Restart a task from a step, in the service layer (docs/FLOW_CONTROL.md):
//! the request rules (a known step name, a short reason), then the store.

use crate::error::EngineError;
use crate::service::Tasker;
use tasker_store::TaskRow;
use uuid::Uuid;

impl Tasker {
    /// Re-runs a finished or failed task from its step `step`: that step
    /// and everything downstream get fresh attempts, upstream results are
    /// kept. An unknown step name is `invalid_field` (`step`, listing the
    /// task's steps); a running task `invalid_transition`.
    pub async fn restart_task(
        &self,
        task_id: Uuid,
        step: &str,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<TaskRow, EngineError> {
        crate::requests::check_text("reason", reason)?;
        let steps = self.store().step_list(task_id).await?;
        if steps.is_empty() {
            // step_list of an unknown task is empty: say which is missing.
            self.store().task_get(task_id).await?;
        }
        let Some(target) = steps.iter().find(|s| s.name == step) else {
            return Err(EngineError::InvalidField {
                field: "step".into(),
                message: format!(
                    "task {task_id} has no step `{step}` (its steps: {})",
                    steps
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let row = self
            .store()
            .task_restart(task_id, target.id, self.now(), by, reason)
            .await?;
        tracing::info!(task_id = %task_id, step, by, reason, "task restarted");
        Ok(row)
    }
}
