use crate::handler::{StepContext, StepError, StepHandler};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::time::Duration;

/// Longest sleep a step may ask for (one day): long enough for any test of
/// timing, short enough that no timer arithmetic can overflow.
pub const MAX_SLEEP_SECONDS: f64 = 24.0 * 3600.0;

/// Waits, then succeeds: `config: { seconds: 1.5 }` or `{ milliseconds: 200 }`.
/// Results: `{ "slept_ms": n }`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

impl Sleep {
    /// How long a step with this `config` sleeps, or why the config is unusable.
    /// Checked when templates are validated and again before each sleep.
    pub fn duration(config: &Value) -> Result<Duration, String> {
        let number = |key: &str, v: &Value| {
            v.as_f64()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("sleep: config.{key} must be a non-negative number"))
        };
        let seconds = match config {
            Value::Null => 0.0,
            Value::Object(m) => {
                if let Some(k) = m.keys().find(|k| *k != "seconds" && *k != "milliseconds") {
                    return Err(format!(
                        "sleep: unknown config key `{k}` (use `seconds` or `milliseconds`)"
                    ));
                }
                match (m.get("seconds"), m.get("milliseconds")) {
                    (Some(_), Some(_)) => {
                        return Err(
                            "sleep: give config.seconds or config.milliseconds, not both".into(),
                        );
                    }
                    (Some(s), None) => number("seconds", s)?,
                    (None, Some(ms)) => number("milliseconds", ms)? / 1000.0,
                    (None, None) => 0.0,
                }
            }
            _ => return Err("sleep: config must be an object like { seconds: 1.5 }".into()),
        };
        if seconds > MAX_SLEEP_SECONDS {
            return Err(format!(
                "sleep: {seconds} seconds is longer than the limit of {MAX_SLEEP_SECONDS} (one day)"
            ));
        }
        Duration::try_from_secs_f64(seconds).map_err(|e| format!("sleep: {e}"))
    }
}

#[async_trait]
impl StepHandler for Sleep {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        let d = Sleep::duration(&step.config).map_err(StepError::permanent)?;
        tokio::time::sleep(d).await;
        Ok(json!({ "slept_ms": d.as_secs_f64() * 1000.0 }))
    }

    fn check_config(&self, config: &Value) -> Result<(), String> {
        Sleep::duration(config).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::Sleep;
    use serde_json::json;

    #[test]
    fn configs_that_would_overflow_a_timer_are_refused() {
        assert!(Sleep::duration(&json!({"seconds": 1e20})).is_err());
        assert!(Sleep::duration(&json!({"milliseconds": -1})).is_err());
        assert!(Sleep::duration(&json!({"secnds": 1})).is_err());
        assert!(Sleep::duration(&json!("5")).is_err());
        assert_eq!(
            Sleep::duration(&json!({"milliseconds": 250}))
                .unwrap()
                .as_millis(),
            250
        );
        assert!(Sleep::duration(&serde_json::Value::Null).unwrap().is_zero());
    }
}
