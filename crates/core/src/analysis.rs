//! Runtime dependency analysis of one task: where it stands, what blocks it,
//! what could run in parallel, and what an operator should do.
//!
//! This is the pure computation behind `?include_dependencies=true` on the
//! REST API (reference §8.5 and §11). It takes a snapshot of a task's steps
//! (state, attempts, readiness time, parents) and a clock reading, and returns
//! a [`DependencyAnalysis`]; nothing here reads a database or the clock.
//!
//! ## Scores
//!
//! Every number comes from the configurable [`DependencyGraphWeights`], whose
//! defaults are the reference's (§10.6). Where the reference used a step's
//! attempt count `A` to mean "how unstable it has been", this module uses the
//! number of **failed** attempts (a step that succeeded first time has none),
//! because our attempt counter also counts the successful attempt.
//!
//! ## Deliberate differences from the reference
//!
//! - **Q9 fixed**: the summary's `critical_bottlenecks_count` is the number
//!   of bottlenecks of severity `critical` (the reference always reported 8,
//!   the byte size of an integer, so every task was `critical`), and
//!   `parallelism_efficiency` is the value the parallelism analysis computed
//!   (the reference read a key that does not exist and always reported 0).
//! - `overall_health` is `critical` when a step is in `error` or `cancelled`
//!   (something needs an operator) or a bottleneck is critical *because of a
//!   failure*; `warning` when steps are retrying or a bottleneck is `high` or
//!   worse; `healthy` otherwise. A step that is merely waiting for healthy
//!   parents is never a bottleneck (the reference flagged every waiting step,
//!   so any long chain looked blocked).
//! - `critical_paths.longest_path_length` is the length of the longest
//!   root-to-leaf path (the reference reported the length of the
//!   highest-scoring path under that name).
//! - The reference enumerated every root-to-leaf path, which is exponential in
//!   the worst case. Here paths are enumerated only while there are at most
//!   [`MAX_ENUMERATED_PATHS`]; beyond that, candidate paths are the best-scoring
//!   path through each step (dynamic programming over the additive part of the
//!   score), and `exhaustive` says so. `total_paths` is always exact (saturating).
//! - `cancelled` steps block their dependants like exhausted failures (the
//!   engine's rule), so they appear in error chains and bottlenecks.
//! - Errors and bottlenecks never schedule retries by themselves in this
//!   engine: a step in `error` has no automatic attempts left, so its recovery
//!   strategies name the operator actions (retry step, resolve step).

use crate::dag::Dag;
use crate::execution::{ExecutionContext, HealthStatus, StepCounts};
use crate::state::StepState;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// Above this many root-to-leaf paths, critical paths are found by dynamic
/// programming instead of enumeration.
pub const MAX_ENUMERATED_PATHS: u64 = 1_000;
/// Critical paths reported.
const TOP_PATHS: usize = 5;
/// Bottlenecks reported.
const TOP_BOTTLENECKS: usize = 10;
/// Bottlenecks listed per path.
const PATH_BOTTLENECKS: usize = 10;
/// Step ids listed per error chain (totals are always exact).
const CHAIN_IDS: usize = 100;
/// Error chains in the recovery priority list.
const TOP_RECOVERY: usize = 3;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Every weight, multiplier and threshold of the analysis (reference §10.6).
/// Partial configurations keep the defaults for the keys they omit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DependencyGraphWeights {
    /// Weights of downstream impact and of path criticality.
    pub impact_multipliers: ImpactMultipliers,
    /// Multipliers by the state of a bottleneck step.
    pub severity_multipliers: SeverityMultipliers,
    /// Fixed penalties added to a bottleneck's impact.
    pub penalty_constants: PenaltyConstants,
    /// Impact score thresholds of the severities.
    pub severity_thresholds: SeverityThresholds,
    /// Duration estimates of a path, in seconds.
    pub duration_estimates: DurationEstimates,
}

/// Weights of downstream impact and of path criticality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ImpactMultipliers {
    /// Per downstream step (error impact, bottleneck base). Default 5.
    pub downstream_weight: f64,
    /// Per blocked downstream step (error impact, bottleneck base). Default 15.
    pub blocked_weight: f64,
    /// Per step of a path (criticality). Default 10.
    pub path_length_weight: f64,
    /// Subtracted per completed step of a path. Default 15.
    pub completed_penalty: f64,
    /// Per blocked step of a path. Default 25.
    pub blocked_penalty: f64,
    /// Per failed step of a path. Default 30.
    pub error_penalty: f64,
    /// Per retrying step of a path. Default 10.
    pub retry_penalty: f64,
}

impl Default for ImpactMultipliers {
    fn default() -> Self {
        ImpactMultipliers {
            downstream_weight: 5.0,
            blocked_weight: 15.0,
            path_length_weight: 10.0,
            completed_penalty: 15.0,
            blocked_penalty: 25.0,
            error_penalty: 30.0,
            retry_penalty: 10.0,
        }
    }
}

/// Multipliers by the state of a bottleneck step ("state severity").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SeverityMultipliers {
    /// A step in `error` or `cancelled`. Default 2.0.
    pub error_state: f64,
    /// Added when the step has no attempts left. Default 0.5.
    pub exhausted_retry_bonus: f64,
    /// A pending step whose dependencies are not satisfied. Default 1.2.
    pub dependency_issue: f64,
}

impl Default for SeverityMultipliers {
    fn default() -> Self {
        SeverityMultipliers {
            error_state: 2.0,
            exhausted_retry_bonus: 0.5,
            dependency_issue: 1.2,
        }
    }
}

/// Fixed penalties added to a bottleneck's impact ("penalty calculation").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PenaltyConstants {
    /// Per failed attempt. Default 3.
    pub retry_instability: f64,
    /// A failed step that is not retryable. Default 10.
    pub non_retryable: f64,
    /// A failed step with no attempts left. Default 20.
    pub exhausted_retry: f64,
}

impl Default for PenaltyConstants {
    fn default() -> Self {
        PenaltyConstants {
            retry_instability: 3.0,
            non_retryable: 10.0,
            exhausted_retry: 20.0,
        }
    }
}

/// Impact score thresholds: at or above `critical` is critical, and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SeverityThresholds {
    /// Default 100.
    pub critical: f64,
    /// Default 50.
    pub high: f64,
    /// Default 20.
    pub medium: f64,
}

impl Default for SeverityThresholds {
    fn default() -> Self {
        SeverityThresholds {
            critical: 100.0,
            high: 50.0,
            medium: 20.0,
        }
    }
}

/// Duration estimates of a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DurationEstimates {
    /// Per step. Default 30.
    pub base_step_seconds: f64,
    /// Per failed step. Default 60.
    pub error_penalty_seconds: f64,
    /// Per failed attempt. Default 30.
    pub retry_penalty_seconds: f64,
}

impl Default for DurationEstimates {
    fn default() -> Self {
        DurationEstimates {
            base_step_seconds: 30.0,
            error_penalty_seconds: 60.0,
            retry_penalty_seconds: 30.0,
        }
    }
}

