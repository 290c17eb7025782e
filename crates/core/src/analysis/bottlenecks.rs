//! Bottlenecks: failed, cancelled and retrying steps (and what waits on
//! them), with impact scores, severity and resolution strategies.

use super::*;

impl Ctx<'_> {
    pub(super) fn bottlenecks(&self) -> Bottlenecks {
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
}
