//! What the analytics reports contain (serialised as the REST answers).

use super::Scope;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// How much history a report was computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sample {
    /// Tasks read.
    pub tasks: u64,
    /// Steps read.
    pub steps: u64,
    /// True when a cap cut the sample: the figures are those of the newest tasks.
    pub truncated: bool,
    /// The cap on tasks read.
    pub max_tasks: u32,
}

/// Percentiles of a set of durations, in milliseconds (nearest rank).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Durations {
    /// How many durations.
    pub count: u64,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Mean.
    pub mean_ms: Option<f64>,
    /// Longest.
    pub max_ms: Option<f64>,
}

/// Task figures of a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskFigures {
    /// Tasks created in the period (in the sample).
    pub created: u64,
    /// Of those, in a final state (complete, error, cancelled, resolved_manually).
    pub finished: u64,
    /// `complete` or `resolved_manually`.
    pub completed: u64,
    /// `error`.
    pub errored: u64,
    /// `cancelled`.
    pub cancelled: u64,
    /// `pending` or `in_progress`.
    pub open: u64,
    /// completed / finished (None when nothing finished).
    pub completion_rate: Option<f64>,
    /// errored / finished (None when nothing finished).
    pub error_rate: Option<f64>,
    /// Finished tasks per hour of the period.
    pub throughput_per_hour: f64,
    /// Creation to final state, of finished tasks.
    pub duration: Durations,
}

/// Step figures of one group (all steps, a handler kind, a step name).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepFigures {
    /// Steps.
    pub steps: u64,
    /// `complete` (or `resolved_manually`).
    pub completed: u64,
    /// `error`.
    pub errored: u64,
    /// errored / (completed + errored) (None when neither).
    pub error_rate: Option<f64>,
    /// Attempts beyond the first, summed.
    pub retries: u64,
    /// Steps that needed more than one attempt.
    pub retried_steps: u64,
    /// The last attempt's handler time of `complete` steps.
    pub duration: Durations,
}

/// Step figures of one handler kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandlerFigures {
    /// Handler kind.
    pub handler_kind: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: StepFigures,
}

/// Step figures of one step (by name and handler kind).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamedStepFigures {
    /// Step name.
    pub step_name: String,
    /// Handler kind.
    pub handler_kind: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: StepFigures,
}

/// `GET /tasker/analytics/performance`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerformanceReport {
    /// The period, in hours.
    pub period_hours: f64,
    /// Its start: tasks created at or after this.
    pub since: DateTime<Utc>,
    /// When the report was computed.
    pub generated_at: DateTime<Utc>,
    /// What it was computed from.
    pub sample: Sample,
    /// Tasks.
    pub tasks: TaskFigures,
    /// All steps.
    pub steps: StepFigures,
    /// Steps by handler kind, most steps first.
    pub by_handler: Vec<HandlerFigures>,
}

/// `GET /tasker/analytics/bottlenecks`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BottleneckReport {
    /// The tasks covered.
    pub scope: Scope,
    /// The period, in hours.
    pub period_hours: f64,
    /// Its start: tasks created at or after this.
    pub since: DateTime<Utc>,
    /// When the report was computed.
    pub generated_at: DateTime<Utc>,
    /// What it was computed from.
    pub sample: Sample,
    /// Tasks of the scope.
    pub tasks: TaskFigures,
    /// Every step (by name and handler), slowest p95 first.
    pub steps: Vec<NamedStepFigures>,
    /// The (up to) ten slowest steps by p95 duration.
    pub slowest_steps: Vec<NamedStepFigures>,
    /// The (up to) ten steps with the most retries (only steps retried at all).
    pub most_retried_steps: Vec<NamedStepFigures>,
    /// The (up to) ten steps with the highest error rate (only steps that failed).
    pub most_failing_steps: Vec<NamedStepFigures>,
}
