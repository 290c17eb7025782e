//! `[events]`: the lifecycle event outbox (docs/EVENTS.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Events older than this many days are pruned (0 keeps them forever):
    /// deleted, or on SQLite, where a lifecycle event is also its task's
    /// transition, taken out of the feed and kept as history.
    pub retention_days: u32,
    /// How often the pruner looks for expired events.
    pub prune_interval_seconds: f64,
    /// Events deleted per pruning statement (small: each is one short
    /// transaction, so the hot path never waits long behind it).
    pub prune_batch_size: u32,
    /// Webhook requests in flight at once in one process.
    pub webhook_concurrency: u32,
    /// Deliveries claimed per statement (and events fanned out per
    /// subscriber per round).
    pub webhook_batch_size: u32,
    /// How long a claimed delivery is held; after that another process
    /// delivers it again. Requests are cut off before it runs out.
    pub webhook_lease_seconds: f64,
    /// Fallback poll for new events and due retries when no wake-up arrives.
    pub webhook_poll_interval_seconds: f64,
    /// First retry delay of a failed delivery (doubled per attempt, jittered).
    pub webhook_backoff_base_seconds: f64,
    /// Longest retry delay (also the cap on a receiver's `Retry-After`).
    pub webhook_backoff_max_seconds: f64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_days: 7,
            prune_interval_seconds: 60.0,
            prune_batch_size: 500,
            webhook_concurrency: 32,
            webhook_batch_size: 100,
            webhook_lease_seconds: 60.0,
            webhook_poll_interval_seconds: 0.5,
            webhook_backoff_base_seconds: 1.0,
            webhook_backoff_max_seconds: 300.0,
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
        if !(1..=1024).contains(&self.webhook_concurrency) {
            out.push((
                "events.webhook_concurrency",
                self.webhook_concurrency.into(),
                "must be between 1 and 1024".to_string(),
                "use 32",
            ));
        }
        if !(1..=10_000).contains(&self.webhook_batch_size) {
            out.push((
                "events.webhook_batch_size",
                self.webhook_batch_size.into(),
                "must be between 1 and 10000".to_string(),
                "use 100",
            ));
        }
        for (key, v, fix) in [
            (
                "events.webhook_lease_seconds",
                self.webhook_lease_seconds,
                "use 60",
            ),
            (
                "events.webhook_poll_interval_seconds",
                self.webhook_poll_interval_seconds,
                "use 0.5",
            ),
            (
                "events.webhook_backoff_base_seconds",
                self.webhook_backoff_base_seconds,
                "use 1",
            ),
            (
                "events.webhook_backoff_max_seconds",
                self.webhook_backoff_max_seconds,
                "use 300",
            ),
        ] {
            if let Err(m) = crate::rules::positive_seconds(v) {
                out.push((key, v.into(), m, fix));
            }
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
            ..EventsConfig::default()
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
