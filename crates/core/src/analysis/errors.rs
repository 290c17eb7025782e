//! Error chains: failed or cancelled steps, what they block downstream, retry
//! situation, recovery strategies and priorities.

use super::*;

impl Ctx<'_> {
    /// Descendants, and those of them that are waiting (not done, unmet dependencies).
    pub(super) fn downstream(&self, i: usize) -> (Vec<usize>, Vec<usize>) {
        let all = self.dag.descendants(i);
        let blocked = all.iter().copied().filter(|&d| self.waiting(d)).collect();
        (all, blocked)
    }

    pub(super) fn recovery_strategies(&self, i: usize) -> Vec<RecoveryStrategy> {
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

    pub(super) fn error_chains(&self) -> ErrorChains {
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
}
