//! Pausing a whole namespace or template in the service layer
//! (docs/FLOW_CONTROL.md): the request rules, then the store. REST, GraphQL
//! and the CLI all come through here.

use crate::error::EngineError;
use crate::service::Tasker;
use tasker_core::template::check_name;
use tasker_store::{FlowPauseRow, FlowScope};

/// Checks a scope's names (`namespace`, `name`).
pub fn check_scope(scope: &FlowScope) -> Result<(), EngineError> {
    check_name(&scope.namespace).map_err(|message| EngineError::InvalidField {
        field: "namespace".into(),
        message,
    })?;
    if let Some(n) = &scope.name {
        check_name(n).map_err(|message| EngineError::InvalidField {
            field: "name".into(),
            message,
        })?;
    }
    Ok(())
}

impl Tasker {
    /// Pauses a namespace or template (`conflict` when it is already).
    pub async fn pause_scope(
        &self,
        scope: &FlowScope,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<FlowPauseRow, EngineError> {
        check_scope(scope)?;
        crate::requests::check_text("reason", reason)?;
        let row = self
            .store()
            .flow_pause(scope, self.now(), by, reason)
            .await?;
        tracing::warn!(scope = %scope.label(), by, reason, "flow paused");
        Ok(row)
    }

    /// Resumes a paused namespace or template (`conflict` when it is not).
    pub async fn resume_scope(
        &self,
        scope: &FlowScope,
        by: Option<&str>,
    ) -> Result<FlowPauseRow, EngineError> {
        check_scope(scope)?;
        let row = self.store().flow_resume(scope).await?;
        tracing::warn!(scope = %scope.label(), by, "flow resumed");
        Ok(row)
    }

    /// Every paused namespace and template.
    pub async fn flow_pauses(&self) -> Result<Vec<FlowPauseRow>, EngineError> {
        Ok(self.store().flow_pauses().await?)
    }
}