impl DependencyGraphWeights {
    /// Every problem with the settings, each naming its key (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let m = &self.impact_multipliers;
        let s = &self.severity_multipliers;
        let p = &self.penalty_constants;
        let t = &self.severity_thresholds;
        let d = &self.duration_estimates;
        let values = [
            ("impact_multipliers.downstream_weight", m.downstream_weight),
            ("impact_multipliers.blocked_weight", m.blocked_weight),
            (
                "impact_multipliers.path_length_weight",
                m.path_length_weight,
            ),
            ("impact_multipliers.completed_penalty", m.completed_penalty),
            ("impact_multipliers.blocked_penalty", m.blocked_penalty),
            ("impact_multipliers.error_penalty", m.error_penalty),
            ("impact_multipliers.retry_penalty", m.retry_penalty),
            ("severity_multipliers.error_state", s.error_state),
            (
                "severity_multipliers.exhausted_retry_bonus",
                s.exhausted_retry_bonus,
            ),
            ("severity_multipliers.dependency_issue", s.dependency_issue),
            ("penalty_constants.retry_instability", p.retry_instability),
            ("penalty_constants.non_retryable", p.non_retryable),
            ("penalty_constants.exhausted_retry", p.exhausted_retry),
            ("severity_thresholds.critical", t.critical),
            ("severity_thresholds.high", t.high),
            ("severity_thresholds.medium", t.medium),
            ("duration_estimates.base_step_seconds", d.base_step_seconds),
            (
                "duration_estimates.error_penalty_seconds",
                d.error_penalty_seconds,
            ),
            (
                "duration_estimates.retry_penalty_seconds",
                d.retry_penalty_seconds,
            ),
        ];
        let mut out: Vec<String> = values
            .iter()
            .filter(|(_, v)| !(v.is_finite() && *v >= 0.0))
            .map(|(k, v)| format!("dependency_graph.{k}: must be a finite number >= 0 (got {v})"))
            .collect();
        if !(t.critical > t.high && t.high > t.medium) {
            out.push(format!(
                "dependency_graph.severity_thresholds: must satisfy critical > high > medium (got {} / {} / {})",
                t.critical, t.high, t.medium
            ));
        }
        out
    }

    /// The severity of an impact score.
    pub fn severity(&self, score: f64) -> Severity {
        let t = &self.severity_thresholds;
        if score >= t.critical {
            Severity::Critical
        } else if score >= t.high {
            Severity::High
        } else if score >= t.medium {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

/// One step as the analysis sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSnapshot {
    /// Step id.
    pub id: Uuid,
    /// Step name (unique in the task).
    pub name: String,
    /// Current state.
    pub state: StepState,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed in total (the current budget).
    pub max_attempts: u32,
    /// Whether failures are retried.
    pub retryable: bool,
    /// When a pending step whose parents are done may run.
    pub ready_at: Option<DateTime<Utc>>,
    /// Indices (into the same slice) of the step's parents.
    pub parents: Vec<usize>,
}

/// Why an analysis could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// A parent index points outside the step list.
    #[error("step `{step}` names parent #{parent}, but the task has {count} steps")]
    UnknownParent {
        /// The child.
        step: String,
        /// The bad index.
        parent: usize,
        /// Number of steps.
        count: usize,
    },
    /// The stored edges form a cycle (a corrupt task).
    #[error("the task's steps form a dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// Severity of a bottleneck or priority of an error chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Below the `medium` threshold.
    Low,
    /// At or above `medium`.
    Medium,
    /// At or above `high`.
    High,
    /// At or above `critical`.
    Critical,
}

/// Overall health of the task's execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OverallHealth {
    /// Nothing failing or retrying.
    Healthy,
    /// Steps are retrying, or a bottleneck is high or worse.
    Warning,
    /// A step failed or was cancelled: an operator must act.
    Critical,
}

/// The complete analysis of one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DependencyAnalysis {
    /// The graph with current states and levels.
    pub dependency_graph: RuntimeGraph,
    /// The most critical root-to-leaf paths.
    pub critical_paths: CriticalPaths,
    /// What can run in parallel, level by level.
    pub parallelism_opportunities: Parallelism,
    /// Failed and cancelled steps and what they block.
    pub error_chains: ErrorChains,
    /// Steps that hold the most work up.
    pub bottlenecks: Bottlenecks,
    /// One-paragraph summary with recommendations.
    pub task_execution_summary: ExecutionSummary,
    /// The clock reading the analysis used (RFC 3339).
    pub analysis_timestamp: String,
}

/// The task's graph (reference §11.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuntimeGraph {
    /// Steps in template order.
    pub nodes: Vec<GraphNode>,
    /// Parent → child edges.
    pub edges: Vec<GraphEdge>,
    /// Step id → child ids.
    pub adjacency_list: BTreeMap<Uuid, Vec<Uuid>>,
    /// Step id → parent ids.
    pub reverse_adjacency_list: BTreeMap<Uuid, Vec<Uuid>>,
    /// Step id → level (0 for roots, else 1 + the deepest parent's level).
    pub dependency_levels: BTreeMap<Uuid, usize>,
}

/// One step in the runtime graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphNode {
    /// Step id.
    pub id: Uuid,
    /// Step name.
    pub name: String,
    /// Current state.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "pending"))]
    pub state: StepState,
    /// Dependency level.
    pub level: usize,
    /// Every parent is complete or resolved manually.
    pub dependencies_satisfied: bool,
    /// Pending, parents done and its time has come.
    pub ready: bool,
    /// Why it is not running, or what it is doing.
    pub status_reason: String,
}

/// One dependency.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphEdge {
    /// Parent id.
    pub from: Uuid,
    /// Child id.
    pub to: Uuid,
    /// Parent name.
    pub from_name: String,
    /// Child name.
    pub to_name: String,
}

/// Critical paths (reference §11.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CriticalPaths {
    /// Number of root-to-leaf paths (saturates at the largest u64).
    pub total_paths: u64,
    /// True when every path was scored; false when candidates came from
    /// dynamic programming because there were too many paths.
    pub exhaustive: bool,
    /// Steps on the longest root-to-leaf path.
    pub longest_path_length: usize,
    /// The highest-scoring paths, best first (at most 5).
    pub paths: Vec<PathRecord>,
    /// Steps with no parents.
    pub root_nodes: Vec<Uuid>,
    /// Steps with no children.
    pub leaf_nodes: Vec<Uuid>,
}

/// One scored root-to-leaf path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathRecord {
    /// Step ids, root first.
    pub path: Vec<Uuid>,
    /// Step names, root first.
    pub step_names: Vec<String>,
    /// Number of steps.
    pub length: usize,
    /// Complete or resolved manually.
    pub completed_steps: usize,
    /// Not done and dependencies not satisfied.
    pub blocked_steps: usize,
    /// In `error` or `cancelled`.
    pub error_steps: usize,
    /// Not done with failed attempts behind them.
    pub retry_steps: usize,
    /// Ready to run now.
    pub ready_steps: usize,
    /// Estimated duration of the whole path.
    pub estimated_duration_seconds: f64,
    /// Troubled steps on the path, most severe first (at most 10).
    pub bottlenecks: Vec<PathBottleneck>,
    /// The path's score (higher is more critical).
    pub criticality_score: f64,
    /// Completed steps as a percentage of the path, one decimal.
    pub completion_percentage: f64,
}

/// A troubled step on a path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathBottleneck {
    /// Step id.
    pub step_id: Uuid,
    /// Step name.
    pub step_name: String,
    /// Why it holds the path up.
    pub reason: String,
    /// Score: failure, failed attempts, exhaustion, unmet dependencies.
    pub severity: f64,
    /// How much of the path it holds up.
    pub impact: String,
}

/// Parallelism by level (reference §11.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Parallelism {
    /// Steps in the task.
    pub total_steps: usize,
    /// Number of levels.
    pub total_levels: usize,
    /// Steps of the widest level.
    pub max_parallel_steps: usize,
    /// Steps ready to run now.
    pub current_parallel_opportunities: usize,
    /// Not-done steps whose dependencies are not satisfied.
    pub blocked_parallel_opportunities: usize,
    /// Done steps as a percentage, two decimals.
    pub overall_completion: f64,
    /// Levels with more than one ready step, as a percentage of levels (one decimal).
    pub parallelism_efficiency: f64,
    /// Per level, level 0 first.
    pub levels: Vec<LevelInfo>,
}

/// Where to put a level's parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// Few or none.
    Low,
    /// Exactly one ready step.
    Medium,
    /// More than one ready step / most steps blocked.
    High,
}

/// One level of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LevelInfo {
    /// Level number.
    pub level: usize,
    /// Steps at this level.
    pub total_steps: usize,
    /// Ready now.
    pub ready_steps: usize,
    /// Running now.
    pub in_progress_steps: usize,
    /// Not done, dependencies not satisfied.
    pub blocked_steps: usize,
    /// Error or cancelled.
    pub error_steps: usize,
    /// Done.
    pub completed_steps: usize,
    /// Names, in template order.
    pub step_names: Vec<String>,
    /// `high` with more than one ready step, `medium` with one, else `low`.
    pub parallelism_potential: Rating,
    /// `high` when more than half the level is blocked.
    pub bottleneck_risk: Rating,
}

