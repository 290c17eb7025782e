//! Parallelism per dependency level: ready steps, potential, bottleneck risk.

use super::*;

impl Ctx<'_> {
    pub(super) fn parallelism(&self) -> Parallelism {
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
}
