//! What goes in (a snapshot of the task's steps) and what comes out (the
//! report types serialised by the REST API).

use super::*;

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
