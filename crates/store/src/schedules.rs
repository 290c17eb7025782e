//! Schedules as stored (docs/FLOW_CONTROL.md, "Schedules").
//!
//! A schedule row holds its [`ScheduleSpec`], whether it is paused, its
//! `anchor` (where an interval counts from and before which no tick fires)
//! and `last_tick_at`, the newest tick settled: fired, or skipped by a
//! resume. A tick's identity is `(schedule_id, scheduled_for)`: firing it
//! inserts that key (unique) and creates its task in one transaction, so
//! of any number of processes racing on one tick exactly one creates a task.

use crate::NewTask;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tasker_core::schedule::ScheduleSpec;
use uuid::Uuid;

/// Where a schedule was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleSource {
    /// `POST /tasker/schedules` (or the library).
    Api,
    /// A template file's `schedules:` (written again at every start).
    Template,
}

impl ScheduleSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleSource::Api => "api",
            ScheduleSource::Template => "template",
        }
    }

    /// Parses [`ScheduleSource::as_str`] (anything else is `api`).
    pub fn parse(s: &str) -> ScheduleSource {
        if s == "template" {
            ScheduleSource::Template
        } else {
            ScheduleSource::Api
        }
    }
}

/// A schedule to store.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// Id for a new row (kept by an existing one when replaced).
    pub id: Uuid,
    /// The definition, already checked ([`ScheduleSpec::compile`]).
    pub spec: ScheduleSpec,
    /// Where it comes from.
    pub source: ScheduleSource,
    /// Now: `created_at`, and the anchor of a new schedule (whole seconds).
    pub now: DateTime<Utc>,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleRow {
    /// Id.
    pub id: Uuid,
    /// The definition.
    pub spec: ScheduleSpec,
    /// Where it was defined.
    pub source: ScheduleSource,
    /// Since when it is paused (`None`: running).
    pub paused_at: Option<DateTime<Utc>>,
    /// Intervals count from here; no tick at or before it fires.
    pub anchor: DateTime<Utc>,
    /// The newest tick fired (or skipped by a resume).
    pub last_tick_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Firing one tick: its identity and the task it creates.
#[derive(Debug, Clone)]
pub struct ScheduleFire {
    /// The schedule.
    pub schedule_id: Uuid,
    /// The tick's time (its identity, with the schedule).
    pub scheduled_for: DateTime<Utc>,
    /// A `trigger` by hand: fires even while paused and does not move
    /// `last_tick_at`.
    pub manual: bool,
    /// The task to create (`task.now` is when it was fired).
    pub task: NewTask,
}

/// A fired tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickRow {
    /// The schedule.
    pub schedule_id: Uuid,
    /// The tick's time.
    pub scheduled_for: DateTime<Utc>,
    /// Fired by hand.
    pub manual: bool,
    /// The task it created.
    pub task_id: Uuid,
    /// When it was fired.
    pub fired_at: DateTime<Utc>,
}

/// Whether a (non-manual) tick may still fire on a schedule in this state:
/// not paused, and newer than the newest settled tick. Both backends check
/// it under the schedule's row lock, so a late process cannot fire a tick
/// another already passed.
pub fn tick_allowed(
    paused: bool,
    last_tick_at: Option<DateTime<Utc>>,
    scheduled_for: DateTime<Utc>,
) -> bool {
    !paused && last_tick_at.is_none_or(|last| scheduled_for > last)
}

/// Pausing twice or resuming a running schedule is a conflict (both stores).
pub fn check_pause(s: &ScheduleRow, pause: bool) -> crate::StoreResult<()> {
    match (pause, s.paused_at.is_some()) {
        (true, true) => Err(crate::StoreError::Conflict(format!(
            "schedule `{}` is already paused",
            s.spec.name
        ))),
        (false, false) => Err(crate::StoreError::Conflict(format!(
            "schedule `{}` is not paused",
            s.spec.name
        ))),
        _ => Ok(()),
    }
}
