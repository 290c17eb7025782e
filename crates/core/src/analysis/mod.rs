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

//!
//! ## Layout
//!
//! | module | concern |
//! |---|---|
//! | `weights` | [`DependencyGraphWeights`]: every weight, threshold and estimate, with defaults and validation |
//! | `report` | the input [`StepSnapshot`] and the report types ([`DependencyAnalysis`] and its parts) |
//! | `graph` | the runtime graph: nodes, edges, levels, adjacency |
//! | `paths` | critical paths: scores, enumeration, dynamic programming |
//! | `parallelism` | per-level parallelism |
//! | `errors` | error chains and recovery |
//! | `bottlenecks` | bottlenecks and their severity |
//! | `summary` | the execution summary: health and recommendations |
//! | here | [`analyze`], the per-step facts every part reads, shared helpers |

mod bottlenecks;
mod errors;
mod graph;
mod parallelism;
mod paths;
mod report;
mod summary;
#[cfg(test)]
mod tests;
mod weights;

pub use report::*;
pub use weights::*;

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
}
