//! The task execution context: what a task's step counts say about it
//! (reference §3.2), and the finaliser's decision.
//!
//! Differences from the reference, on purpose:
//! - A step in `error` has used all its attempts: a retryable failure goes
//!   straight back to `pending` with a `ready_at` in the future (Q1). Those are
//!   counted as `retrying`.
//! - A task is `blocked_by_failures` only once nothing else can move: no step
//!   ready, running or waiting out a backoff. The reference declared a task
//!   blocked while other branches were still retrying.
//! - A cancelled step blocks its dependants like an exhausted failure.
//!
//! # The finaliser rule
//!
//! This is the one statement of the rule that moves a task when its steps
//! move; the SQLite triggers (`tasks_settle` in
//! `store-sqlite/migrations/…_triggers.sql`, see `store-sqlite/src/effects.rs`)
//! and the PostgreSQL settle code (`store-postgres/src/settle.rs`, which calls
//! [`finalise`]) implement it, and the conformance test
//! `tasker_store::conformance::finaliser::finaliser_table` pins it on both stores.
//!
//! Each task keeps three counters, updated in the same transaction as its steps:
//! `remaining` (steps not `complete` / `resolved_manually`), `live` (steps
//! `in_progress`, or `pending` with a `ready_at`: ready now or waiting out a
//! backoff) and `blocked` (steps in `error` or `cancelled`). After every change:
//!
//! | task status | condition | new status |
//! |---|---|---|
//! | `pending` / `in_progress` | `remaining = 0` | `complete` (a `pending` task is recorded as `pending → in_progress → complete`) |
//! | `pending` / `in_progress` | `remaining > 0`, `live = 0`, `blocked > 0` | `error`: nothing can move any more |
//! | `error` | `remaining = 0` (an operator resolved the last blockers) | `resolved_manually` |
//! | `error` | `remaining > 0`, `live > 0` (an operator retried a step) | `pending` |
//! | anything else | | unchanged |
//!
//! Entering `complete`, `error` or `resolved_manually` stamps `completed_at`;
//! going back to `pending` clears it. `cancelled`, `complete` and
//! `resolved_manually` tasks never move (cancelling a task moves its open steps
//! after the task, so the finaliser leaves it alone). The view rule of
//! [`ExecutionContext::from_counts`] agrees: `all_complete` is `remaining = 0`,
//! `blocked_by_failures` is "something blocked and nothing live".

use crate::state::TaskState;
use serde::{Deserialize, Serialize};

/// The finaliser rule (see the module docs): the state a task in `status`
/// moves to given its counters, or `None` when it stays.
pub fn finalise(status: TaskState, remaining: i64, live: i64, blocked: i64) -> Option<TaskState> {
    use TaskState::*;
    match status {
        Pending | InProgress if remaining <= 0 => Some(Complete),
        Pending | InProgress if live <= 0 && blocked > 0 => Some(Error),
        Error if remaining <= 0 => Some(ResolvedManually),
        Error if live > 0 => Some(Pending),
        _ => None,
    }
}

/// Counts of a task's steps by situation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    /// All steps.
    pub total: u64,
    /// `pending` steps (ready, waiting for parents, or waiting for a retry).
    pub pending: u64,
    /// Pending steps whose parents are done and whose time has come.
    pub ready: u64,
    /// Pending steps whose parents are done, waiting for a backoff to pass.
    pub scheduled: u64,
    /// Pending steps that failed before and will be retried.
    pub retrying: u64,
    /// `in_progress` steps.
    pub in_progress: u64,
    /// `complete` or `resolved_manually` steps.
    pub done: u64,
    /// `error` steps (no attempts left).
    pub failed: u64,
    /// `cancelled` steps.
    pub cancelled: u64,
}

/// Where the task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Some steps can run now.
    HasReadySteps,
    /// Steps are running.
    Processing,
    /// Failures (or cancellations) block completion and nothing else can move.
    BlockedByFailures,
    /// Every step is done.
    AllComplete,
    /// Waiting for backoffs or parents.
    WaitingForDependencies,
}

/// What to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendedAction {
    /// Run the ready steps.
    ExecuteReadySteps,
    /// Wait for running steps.
    WaitForCompletion,
    /// An operator must retry, resolve or cancel.
    HandleFailures,
    /// Mark the task complete.
    FinalizeTask,
    /// Wait for backoffs or parents.
    WaitForDependencies,
}

/// How healthy the task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// No failures.
    Healthy,
    /// Failures, but retries or other work remain.
    Recovering,
    /// Failures block completion.
    Blocked,
}

/// The derived view of a task.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExecutionContext {
    /// The counts it was derived from.
    pub counts: StepCounts,
    /// Where the task stands.
    pub execution_status: ExecutionStatus,
    /// What to do.
    pub recommended_action: RecommendedAction,
    /// Done steps as a percentage of all steps, two decimals.
    pub completion_percentage: f64,
    /// Health.
    pub health_status: HealthStatus,
}

