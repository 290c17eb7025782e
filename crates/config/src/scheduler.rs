//! `[scheduler]`: the schedule loop of every worker process
//! (docs/FLOW_CONTROL.md, "Schedules").

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[scheduler]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Worker processes run the schedule loop (any number of them may: a
    /// tick creates one task).
    pub enabled: bool,
    /// Longest sleep between passes: a schedule created or resumed by
    /// another process is seen within this time.
    pub poll_interval_seconds: f64,
    /// How far back `catch_up = latest | all` look for missed ticks, for
    /// schedules that set no `catch_up_window_seconds`.
    pub catch_up_window_seconds: f64,
    /// Under `catch_up = none`, a tick found later than this after its time
    /// is skipped.
    pub late_after_seconds: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            poll_interval_seconds: 15.0,
            catch_up_window_seconds: 3600.0,
            late_after_seconds: 60.0,
        }
    }
}

impl SchedulerConfig {
    /// Problems as (key, value, what is wrong, how to fix it).
    pub fn problems(&self) -> Vec<(&'static str, Value, String, &'static str)> {
        let mut out = Vec::new();
        let checks = [
            (
                "scheduler.poll_interval_seconds",
                self.poll_interval_seconds,
                "use 15",
            ),
            (
                "scheduler.catch_up_window_seconds",
                self.catch_up_window_seconds,
                "use 3600",
            ),
            (
                "scheduler.late_after_seconds",
                self.late_after_seconds,
                "use 60",
            ),
        ];
        for (key, v, fix) in checks {
            if let Err(m) = crate::rules::positive_seconds(v) {
                out.push((key, v.into(), m, fix));
            }
        }
        let max = tasker_core::schedule::MAX_CATCH_UP_WINDOW_SECONDS as f64;
        if self.catch_up_window_seconds > max {
            out.push((
                "scheduler.catch_up_window_seconds",
                self.catch_up_window_seconds.into(),
                format!("must be at most {max} (30 days)"),
                "use 3600",
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
        assert!(SchedulerConfig::default().problems().is_empty());
        let bad = SchedulerConfig {
            enabled: true,
            poll_interval_seconds: 0.0,
            catch_up_window_seconds: 1e9,
            late_after_seconds: -1.0,
        };
        let keys: Vec<&str> = bad.problems().iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                "scheduler.poll_interval_seconds",
                "scheduler.late_after_seconds",
                "scheduler.catch_up_window_seconds"
            ]
        );
    }
}
