//! Critical paths: per-step duration and weight, path scores, exhaustive
//! enumeration while paths are few, dynamic programming beyond.

use super::*;

impl Ctx<'_> {
    /// Estimated seconds of one step on a path.
    pub(super) fn step_duration(&self, i: usize) -> f64 {
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
    pub(super) fn step_weight(&self, i: usize) -> f64 {
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

    pub(super) fn score_path(&self, path: &[usize]) -> PathRecord {
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

    pub(super) fn critical_paths(&self) -> CriticalPaths {
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
    pub(super) fn all_paths(&self, roots: &[usize]) -> Vec<Vec<usize>> {
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
    pub(super) fn dp_candidate_paths(&self) -> Vec<Vec<usize>> {
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
}
