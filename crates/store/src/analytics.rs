//! What the analytics reads take and return: the ready queue's depth (for
//! the metrics scrape) and a bounded sample of recent history (for
//! `/tasker/analytics/*`).
//!
//! Both are bounded by construction: the queue count stops at a cap, and
//! the history sample examines at most `scan_limit` of the newest tasks
//! created in a window (a backward range of the `tasks (created_at)` index),
//! keeps the newest `max_tasks` of the asked template, and reads their
//! steps (by `steps (task_id, position)`), so its cost follows the caps,
//! never the whole history.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The ready queue at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Steps with `ready_at <= now` (claimable), at most the cap asked for.
    pub ready: u64,
    /// The oldest `ready_at` among them.
    pub oldest_ready_at: Option<DateTime<Utc>>,
}

/// Which history an analytics read covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Tasks created at or after this.
    pub since: DateTime<Utc>,
    /// Only this template namespace.
    pub namespace: Option<String>,
    /// Only this template name.
    pub name: Option<String>,
    /// Only this template version.
    pub version: Option<String>,
    /// At most this many tasks (the newest matching), with all their steps.
    pub max_tasks: u32,
    /// At most this many of the window's newest tasks are examined for the
    /// template filters (so a rare template cannot turn the read into a
    /// walk of the whole window); at least `max_tasks` is used.
    pub scan_limit: u32,
}

/// One step of a sampled task, with its task's figures repeated.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryStep {
    /// The task.
    pub task_id: Uuid,
    /// The task's state.
    pub task_status: String,
    /// When the task was created.
    pub task_created_at: DateTime<Utc>,
    /// When the task reached its final state (None while open).
    pub task_completed_at: Option<DateTime<Utc>>,
    /// Step name.
    pub step_name: String,
    /// Handler kind.
    pub handler_kind: String,
    /// Step state.
    pub step_status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the last attempt was claimed.
    pub last_attempted_at: Option<DateTime<Utc>>,
    /// When the step completed (None unless complete or resolved).
    pub step_completed_at: Option<DateTime<Utc>>,
}
