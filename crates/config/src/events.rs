//! `[events]`: the lifecycle event outbox (docs/EVENTS.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Events older than this many days are deleted by the pruner (0 keeps
    /// them forever).
    pub retention_days: u32,
    /// How often the pruner looks for expired events.
    pub prune_interval_seconds: f64,
    /// Events deleted per pruning statement (small: each is one short
    /// transaction, so the hot path never waits long behind it).
    pub prune_batch_size: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_days: 7,
            prune_interval_seconds: 60.0,
            prune_batch_size: 500,
        }
    }
}

impl EventsConfig {
    /// Problems as (key, value, what is wrong, how to fix it).
    pub fn problems(&self) -> Vec<(&'static str, Value, String, &'static str)> {
        let mut out = Vec::new();
        if self.retention_days > 3650 {
            out.push((
                "events.retention_days",
                self.retention_days.into(),
                "must be at most 3650 (ten years)".to_string(),
                "use 7, or 0 to keep events forever",
            ));
        }
        if let Err(m) = crate::rules::positive_seconds(self.prune_interval_seconds) {
            out.push((
                "events.prune_interval_seconds",
                self.prune_interval_seconds.into(),
                m,
                "use 60",
            ));
        }
        if self.prune_batch_size == 0 || self.prune_batch_size > 10_000 {
            out.push((
                "events.prune_batch_size",
                self.prune_batch_size.into(),
                "must be between 1 and 10000".to_string(),
                "use 500",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_values_name_their_key() {
        assert!(EventsConfig::default().problems().is_empty());
        let bad = EventsConfig {
            retention_days: 5000,
            prune_interval_seconds: 0.0,
            prune_batch_size: 0,
        };
        let keys: Vec<&str> = bad.problems().iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                "events.retention_days",
                "events.prune_interval_seconds",
                "events.prune_batch_size"
            ]
        );
    }
}