/// Failed steps and what they block (reference §11.4).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorChains {
    /// Steps in `error` or `cancelled`.
    pub total_error_steps: usize,
    /// Steps in the task.
    pub total_steps: usize,
    /// Error steps as a percentage, one decimal.
    pub error_percentage: f64,
    /// Distinct steps that cannot run because of them.
    pub total_blocked_by_errors: usize,
    /// The chain with the highest impact.
    pub most_critical_error: Option<ErrorChain>,
    /// Every chain, highest impact first.
    pub error_chains: Vec<ErrorChain>,
    /// What to fix first (at most 3).
    pub recovery_priority: Vec<RecoveryPriority>,
    /// The task's health.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "healthy"))]
    pub task_health: HealthStatus,
}

/// One failed (or cancelled) step and its downstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorChain {
    /// Step id.
    pub error_step_id: Uuid,
    /// Step name.
    pub error_step_name: String,
    /// `error` or `cancelled`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "error"))]
    pub state: StepState,
    /// Attempts made.
    pub error_attempts: u32,
    /// Attempts allowed.
    pub retry_limit: u32,
    /// Retry situation.
    pub retry_analysis: RetryAnalysis,
    /// Descendants (at most 100 ids; see the total).
    pub downstream_steps: Vec<Uuid>,
    /// Descendants not done whose dependencies are unmet (at most 100 ids).
    pub blocked_downstream_steps: Vec<Uuid>,
    /// Number of descendants.
    pub total_downstream_steps: usize,
    /// Number of blocked descendants.
    pub total_blocked_downstream_steps: usize,
    /// Impact score.
    pub total_impact: f64,
    /// What an operator can do, most useful first.
    pub recovery_strategies: Vec<RecoveryStrategy>,
}

/// Retry situation of a failed step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryAnalysis {
    /// No attempts left.
    pub exhausted: bool,
    /// Attempts left in the budget (a permanent failure may leave some).
    pub remaining_attempts: u32,
    /// Waiting for an automatic retry (never for steps in `error`).
    pub in_backoff: bool,
    /// When the automatic retry is due.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The template allows retries.
    pub retryable: bool,
}

/// An operator action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryStrategy {
    /// Short name.
    pub strategy: String,
    /// `high`, `medium` or `low`.
    pub priority: Rating,
    /// What to do, concretely.
    pub description: String,
}

/// One entry of the recovery priority list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryPriority {
    /// Step id.
    pub step_id: Uuid,
    /// Step name.
    pub step_name: String,
    /// Severity of the chain's impact.
    pub priority_level: Severity,
    /// Why.
    pub reason: String,
    /// The first recovery strategy.
    pub recommended_action: String,
}

/// What kind of bottleneck a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BottleneckType {
    /// In `error` with no attempts left.
    PermanentFailure,
    /// In `error` with attempts left (a permanent handler error).
    ActiveError,
    /// Cancelled: its dependants can never run.
    Cancelled,
    /// Pending behind a retrying parent.
    DependencyBlock,
    /// Failed attempts behind it, still going.
    RetryInstability,
}

/// Bottlenecks (reference §11.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bottlenecks {
    /// Candidates found.
    pub total_bottlenecks: usize,
    /// Candidates of severity `critical`.
    pub critical_bottlenecks: usize,
    /// Not-done steps whose dependencies are unmet.
    pub total_blocked_steps: usize,
    /// The highest-impact ones (at most 10).
    pub bottlenecks: Vec<Bottleneck>,
    /// The task's health.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "healthy"))]
    pub task_health: HealthStatus,
    /// Done steps as a percentage, two decimals.
    pub task_completion: f64,
    /// Steps in error or cancelled, as a percentage, one decimal.
    pub failed_steps_ratio: f64,
    /// `none`, `low`, `medium`, `high` or `severe`.
    pub overall_impact: String,
}

/// One bottleneck.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bottleneck {
    /// Step id.
    pub step_id: Uuid,
    /// Step name.
    pub step_name: String,
    /// Current state.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "error"))]
    pub current_state: StepState,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed.
    pub retry_limit: u32,
    /// Every parent is done.
    pub dependencies_satisfied: bool,
    /// Descendants.
    pub downstream_steps_count: usize,
    /// Descendants not done whose dependencies are unmet.
    pub blocked_downstream_count: usize,
    /// Impact score.
    pub impact_score: f64,
    /// From the thresholds.
    pub severity: Severity,
    /// What kind.
    pub bottleneck_type: BottleneckType,
    /// What to do.
    pub resolution_strategy: String,
    /// How soon it may clear.
    pub estimated_resolution_time: String,
}

/// The summary (reference §8.5, without its defect Q9).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionSummary {
    /// Steps.
    pub total_steps: usize,
    /// Edges.
    pub total_dependencies: usize,
    /// Number of levels.
    pub dependency_levels: usize,
    /// Steps on the longest path.
    pub longest_path_length: usize,
    /// Bottlenecks of severity `critical`.
    pub critical_bottlenecks_count: usize,
    /// Failed or cancelled steps.
    pub error_chains_count: usize,
    /// As in the parallelism analysis.
    pub parallelism_efficiency: f64,
    /// Overall health.
    pub overall_health: OverallHealth,
    /// What to do, most important first.
    pub recommendations: Vec<String>,
}

// ---------------------------------------------------------------------------
// Computation
// ---------------------------------------------------------------------------

/// Derived facts about one step.
#[derive(Debug, Clone, Copy)]
struct Facts {
    done: bool,
    failed: bool,
    deps_ok: bool,
    ready: bool,
    in_backoff: bool,
    /// Attempts that ended in failure.
    failed_attempts: u32,
    exhausted: bool,
    /// Not done, with failed attempts behind it.
    retrying: bool,
    /// Not done and behind an `error` / `cancelled` ancestor.
    blocked_by_failure: bool,
}

struct Ctx<'a> {
    steps: &'a [StepSnapshot],
    dag: Dag,
    facts: Vec<Facts>,
    weights: &'a DependencyGraphWeights,
    now: DateTime<Utc>,
    execution: ExecutionContext,
}

/// Analyses one task's steps at `now` with the given weights.
pub fn analyze(
    steps: &[StepSnapshot],
    now: DateTime<Utc>,
    weights: &DependencyGraphWeights,
) -> Result<DependencyAnalysis, AnalysisError> {
    let n = steps.len();
    let mut edges = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        for &p in &s.parents {
            if p >= n {
                return Err(AnalysisError::UnknownParent {
                    step: s.name.clone(),
                    parent: p,
                    count: n,
                });
            }
            edges.push((p, i));
        }
    }
    let dag = Dag::new(n, edges).map_err(|c| {
        AnalysisError::Cycle(c.path.iter().map(|&i| steps[i].name.clone()).collect())
    })?;
    let facts = facts(steps, &dag, now);
    let execution = ExecutionContext::from_counts(counts(steps, &facts));
    let ctx = Ctx {
        steps,
        dag,
        facts,
        weights,
        now,
        execution,
    };
    let dependency_graph = ctx.graph();
    let critical_paths = ctx.critical_paths();
    let parallelism_opportunities = ctx.parallelism();
    let error_chains = ctx.error_chains();
    let bottlenecks = ctx.bottlenecks();
    let task_execution_summary = ctx.summary(
        &critical_paths,
        &parallelism_opportunities,
        &error_chains,
        &bottlenecks,
    );
    Ok(DependencyAnalysis {
        dependency_graph,
        critical_paths,
        parallelism_opportunities,
        error_chains,
        bottlenecks,
        task_execution_summary,
        analysis_timestamp: now.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}

fn facts(steps: &[StepSnapshot], dag: &Dag, now: DateTime<Utc>) -> Vec<Facts> {
    let mut out: Vec<Facts> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let done = s.state.is_done();
            let failed = matches!(s.state, StepState::Error | StepState::Cancelled);
            let deps_ok = dag.parents(i).iter().all(|&p| steps[p].state.is_done());
            let pending = s.state == StepState::Pending;
            let ready = pending && deps_ok && s.ready_at.is_some_and(|t| t <= now);
            let in_backoff = pending && deps_ok && s.ready_at.is_some_and(|t| t > now);
            // The attempt counter includes a running or successful attempt.
            let live_attempt = matches!(s.state, StepState::InProgress | StepState::Complete);
            let failed_attempts = s.attempts.saturating_sub(u32::from(live_attempt));
            Facts {
                done,
                failed,
                deps_ok,
                ready,
                in_backoff,
                failed_attempts,
                exhausted: s.attempts >= s.max_attempts,
                retrying: !done && !failed && failed_attempts > 0,
                blocked_by_failure: false,
            }
        })
        .collect();
    // Parents come first in topological order, so one pass propagates.
    for &v in dag.topological_order() {
        if out[v].done || out[v].failed {
            continue;
        }
        out[v].blocked_by_failure = dag
            .parents(v)
            .iter()
            .any(|&p| out[p].failed || out[p].blocked_by_failure);
    }
    out
}

