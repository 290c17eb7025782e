//! The task execution summary: counts, health and recommendations.

use super::*;

impl Ctx<'_> {
    pub(super) fn summary(
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