impl ExecutionContext {
    /// Derives the context from step counts.
    pub fn from_counts(c: StepCounts) -> Self {
        let blockers = c.failed + c.cancelled;
        let quiet = c.ready == 0 && c.in_progress == 0 && c.scheduled == 0;
        let (execution_status, recommended_action) = if c.ready > 0 {
            (
                ExecutionStatus::HasReadySteps,
                RecommendedAction::ExecuteReadySteps,
            )
        } else if c.in_progress > 0 {
            (
                ExecutionStatus::Processing,
                RecommendedAction::WaitForCompletion,
            )
        } else if blockers > 0 && quiet {
            (
                ExecutionStatus::BlockedByFailures,
                RecommendedAction::HandleFailures,
            )
        } else if c.total > 0 && c.done == c.total {
            (
                ExecutionStatus::AllComplete,
                RecommendedAction::FinalizeTask,
            )
        } else {
            (
                ExecutionStatus::WaitingForDependencies,
                RecommendedAction::WaitForDependencies,
            )
        };
        let completion_percentage = if c.total == 0 {
            0.0
        } else {
            (c.done as f64 / c.total as f64 * 10_000.0).round() / 100.0
        };
        let health_status = if blockers > 0 && quiet {
            HealthStatus::Blocked
        } else if c.failed > 0 || c.retrying > 0 {
            HealthStatus::Recovering
        } else {
            HealthStatus::Healthy
        };
        ExecutionContext {
            counts: c,
            execution_status,
            recommended_action,
            completion_percentage,
            health_status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The finaliser table of the module docs, row by row.
    #[test]
    fn finaliser_rule() {
        use TaskState::*;
        // (status, remaining, live, blocked) -> new status
        let table = [
            ((Pending, 0, 0, 0), Some(Complete)),
            ((InProgress, 0, 0, 0), Some(Complete)),
            ((InProgress, 2, 0, 1), Some(Error)),
            ((Pending, 1, 0, 1), Some(Error)),
            ((InProgress, 2, 1, 1), None),
            ((InProgress, 2, 0, 0), None),
            ((InProgress, 2, 2, 0), None),
            ((Error, 0, 0, 0), Some(ResolvedManually)),
            ((Error, 1, 1, 0), Some(Pending)),
            ((Error, 1, 0, 1), None),
            ((Complete, 1, 1, 1), None),
            ((Cancelled, 0, 0, 0), None),
            ((Cancelled, 1, 0, 1), None),
            ((ResolvedManually, 1, 1, 0), None),
        ];
        for ((s, r, l, b), want) in table {
            assert_eq!(finalise(s, r, l, b), want, "{s} r={r} l={l} b={b}");
        }
    }

    fn ctx(c: StepCounts) -> ExecutionContext {
        ExecutionContext::from_counts(c)
    }

    #[test]
    fn empty_task_waits_and_is_healthy() {
        let x = ctx(StepCounts::default());
        assert_eq!(x.execution_status, ExecutionStatus::WaitingForDependencies);
        assert_eq!(x.health_status, HealthStatus::Healthy);
        assert_eq!(x.completion_percentage, 0.0);
    }

    #[test]
    fn precedence_ready_then_processing_then_blocked_then_complete() {
        let base = StepCounts {
            total: 4,
            ..Default::default()
        };
        let ready = ctx(StepCounts {
            ready: 1,
            pending: 1,
            in_progress: 1,
            failed: 1,
            done: 1,
            ..base
        });
        assert_eq!(ready.execution_status, ExecutionStatus::HasReadySteps);
        assert_eq!(ready.health_status, HealthStatus::Recovering);
        let running = ctx(StepCounts {
            in_progress: 1,
            failed: 1,
            done: 2,
            ..base
        });
        assert_eq!(running.execution_status, ExecutionStatus::Processing);
        let blocked = ctx(StepCounts {
            failed: 1,
            done: 2,
            pending: 1,
            ..base
        });
        assert_eq!(blocked.execution_status, ExecutionStatus::BlockedByFailures);
        assert_eq!(
            blocked.recommended_action,
            RecommendedAction::HandleFailures
        );
        assert_eq!(blocked.health_status, HealthStatus::Blocked);
        let done = ctx(StepCounts { done: 4, ..base });
        assert_eq!(done.execution_status, ExecutionStatus::AllComplete);
        assert_eq!(done.recommended_action, RecommendedAction::FinalizeTask);
        assert_eq!(done.completion_percentage, 100.0);
    }

    #[test]
    fn failure_with_retry_in_backoff_elsewhere_is_not_blocked() {
        let c = StepCounts {
            total: 3,
            failed: 1,
            pending: 1,
            scheduled: 1,
            retrying: 1,
            done: 1,
            ..Default::default()
        };
        let x = ctx(c);
        assert_eq!(x.execution_status, ExecutionStatus::WaitingForDependencies);
        assert_eq!(x.health_status, HealthStatus::Recovering);
    }

    #[test]
    fn percentage_rounds_to_two_decimals() {
        let x = ctx(StepCounts {
            total: 3,
            done: 1,
            pending: 2,
            ..Default::default()
        });
        assert_eq!(x.completion_percentage, 33.33);
    }

    proptest! {
        #[test]
        fn percentage_in_range(total in 1u64..10_000, done_frac in 0.0f64..=1.0) {
            let done = ((total as f64) * done_frac) as u64;
            let x = ctx(StepCounts { total, done, pending: total - done, ..Default::default() });
            prop_assert!((0.0..=100.0).contains(&x.completion_percentage));
            prop_assert_eq!(x.execution_status == ExecutionStatus::AllComplete, done == total);
        }
    }
}