fn counts(steps: &[StepSnapshot], facts: &[Facts]) -> StepCounts {
    let mut c = StepCounts {
        total: steps.len() as u64,
        ..Default::default()
    };
    for (s, f) in steps.iter().zip(facts) {
        match s.state {
            StepState::Pending => {
                c.pending += 1;
                c.ready += u64::from(f.ready);
                c.scheduled += u64::from(f.in_backoff);
                c.retrying += u64::from(f.failed_attempts > 0);
            }
            StepState::InProgress => c.in_progress += 1,
            StepState::Complete | StepState::ResolvedManually => c.done += 1,
            StepState::Error => c.failed += 1,
            StepState::Cancelled => c.cancelled += 1,
        }
    }
    c
}

fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

fn pct(part: usize, whole: usize, decimals: i32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round(part as f64 / whole as f64 * 100.0, decimals)
    }
}

impl Ctx<'_> {
    fn n(&self) -> usize {
        self.steps.len()
    }

    /// 1.0 for a healthy task, 1.5 otherwise (reference §11.2).
    fn health_factor(&self) -> f64 {
        if self.execution.health_status == HealthStatus::Healthy {
            1.0
        } else {
            1.5
        }
    }

    /// Not done and dependencies unmet (the reference's "blocked").
    fn waiting(&self, i: usize) -> bool {
        !self.facts[i].done && !self.facts[i].deps_ok && !self.facts[i].failed
    }

    fn status_reason(&self, i: usize) -> &'static str {
        let f = &self.facts[i];
        match self.steps[i].state {
            StepState::Complete => "Complete",
            StepState::ResolvedManually => "Resolved manually",
            StepState::InProgress => "Running",
            StepState::Cancelled => "Cancelled: dependants cannot run",
            StepState::Error if f.exhausted => "Exhausted retries",
            StepState::Error => "Failed permanently",
            StepState::Pending if f.blocked_by_failure => "Blocked by a failed upstream step",
            StepState::Pending if !f.deps_ok => "Dependencies not satisfied",
            StepState::Pending if f.ready => "Ready for execution",
            StepState::Pending if f.in_backoff => "In backoff period",
            StepState::Pending => "Waiting to be scheduled",
        }
    }

    fn graph(&self) -> RuntimeGraph {
        let levels = self.dag.levels();
        let nodes = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| GraphNode {
                id: s.id,
                name: s.name.clone(),
                state: s.state,
                level: levels[i],
                dependencies_satisfied: self.facts[i].deps_ok,
                ready: self.facts[i].ready,
                status_reason: self.status_reason(i).to_string(),
            })
            .collect();
        let edges = self
            .dag
            .edges()
            .into_iter()
            .map(|(p, c)| GraphEdge {
                from: self.steps[p].id,
                to: self.steps[c].id,
                from_name: self.steps[p].name.clone(),
                to_name: self.steps[c].name.clone(),
            })
            .collect();
        let ids = |list: &[usize]| list.iter().map(|&j| self.steps[j].id).collect::<Vec<_>>();
        let adjacency_list = (0..self.n())
            .map(|i| (self.steps[i].id, ids(self.dag.children(i))))
            .collect();
        let reverse_adjacency_list = (0..self.n())
            .map(|i| (self.steps[i].id, ids(self.dag.parents(i))))
            .collect();
        let dependency_levels = (0..self.n())
            .map(|i| (self.steps[i].id, levels[i]))
            .collect();
        RuntimeGraph {
            nodes,
            edges,
            adjacency_list,
            reverse_adjacency_list,
            dependency_levels,
        }
    }

    /// Estimated seconds of one step on a path.
    fn step_duration(&self, i: usize) -> f64 {
        let d = &self.weights.duration_estimates;
        let f = &self.facts[i];
        d.base_step_seconds
            + if f.failed {
                d.error_penalty_seconds
            } else {
                0.0
            }
            + f64::from(f.failed_attempts) * d.retry_penalty_seconds
    }

    /// The additive part of a path's criticality contributed by one step.
    fn step_weight(&self, i: usize) -> f64 {
        let m = &self.weights.impact_multipliers;
        let f = &self.facts[i];
        let h = self.health_factor();
        let flag = |b: bool| f64::from(u8::from(b));
        m.path_length_weight - flag(f.done) * m.completed_penalty
            + flag(self.waiting(i)) * m.blocked_penalty * h
            + flag(f.failed) * m.error_penalty * h
            + flag(f.retrying || (f.failed && f.failed_attempts > 0)) * m.retry_penalty
            + 2.0 * self.step_duration(i) / 60.0
    }

    fn score_path(&self, path: &[usize]) -> PathRecord {
        let len = path.len();
        let completed = path.iter().filter(|&&i| self.facts[i].done).count();
        let blocked = path.iter().filter(|&&i| self.waiting(i)).count();
        let errors = path.iter().filter(|&&i| self.facts[i].failed).count();
        let retries = path
            .iter()
            .filter(|&&i| {
                let f = &self.facts[i];
                f.retrying || (f.failed && f.failed_attempts > 0)
            })
            .count();
        let ready = path.iter().filter(|&&i| self.facts[i].ready).count();
        let duration: f64 = path.iter().map(|&i| self.step_duration(i)).sum();
        let completion = pct(completed, len, 1);
        let additive: f64 = path.iter().map(|&i| self.step_weight(i)).sum();
        let score = (additive * (1.0 - 0.3 * completion / 100.0)).max(0.0);

        let mut bottlenecks: Vec<PathBottleneck> = path
            .iter()
            .enumerate()
            .filter(|&(_, &i)| {
                let f = &self.facts[i];
                f.failed || f.blocked_by_failure || f.retrying
            })
            .map(|(pos, &i)| {
                let f = &self.facts[i];
                let severity = 10.0 * f64::from(u8::from(f.failed))
                    + 5.0 * f64::from(f.failed_attempts)
                    + 20.0 * f64::from(u8::from(f.failed && f.exhausted))
                    + 5.0 * f64::from(u8::from(!f.deps_ok));
                PathBottleneck {
                    step_id: self.steps[i].id,
                    step_name: self.steps[i].name.clone(),
                    reason: self.status_reason(i).to_string(),
                    severity,
                    impact: format!("Blocks {} downstream steps", len - pos - 1),
                }
            })
            .collect();
        bottlenecks.sort_by(|a, b| b.severity.total_cmp(&a.severity));
        bottlenecks.truncate(PATH_BOTTLENECKS);

        PathRecord {
            path: path.iter().map(|&i| self.steps[i].id).collect(),
            step_names: path.iter().map(|&i| self.steps[i].name.clone()).collect(),
            length: len,
            completed_steps: completed,
            blocked_steps: blocked,
            error_steps: errors,
            retry_steps: retries,
            ready_steps: ready,
            estimated_duration_seconds: round(duration, 2),
            bottlenecks,
            criticality_score: round(score, 2),
            completion_percentage: completion,
        }
    }

    fn critical_paths(&self) -> CriticalPaths {
        let n = self.n();
        let order = self.dag.topological_order();
        let roots = self.dag.roots();
        let leaves = self.dag.leaves();
        // Paths from each node to any leaf, counted children-first.
        let mut paths_from = vec![0u64; n];
        for &v in order.iter().rev() {
            let kids = self.dag.children(v);
            paths_from[v] = if kids.is_empty() {
                1
            } else {
                kids.iter()
                    .fold(0u64, |acc, &c| acc.saturating_add(paths_from[c]))
            };
        }
        let total_paths = roots
            .iter()
            .fold(0u64, |acc, &r| acc.saturating_add(paths_from[r]));
        let longest_path_length = self.dag.levels().iter().max().map_or(0, |l| l + 1);

        let exhaustive = total_paths <= MAX_ENUMERATED_PATHS;
        let candidates = if exhaustive {
            self.all_paths(&roots)
        } else {
            self.dp_candidate_paths()
        };
        let mut scored: Vec<PathRecord> = candidates.iter().map(|p| self.score_path(p)).collect();
        // Ties go to the longer path, then to template order, for stable output.
        scored.sort_by(|a, b| {
            b.criticality_score
                .total_cmp(&a.criticality_score)
                .then(b.length.cmp(&a.length))
        });
        scored.truncate(TOP_PATHS);
        CriticalPaths {
            total_paths,
            exhaustive,
            longest_path_length,
            paths: scored,
            root_nodes: roots.iter().map(|&i| self.steps[i].id).collect(),
            leaf_nodes: leaves.iter().map(|&i| self.steps[i].id).collect(),
        }
    }

    /// Every root-to-leaf path (only called when there are few).
    fn all_paths(&self, roots: &[usize]) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut stack: Vec<(usize, usize)> = Vec::new(); // (node, next child index)
        for &r in roots {
            stack.push((r, 0));
            while let Some(&mut (v, ref mut next)) = stack.last_mut() {
                let kids = self.dag.children(v);
                if kids.is_empty() && *next == 0 {
                    *next = 1;
                    out.push(stack.iter().map(|&(s, _)| s).collect());
                    continue;
                }
                if *next < kids.len() {
                    let c = kids[*next];
                    *next += 1;
                    stack.push((c, 0));
                } else {
                    stack.pop();
                }
            }
        }
        out
    }

    /// Candidate paths when there are too many to enumerate: for each step,
    /// the path through it that maximises the additive part of the score
    /// (best prefix from a root + best suffix to a leaf), taking steps in
    /// decreasing order of that value until enough distinct paths are found.
    fn dp_candidate_paths(&self) -> Vec<Vec<usize>> {
        let n = self.n();
        let order = self.dag.topological_order();
        let w: Vec<f64> = (0..n).map(|i| self.step_weight(i)).collect();
        let mut best_to = vec![0.0f64; n];
        let mut prev: Vec<Option<usize>> = vec![None; n];
        for &v in order {
            let best = self
                .dag
                .parents(v)
                .iter()
                .copied()
                .max_by(|&a, &b| best_to[a].total_cmp(&best_to[b]));
            best_to[v] = w[v] + best.map_or(0.0, |p| best_to[p]);
            prev[v] = best;
        }
        let mut best_from = vec![0.0f64; n];
        let mut next: Vec<Option<usize>> = vec![None; n];
        for &v in order.iter().rev() {
            let best = self
                .dag
                .children(v)
                .iter()
                .copied()
                .max_by(|&a, &b| best_from[a].total_cmp(&best_from[b]));
            best_from[v] = w[v] + best.map_or(0.0, |c| best_from[c]);
            next[v] = best;
        }
        let mut by_value: Vec<usize> = (0..n).collect();
        by_value.sort_by(|&a, &b| {
            (best_to[b] + best_from[b] - w[b]).total_cmp(&(best_to[a] + best_from[a] - w[a]))
        });
        let mut seen: HashSet<Vec<usize>> = HashSet::new();
        let mut out = Vec::new();
        for v in by_value {
            let mut path = Vec::new();
            let mut cur = Some(v);
            while let Some(c) = cur {
                path.push(c);
                cur = prev[c];
            }
            path.reverse();
            let mut cur = next[v];
            while let Some(c) = cur {
                path.push(c);
                cur = next[c];
            }
            if seen.insert(path.clone()) {
                out.push(path);
                if out.len() >= TOP_PATHS * 4 {
                    break;
                }
            }
        }
        out
    }

    fn parallelism(&self) -> Parallelism {
        let levels = self.dag.levels();
        let total_levels = levels.iter().max().map_or(0, |l| l + 1);
        let mut per: Vec<LevelInfo> = (0..total_levels)
            .map(|level| LevelInfo {
                level,
                total_steps: 0,
                ready_steps: 0,
                in_progress_steps: 0,
                blocked_steps: 0,
                error_steps: 0,
                completed_steps: 0,
                step_names: Vec::new(),
                parallelism_potential: Rating::Low,
                bottleneck_risk: Rating::Low,
            })
            .collect();
        for i in 0..self.n() {
            let l = &mut per[levels[i]];
            let f = &self.facts[i];
            l.total_steps += 1;
            l.ready_steps += usize::from(f.ready);
            l.in_progress_steps += usize::from(self.steps[i].state == StepState::InProgress);
            l.blocked_steps += usize::from(self.waiting(i));
            l.error_steps += usize::from(f.failed);
            l.completed_steps += usize::from(f.done);
            l.step_names.push(self.steps[i].name.clone());
        }
        for l in &mut per {
            l.parallelism_potential = match l.ready_steps {
                0 => Rating::Low,
                1 => Rating::Medium,
                _ => Rating::High,
            };
            l.bottleneck_risk = if l.blocked_steps > l.total_steps / 2 {
                Rating::High
            } else {
                Rating::Low
            };
        }
        let parallel_levels = per.iter().filter(|l| l.ready_steps > 1).count();
        Parallelism {
            total_steps: self.n(),
            total_levels,
            max_parallel_steps: per.iter().map(|l| l.total_steps).max().unwrap_or(0),
            current_parallel_opportunities: self.facts.iter().filter(|f| f.ready).count(),
            blocked_parallel_opportunities: (0..self.n()).filter(|&i| self.waiting(i)).count(),
            overall_completion: self.execution.completion_percentage,
            parallelism_efficiency: pct(parallel_levels, total_levels, 1),
            levels: per,
        }
    }

    /// Descendants, and those of them that are waiting (not done, unmet dependencies).
    fn downstream(&self, i: usize) -> (Vec<usize>, Vec<usize>) {
        let all = self.dag.descendants(i);
        let blocked = all.iter().copied().filter(|&d| self.waiting(d)).collect();
        (all, blocked)
    }

    fn recovery_strategies(&self, i: usize) -> Vec<RecoveryStrategy> {
        let s = &self.steps[i];
        let f = &self.facts[i];
        let strategy = |name: &str, priority: Rating, description: String| RecoveryStrategy {
            strategy: name.to_string(),
            priority,
            description,
        };
        match s.state {
            StepState::Cancelled => vec![strategy(
                "Create a new task",
                Rating::High,
                format!(
                    "Step `{}` was cancelled; cancelled steps are terminal, so its dependants can only run in a new task",
                    s.name
                ),
            )],
            _ if f.exhausted => vec![
                strategy(
                    "Manual Resolution",
                    Rating::High,
                    format!(
                        "Resolve step `{}` manually with its results (POST …/steps/{}/resolve)",
                        s.name, s.id
                    ),
                ),
                strategy(
                    "Retry Step",
                    Rating::Medium,
                    format!(
                        "Give step `{}` a fresh attempt budget once the cause is fixed (POST …/steps/{}/retry)",
                        s.name, s.id
                    ),
                ),
            ],
            _ => vec![
                strategy(
                    "Investigate Root Cause",
                    Rating::High,
                    format!(
                        "Step `{}` failed permanently with {} attempt(s) left; read its last_error",
                        s.name,
                        s.max_attempts.saturating_sub(s.attempts)
                    ),
                ),
                strategy(
                    "Retry Step",
                    Rating::Medium,
                    format!(
                        "Retry step `{}` once the cause is fixed (POST …/steps/{}/retry)",
                        s.name, s.id
                    ),
                ),
            ],
        }
    }

    fn error_chains(&self) -> ErrorChains {
        let m = &self.weights.impact_multipliers;
        let p = &self.weights.penalty_constants;
        let failed: Vec<usize> = (0..self.n()).filter(|&i| self.facts[i].failed).collect();
        let mut blocked_union = vec![false; self.n()];
        let mut chains: Vec<ErrorChain> = failed
            .iter()
            .map(|&i| {
                let s = &self.steps[i];
                let f = &self.facts[i];
                let (down, blocked) = self.downstream(i);
                for &b in &blocked {
                    blocked_union[b] = true;
                }
                let total_impact = blocked.len() as f64 * m.blocked_weight
                    + down.len() as f64 * m.downstream_weight
                    + if f.exhausted { p.exhausted_retry } else { 0.0 }
                    + f64::from(f.failed_attempts) * p.retry_instability;
                let ids = |v: &[usize]| {
                    v.iter()
                        .take(CHAIN_IDS)
                        .map(|&j| self.steps[j].id)
                        .collect::<Vec<_>>()
                };
                ErrorChain {
                    error_step_id: s.id,
                    error_step_name: s.name.clone(),
                    state: s.state,
                    error_attempts: s.attempts,
                    retry_limit: s.max_attempts,
                    retry_analysis: RetryAnalysis {
                        exhausted: f.exhausted,
                        remaining_attempts: s.max_attempts.saturating_sub(s.attempts),
                        in_backoff: false,
                        next_retry_at: None,
                        retryable: s.retryable,
                    },
                    downstream_steps: ids(&down),
                    blocked_downstream_steps: ids(&blocked),
                    total_downstream_steps: down.len(),
                    total_blocked_downstream_steps: blocked.len(),
                    total_impact: round(total_impact, 2),
                    recovery_strategies: self.recovery_strategies(i),
                }
            })
            .collect();
        chains.sort_by(|a, b| b.total_impact.total_cmp(&a.total_impact));
        let recovery_priority = chains
            .iter()
            .take(TOP_RECOVERY)
            .map(|c| RecoveryPriority {
                step_id: c.error_step_id,
                step_name: c.error_step_name.clone(),
                priority_level: self.weights.severity(c.total_impact),
                reason: format!(
                    "Blocking {} downstream steps",
                    c.total_blocked_downstream_steps
                ),
                recommended_action: c
                    .recovery_strategies
                    .first()
                    .map(|s| s.strategy.clone())
                    .unwrap_or_default(),
            })
            .collect();
        ErrorChains {
            total_error_steps: failed.len(),
            total_steps: self.n(),
            error_percentage: pct(failed.len(), self.n(), 1),
            total_blocked_by_errors: blocked_union.iter().filter(|&&b| b).count(),
            most_critical_error: chains.first().cloned(),
            error_chains: chains,
            recovery_priority,
            task_health: self.execution.health_status,
        }
    }

    fn bottlenecks(&self) -> Bottlenecks {
        let n = self.n();
        let any_failed = self.facts.iter().any(|f| f.failed);
        // With failures, they are the bottlenecks. Otherwise: steps with failed
        // attempts behind them, and the steps waiting directly on those.
        let candidates: Vec<usize> = if any_failed {
            (0..n).filter(|&i| self.facts[i].failed).collect()
        } else {
            (0..n)
                .filter(|&i| {
                    let f = &self.facts[i];
                    f.retrying
                        || (self.waiting(i)
                            && self.dag.parents(i).iter().any(|&p| self.facts[p].retrying))
                })
                .collect()
        };
        let w = self.weights;
        let mut list: Vec<Bottleneck> = candidates
            .iter()
            .map(|&i| {
                let s = &self.steps[i];
                let f = &self.facts[i];
                let (down, blocked) = self.downstream(i);
                let sm = &w.severity_multipliers;
                let multiplier = match s.state {
                    StepState::Error => {
                        sm.error_state
                            + if f.exhausted {
                                sm.exhausted_retry_bonus
                            } else {
                                0.0
                            }
                    }
                    // Terminal: blocks like an exhausted failure.
                    StepState::Cancelled => sm.error_state + sm.exhausted_retry_bonus,
                    StepState::Pending if !f.deps_ok => sm.dependency_issue,
                    _ => 1.0,
                };
                let pc = &w.penalty_constants;
                let is_error = s.state == StepState::Error;
                let penalties = f64::from(f.failed_attempts) * pc.retry_instability
                    + if is_error && !s.retryable {
                        pc.non_retryable
                    } else {
                        0.0
                    }
                    + if is_error && f.exhausted {
                        pc.exhausted_retry
                    } else {
                        0.0
                    };
                let base = down.len() as f64 * w.impact_multipliers.downstream_weight
                    + blocked.len() as f64 * w.impact_multipliers.blocked_weight;
                let impact = (base * multiplier + penalties).round();
                let kind = match s.state {
                    StepState::Error if f.exhausted => BottleneckType::PermanentFailure,
                    StepState::Error => BottleneckType::ActiveError,
                    StepState::Cancelled => BottleneckType::Cancelled,
                    _ if !f.deps_ok => BottleneckType::DependencyBlock,
                    _ => BottleneckType::RetryInstability,
                };
                let (strategy, eta) = match kind {
                    BottleneckType::PermanentFailure => (
                        "Manual intervention required: resolve or retry the step".to_string(),
                        "Immediate action needed".to_string(),
                    ),
                    BottleneckType::ActiveError => (
                        "Investigate error cause, then retry the step".to_string(),
                        "Immediate action needed".to_string(),
                    ),
                    BottleneckType::Cancelled => (
                        "Dependants cannot run: create a new task".to_string(),
                        "Immediate action needed".to_string(),
                    ),
                    BottleneckType::DependencyBlock => (
                        "Check upstream dependencies".to_string(),
                        "Depends on upstream steps".to_string(),
                    ),
                    BottleneckType::RetryInstability if f.in_backoff => {
                        let secs = s
                            .ready_at
                            .map_or(0, |t| (t - self.now).num_seconds().max(0));
                        let minutes = (secs + 59) / 60;
                        (
                            "Wait for backoff period".to_string(),
                            format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" }),
                        )
                    }
                    BottleneckType::RetryInstability => (
                        "Monitor retry attempts".to_string(),
                        "Within next retry cycle".to_string(),
                    ),
                };
                Bottleneck {
                    step_id: s.id,
                    step_name: s.name.clone(),
                    current_state: s.state,
                    attempts: s.attempts,
                    retry_limit: s.max_attempts,
                    dependencies_satisfied: f.deps_ok,
                    downstream_steps_count: down.len(),
                    blocked_downstream_count: blocked.len(),
                    impact_score: impact,
                    severity: w.severity(impact),
                    bottleneck_type: kind,
                    resolution_strategy: strategy,
                    estimated_resolution_time: eta,
                }
            })
            .collect();
        list.sort_by(|a, b| b.impact_score.total_cmp(&a.impact_score));
        let count = |sev: Severity| list.iter().filter(|b| b.severity == sev).count();
        let critical = count(Severity::Critical);
        let high = count(Severity::High);
        let failed = self.facts.iter().filter(|f| f.failed).count();
        let overall_impact = if list.is_empty() {
            "none"
        } else if critical >= 3 || failed > n / 2 {
            "severe"
        } else if critical >= 1 || high >= 3 {
            "high"
        } else if high >= 1 || list.len() >= 5 {
            "medium"
        } else {
            "low"
        };
        let total = list.len();
        list.truncate(TOP_BOTTLENECKS);
        Bottlenecks {
            total_bottlenecks: total,
            critical_bottlenecks: critical,
            total_blocked_steps: (0..n).filter(|&i| self.waiting(i)).count(),
            bottlenecks: list,
            task_health: self.execution.health_status,
            task_completion: self.execution.completion_percentage,
            failed_steps_ratio: pct(failed, n, 1),
            overall_impact: overall_impact.to_string(),
        }
    }

    fn summary(
        &self,
        paths: &CriticalPaths,
        par: &Parallelism,
        errors: &ErrorChains,
        bottlenecks: &Bottlenecks,
    ) -> ExecutionSummary {
        let critical_count = bottlenecks.critical_bottlenecks;
        let retrying = self.facts.iter().filter(|f| f.retrying).count();
        let any_high = bottlenecks
            .bottlenecks
            .iter()
            .any(|b| b.severity >= Severity::High);
        let overall_health = if errors.total_error_steps > 0 {
            OverallHealth::Critical
        } else if retrying > 0 || any_high {
            OverallHealth::Warning
        } else {
            OverallHealth::Healthy
        };
        let mut recs = Vec::new();
        if let Some(top) = bottlenecks
            .bottlenecks
            .iter()
            .find(|b| b.severity == Severity::Critical)
        {
            recs.push(format!(
                "Address critical bottlenecks to unblock task execution: step `{}` holds up {} downstream step(s) ({})",
                top.step_name, top.downstream_steps_count, top.resolution_strategy
            ));
        }
        if let Some(top) = errors.recovery_priority.first() {
            recs.push(format!(
                "Resolve error chains to prevent further failures: start with step `{}` ({}; {})",
                top.step_name,
                top.reason.to_lowercase(),
                top.recommended_action
            ));
        }
        if retrying > 0 {
            recs.push(format!(
                "{retrying} step(s) are retrying after failures; watch their last_error"
            ));
        }
        let unfinished = self.facts.iter().any(|f| !f.done && !f.failed);
        if unfinished && par.total_levels > 1 && par.parallelism_efficiency < 50.0 {
            recs.push("Consider optimizing step dependencies to improve parallelism".to_string());
        }
        if recs.is_empty() {
            recs.push("Task execution appears healthy".to_string());
        }
        ExecutionSummary {
            total_steps: self.n(),
            total_dependencies: self.dag.edges().len(),
            dependency_levels: par.total_levels,
            longest_path_length: paths.longest_path_length,
            critical_bottlenecks_count: critical_count,
            error_chains_count: errors.error_chains.len(),
            parallelism_efficiency: par.parallelism_efficiency,
            overall_health,
            recommendations: recs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    fn step(i: u128, name: &str, state: StepState, parents: &[usize]) -> StepSnapshot {
        StepSnapshot {
            id: Uuid::from_u128(i + 1),
            name: name.to_string(),
            state,
            attempts: match state {
                StepState::Pending => 0,
                _ => 1,
            },
            max_attempts: 3,
            retryable: true,
            ready_at: None,
            parents: parents.to_vec(),
        }
    }

    /// a → {b, c} → d, with the given states.
    fn diamond(states: [StepState; 4]) -> Vec<StepSnapshot> {
        let mut v = vec![
            step(0, "a", states[0], &[]),
            step(1, "b", states[1], &[0]),
            step(2, "c", states[2], &[0]),
            step(3, "d", states[3], &[1, 2]),
        ];
        for s in &mut v {
            if s.state == StepState::Pending && s.parents.iter().all(|&p| states[p].is_done()) {
                s.ready_at = Some(now());
            }
        }
        v
    }

    fn run(steps: &[StepSnapshot]) -> DependencyAnalysis {
        analyze(steps, now(), &DependencyGraphWeights::default()).unwrap()
    }

    use StepState::*;

    #[test]
    fn defaults_are_the_reference_values() {
        let w = DependencyGraphWeights::default();
        assert_eq!(w.impact_multipliers.downstream_weight, 5.0);
        assert_eq!(w.impact_multipliers.blocked_weight, 15.0);
        assert_eq!(w.impact_multipliers.path_length_weight, 10.0);
        assert_eq!(w.impact_multipliers.completed_penalty, 15.0);
        assert_eq!(w.impact_multipliers.blocked_penalty, 25.0);
        assert_eq!(w.impact_multipliers.error_penalty, 30.0);
        assert_eq!(w.impact_multipliers.retry_penalty, 10.0);
        assert_eq!(w.severity_multipliers.error_state, 2.0);
        assert_eq!(w.severity_multipliers.exhausted_retry_bonus, 0.5);
        assert_eq!(w.severity_multipliers.dependency_issue, 1.2);
        assert_eq!(w.penalty_constants.retry_instability, 3.0);
        assert_eq!(w.penalty_constants.non_retryable, 10.0);
        assert_eq!(w.penalty_constants.exhausted_retry, 20.0);
        assert_eq!(w.severity_thresholds.critical, 100.0);
        assert_eq!(w.severity_thresholds.high, 50.0);
        assert_eq!(w.severity_thresholds.medium, 20.0);
        assert_eq!(w.duration_estimates.base_step_seconds, 30.0);
        assert_eq!(w.duration_estimates.error_penalty_seconds, 60.0);
        assert_eq!(w.duration_estimates.retry_penalty_seconds, 30.0);
        assert!(w.problems().is_empty());
    }

    #[test]
    fn partial_config_keeps_defaults_and_rejects_unknown_keys() {
        let w: DependencyGraphWeights =
            serde_json::from_str(r#"{"severity_thresholds": {"critical": 500}}"#).unwrap();
        assert_eq!(w.severity_thresholds.critical, 500.0);
        assert_eq!(w.severity_thresholds.high, 50.0);
        assert_eq!(w.impact_multipliers.downstream_weight, 5.0);
        let err = serde_json::from_str::<DependencyGraphWeights>(
            r#"{"impact_multipliers": {"downstream_wieght": 1}}"#,
        );
        assert!(err.is_err());
        let bad = DependencyGraphWeights {
            severity_thresholds: SeverityThresholds {
                critical: 10.0,
                high: 50.0,
                medium: -1.0,
            },
            ..Default::default()
        };
        let problems = bad.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("severity_thresholds.medium"));
    }

    #[test]
    fn graph_has_states_levels_and_adjacency() {
        let a = run(&diamond([Complete, InProgress, Pending, Pending]));
        let g = &a.dependency_graph;
        assert_eq!(
            g.nodes.iter().map(|n| n.level).collect::<Vec<_>>(),
            [0, 1, 1, 2]
        );
        assert_eq!(g.nodes[1].state, InProgress);
        assert!(g.nodes[2].ready);
        assert!(!g.nodes[3].dependencies_satisfied);
        assert_eq!(g.edges.len(), 4);
        assert_eq!(g.edges[0].from_name, "a");
        let a_id = Uuid::from_u128(1);
        assert_eq!(g.adjacency_list[&a_id].len(), 2);
        assert_eq!(g.reverse_adjacency_list[&Uuid::from_u128(4)].len(), 2);
        assert_eq!(g.dependency_levels[&Uuid::from_u128(4)], 2);
        assert_eq!(a.critical_paths.total_paths, 2);
        assert!(a.critical_paths.exhaustive);
        assert_eq!(a.critical_paths.longest_path_length, 3);
        assert_eq!(a.critical_paths.root_nodes, vec![a_id]);
    }

    #[test]
    fn healthy_running_task_has_no_bottlenecks_and_no_q9() {
        let a = run(&diamond([Complete, InProgress, Pending, Pending]));
        assert_eq!(a.bottlenecks.total_bottlenecks, 0);
        assert_eq!(a.bottlenecks.overall_impact, "none");
        assert_eq!(a.error_chains.total_error_steps, 0);
        let s = &a.task_execution_summary;
        // Q9: the count is the real count and the health is not always critical.
        assert_eq!(s.critical_bottlenecks_count, 0);
        assert_eq!(s.overall_health, OverallHealth::Healthy);
        assert_eq!(s.total_dependencies, 4);
        assert_eq!(s.dependency_levels, 3);
    }

    #[test]
    fn parallelism_efficiency_reaches_the_summary() {
        // Root done, b and c both ready: level 1 has two ready steps.
        let a = run(&diamond([Complete, Pending, Pending, Pending]));
        let p = &a.parallelism_opportunities;
        assert_eq!(p.levels[1].ready_steps, 2);
        assert_eq!(p.levels[1].parallelism_potential, Rating::High);
        assert_eq!(p.current_parallel_opportunities, 2);
        assert_eq!(p.parallelism_efficiency, 33.3);
        // Q9: the summary carries the computed value, not 0.
        assert_eq!(a.task_execution_summary.parallelism_efficiency, 33.3);
        assert_eq!(p.max_parallel_steps, 2);
        assert_eq!(p.levels[2].bottleneck_risk, Rating::High);
        assert_eq!(p.overall_completion, 25.0);
    }

    #[test]
    fn exhausted_error_makes_a_chain_and_a_critical_bottleneck() {
        let mut steps = diamond([Complete, Error, Complete, Pending]);
        steps[1].attempts = 3;
        let a = run(&steps);
        let e = &a.error_chains;
        assert_eq!(e.total_error_steps, 1);
        assert_eq!(e.error_percentage, 25.0);
        let chain = e.most_critical_error.as_ref().unwrap();
        assert_eq!(chain.error_step_name, "b");
        assert!(chain.retry_analysis.exhausted);
        assert_eq!(chain.total_downstream_steps, 1);
        assert_eq!(chain.total_blocked_downstream_steps, 1);
        // 1 blocked × 15 + 1 downstream × 5 + exhausted 20 + 3 failed attempts × 3
        assert_eq!(chain.total_impact, 49.0);
        assert_eq!(chain.recovery_strategies[0].strategy, "Manual Resolution");
        assert_eq!(e.recovery_priority[0].priority_level, Severity::Medium);
        assert_eq!(e.total_blocked_by_errors, 1);

        let b = &a.bottlenecks.bottlenecks[0];
        // (5 + 15) × (2.0 + 0.5) + 3 failed attempts × 3 + exhausted 20
        assert_eq!(b.impact_score, (20.0f64 * 2.5 + 9.0 + 20.0).round());
        assert_eq!(b.bottleneck_type, BottleneckType::PermanentFailure);
        assert_eq!(b.severity, Severity::High);
        assert_eq!(a.bottlenecks.failed_steps_ratio, 25.0);
        assert_eq!(
            a.task_execution_summary.overall_health,
            OverallHealth::Critical
        );
        assert!(a.task_execution_summary.recommendations[0].contains("`b`"));
        assert_eq!(
            a.dependency_graph.nodes[3].status_reason,
            "Blocked by a failed upstream step"
        );
    }

    #[test]
    fn chain_error_at_root_is_critical_with_configurable_thresholds() {
        // A 12-step chain whose root failed permanently (attempts left).
        let mut steps: Vec<StepSnapshot> = (0..12)
            .map(|i| {
                let parents: Vec<usize> = if i == 0 { vec![] } else { vec![i - 1] };
                step(i as u128, &format!("s{i}"), Pending, &parents)
            })
            .collect();
        steps[0].state = Error;
        steps[0].attempts = 1;
        steps[0].retryable = false;
        steps[0].max_attempts = 1;
        let a = run(&steps);
        let b = &a.bottlenecks.bottlenecks[0];
        // (11 × 5 + 11 × 15) × 2.5 + 1 × 3 + 10 (non-retryable) + 20 (exhausted)
        assert_eq!(b.impact_score, 220.0 * 2.5 + 33.0);
        assert_eq!(b.severity, Severity::Critical);
        assert_eq!(a.task_execution_summary.critical_bottlenecks_count, 1);
        assert_eq!(a.bottlenecks.overall_impact, "high");

        let lenient = DependencyGraphWeights {
            severity_thresholds: SeverityThresholds {
                critical: 10_000.0,
                high: 5_000.0,
                medium: 1_000.0,
            },
            ..Default::default()
        };
        let a = analyze(&steps, now(), &lenient).unwrap();
        assert_eq!(a.bottlenecks.bottlenecks[0].severity, Severity::Low);
        assert_eq!(a.task_execution_summary.critical_bottlenecks_count, 0);
    }

    #[test]
    fn retrying_step_is_a_warning_with_backoff_eta() {
        let mut steps = diamond([Complete, Pending, Complete, Pending]);
        steps[1].attempts = 2;
        steps[1].ready_at = Some(now() + chrono::Duration::seconds(90));
        let a = run(&steps);
        assert_eq!(a.error_chains.total_error_steps, 0);
        let kinds: Vec<BottleneckType> = a
            .bottlenecks
            .bottlenecks
            .iter()
            .map(|b| b.bottleneck_type)
            .collect();
        assert!(kinds.contains(&BottleneckType::RetryInstability));
        assert!(kinds.contains(&BottleneckType::DependencyBlock));
        let retry = a
            .bottlenecks
            .bottlenecks
            .iter()
            .find(|b| b.bottleneck_type == BottleneckType::RetryInstability)
            .unwrap();
        assert_eq!(retry.estimated_resolution_time, "2 minutes");
        assert_eq!(retry.resolution_strategy, "Wait for backoff period");
        assert_eq!(
            a.task_execution_summary.overall_health,
            OverallHealth::Warning
        );
        assert_eq!(
            a.dependency_graph.nodes[1].status_reason,
            "In backoff period"
        );
    }

    #[test]
    fn critical_path_score_follows_the_reference_formula() {
        // A two-step chain, nothing done, healthy: h = 1.
        let mut steps = vec![step(0, "a", Pending, &[]), step(1, "b", Pending, &[0])];
        steps[0].ready_at = Some(now());
        let a = run(&steps);
        let p = &a.critical_paths.paths[0];
        assert_eq!(p.length, 2);
        assert_eq!(p.blocked_steps, 1);
        assert_eq!(p.ready_steps, 1);
        assert_eq!(p.estimated_duration_seconds, 60.0);
        // 2 × 10 + 1 blocked × 25 + 2 × 60 / 60 = 47, completion 0 → × 1.
        assert_eq!(p.criticality_score, 47.0);

        let done = run(&[step(0, "a", Complete, &[]), step(1, "b", Complete, &[0])]);
        let p = &done.critical_paths.paths[0];
        // (20 − 30 + 2) × (1 − 0.3) < 0 → 0.
        assert_eq!(p.criticality_score, 0.0);
        assert_eq!(p.completion_percentage, 100.0);
        assert_eq!(
            done.task_execution_summary.recommendations,
            ["Task execution appears healthy"]
        );
    }

    #[test]
    fn cancelled_step_blocks_like_a_failure() {
        let a = run(&diamond([Complete, Cancelled, Complete, Pending]));
        assert_eq!(a.error_chains.total_error_steps, 1);
        let chain = &a.error_chains.error_chains[0];
        assert_eq!(chain.state, Cancelled);
        assert_eq!(chain.recovery_strategies[0].strategy, "Create a new task");
        assert_eq!(
            a.bottlenecks.bottlenecks[0].bottleneck_type,
            BottleneckType::Cancelled
        );
    }

    #[test]
    fn many_paths_use_dynamic_programming() {
        // 12 layers of 2 fully connected steps: 2^12 = 4096 paths.
        let mut steps = Vec::new();
        for layer in 0..12usize {
            for k in 0..2usize {
                let parents: Vec<usize> = if layer == 0 {
                    vec![]
                } else {
                    vec![(layer - 1) * 2, (layer - 1) * 2 + 1]
                };
                steps.push(step(
                    (layer * 2 + k) as u128,
                    &format!("l{layer}k{k}"),
                    Pending,
                    &parents,
                ));
            }
        }
        steps[3].state = Error;
        let a = run(&steps);
        let c = &a.critical_paths;
        assert_eq!(c.total_paths, 4096);
        assert!(!c.exhaustive);
        assert_eq!(c.longest_path_length, 12);
        assert_eq!(c.paths.len(), 5);
        // The best path goes through the failed step.
        assert!(c.paths[0].step_names.contains(&"l1k1".to_string()));
        assert!(
            c.paths
                .windows(2)
                .all(|w| w[0].criticality_score >= w[1].criticality_score)
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let steps = vec![step(0, "a", Pending, &[5])];
        assert!(matches!(
            analyze(&steps, now(), &DependencyGraphWeights::default()),
            Err(AnalysisError::UnknownParent { .. })
        ));
        let cyclic = vec![step(0, "a", Pending, &[1]), step(1, "b", Pending, &[0])];
        let err = analyze(&cyclic, now(), &DependencyGraphWeights::default()).unwrap_err();
        assert!(err.to_string().contains("cycle"));
        let empty = run(&[]);
        assert_eq!(empty.critical_paths.total_paths, 0);
        assert_eq!(empty.parallelism_opportunities.total_levels, 0);
    }

    #[test]
    fn thousand_step_fanout_is_fast_enough_to_run_in_a_test() {
        // root → 998 middles → join, root done, middles running/pending.
        let mut steps = vec![step(0, "root", Complete, &[])];
        for i in 1..999u128 {
            let mut s = step(i, &format!("m{i}"), Pending, &[0]);
            s.ready_at = Some(now());
            steps.push(s);
        }
        steps.push(step(999, "join", Pending, &(1..999).collect::<Vec<_>>()));
        let a = run(&steps);
        assert_eq!(a.critical_paths.total_paths, 998);
        assert_eq!(a.parallelism_opportunities.max_parallel_steps, 998);
        assert_eq!(
            a.parallelism_opportunities.current_parallel_opportunities,
            998
        );
        assert_eq!(
            a.task_execution_summary.overall_health,
            OverallHealth::Healthy
        );
    }
}
