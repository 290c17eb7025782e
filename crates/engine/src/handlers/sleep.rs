use crate::handler::{StepContext, StepError, StepHandler};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::time::Duration;

/// Waits, then succeeds: `config: { seconds: 1.5 }` or `{ milliseconds: 200 }`.
/// Results: `{ "slept_ms": n }`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

#[async_trait]
impl StepHandler for Sleep {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        let ms = if let Some(s) = step.config.get("seconds") {
            s.as_f64().map(|s| s * 1000.0)
        } else if let Some(ms) = step.config.get("milliseconds") {
            ms.as_f64()
        } else {
            Some(0.0)
        };
        let ms = match ms {
            Some(ms) if ms.is_finite() && ms >= 0.0 => ms,
            _ => {
                return Err(StepError::permanent(
                    "sleep: config.seconds / config.milliseconds must be a non-negative number",
                ));
            }
        };
        tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
        Ok(json!({ "slept_ms": ms }))
    }
}
