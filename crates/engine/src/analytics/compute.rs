//! The arithmetic of the reports, over a history sample (pure: no I/O).

use super::report::*;
use super::{AnalyticsLimits, Scope};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};
use tasker_store::HistoryStep;

/// How many entries the "top" lists keep.
const TOP: usize = 10;

pub(super) fn performance(
    rows: &[HistoryStep],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    period_hours: f64,
    limits: AnalyticsLimits,
) -> PerformanceReport {
    let mut by_kind: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut all = Acc::default();
    for r in rows {
        all.add(r);
        by_kind.entry(&r.handler_kind).or_default().add(r);
    }
    let mut by_handler: Vec<HandlerFigures> = by_kind
        .into_iter()
        .map(|(k, acc)| HandlerFigures {
            handler_kind: k.to_string(),
            figures: acc.figures(),
        })
        .collect();
    by_handler.sort_by_key(|h| std::cmp::Reverse(h.figures.steps));
    PerformanceReport {
        period_hours,
        since,
        generated_at: now,
        sample: sample(rows, limits),
        tasks: tasks(rows, period_hours),
        steps: all.figures(),
        by_handler,
    }
}

pub(super) fn bottlenecks(
    rows: &[HistoryStep],
    scope: Scope,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    period_hours: f64,
    limits: AnalyticsLimits,
) -> BottleneckReport {
    let mut by_step: BTreeMap<(&str, &str), Acc> = BTreeMap::new();
    for r in rows {
        by_step
            .entry((&r.step_name, &r.handler_kind))
            .or_default()
            .add(r);
    }
    let mut steps: Vec<NamedStepFigures> = by_step
        .into_iter()
        .map(|((name, kind), acc)| NamedStepFigures {
            step_name: name.to_string(),
            handler_kind: kind.to_string(),
            figures: acc.figures(),
        })
        .collect();
    let p95 = |s: &NamedStepFigures| s.figures.duration.p95_ms.unwrap_or(-1.0);
    steps.sort_by(|a, b| p95(b).total_cmp(&p95(a)));
    let slowest_steps = steps
        .iter()
        .filter(|s| s.figures.duration.count > 0)
        .take(TOP)
        .cloned()
        .collect();
    let mut most_retried: Vec<NamedStepFigures> = steps
        .iter()
        .filter(|s| s.figures.retries > 0)
        .cloned()
        .collect();
    most_retried.sort_by_key(|s| std::cmp::Reverse(s.figures.retries));
    most_retried.truncate(TOP);
    let mut most_failing: Vec<NamedStepFigures> = steps
        .iter()
        .filter(|s| s.figures.errored > 0)
        .cloned()
        .collect();
    let rate = |s: &NamedStepFigures| s.figures.error_rate.unwrap_or(0.0);
    most_failing.sort_by(|a, b| rate(b).total_cmp(&rate(a)));
    most_failing.truncate(TOP);
    BottleneckReport {
        scope,
        period_hours,
        since,
        generated_at: now,
        sample: sample(rows, limits),
        tasks: tasks(rows, period_hours),
        steps,
        slowest_steps,
        most_retried_steps: most_retried,
        most_failing_steps: most_failing,
    }
}

fn sample(rows: &[HistoryStep], limits: AnalyticsLimits) -> Sample {
    let tasks = rows.iter().map(|r| r.task_id).collect::<HashSet<_>>().len() as u64;
    Sample {
        tasks,
        steps: rows.len() as u64,
        // The read stops at `max_tasks`: reaching it means there may be more.
        truncated: tasks >= u64::from(limits.max_tasks),
        max_tasks: limits.max_tasks,
    }
}

fn tasks(rows: &[HistoryStep], period_hours: f64) -> TaskFigures {
    let mut seen = HashSet::new();
    let mut f = TaskFigures::default();
    let mut durations = Vec::new();
    for r in rows {
        if !seen.insert(r.task_id) {
            continue;
        }
        f.created += 1;
        match r.task_status.as_str() {
            "complete" | "resolved_manually" => f.completed += 1,
            "error" => f.errored += 1,
            "cancelled" => f.cancelled += 1,
            _ => f.open += 1,
        }
        if let Some(done) = r.task_completed_at
            && r.task_status != "pending"
            && r.task_status != "in_progress"
        {
            durations.push(ms(done - r.task_created_at));
        }
    }
    f.finished = f.completed + f.errored + f.cancelled;
    f.completion_rate = ratio(f.completed, f.finished);
    f.error_rate = ratio(f.errored, f.finished);
    f.throughput_per_hour = f.finished as f64 / period_hours;
    f.duration = percentiles(durations);
    f
}

/// Running figures of a group of steps.
#[derive(Default)]
struct Acc {
    steps: u64,
    completed: u64,
    errored: u64,
    retries: u64,
    retried_steps: u64,
    durations: Vec<f64>,
}

impl Acc {
    fn add(&mut self, r: &HistoryStep) {
        self.steps += 1;
        match r.step_status.as_str() {
            "complete" | "resolved_manually" => self.completed += 1,
            "error" => self.errored += 1,
            _ => {}
        }
        if r.attempts > 1 {
            self.retries += (r.attempts - 1) as u64;
            self.retried_steps += 1;
        }
        // A manually resolved step ran no handler to completion: no duration.
        if r.step_status == "complete"
            && let (Some(start), Some(end)) = (r.last_attempted_at, r.step_completed_at)
        {
            self.durations.push(ms(end - start).max(0.0));
        }
    }

    fn figures(self) -> StepFigures {
        StepFigures {
            steps: self.steps,
            completed: self.completed,
            errored: self.errored,
            error_rate: ratio(self.errored, self.completed + self.errored),
            retries: self.retries,
            retried_steps: self.retried_steps,
            duration: percentiles(self.durations),
        }
    }
}

fn ms(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Nearest-rank percentiles (the value at rank ⌈p·n⌉), mean and max.
pub(super) fn percentiles(mut v: Vec<f64>) -> Durations {
    if v.is_empty() {
        return Durations::default();
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let at = |p: f64| {
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        v[rank - 1]
    };
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Durations {
        count: n as u64,
        p50_ms: Some(round(at(0.50))),
        p95_ms: Some(round(at(0.95))),
        p99_ms: Some(round(at(0.99))),
        mean_ms: Some(round(v.iter().sum::<f64>() / n as f64)),
        max_ms: Some(round(v[n - 1])),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let d = percentiles((1..=100).map(f64::from).collect());
        assert_eq!(d.count, 100);
        assert_eq!(
            (d.p50_ms, d.p95_ms, d.p99_ms, d.max_ms),
            (Some(50.0), Some(95.0), Some(99.0), Some(100.0))
        );
        assert_eq!(d.mean_ms, Some(50.5));
        let one = percentiles(vec![7.0]);
        assert_eq!((one.p50_ms, one.p99_ms), (Some(7.0), Some(7.0)));
        assert_eq!(percentiles(Vec::new()), Durations::default());
    }

    fn row(
        task: Uuid,
        status: &str,
        step: &str,
        step_status: &str,
        attempts: i32,
        ms: i64,
    ) -> HistoryStep {
        let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        HistoryStep {
            task_id: task,
            task_status: status.into(),
            task_created_at: t0,
            task_completed_at: (status != "in_progress").then(|| t0 + chrono::Duration::seconds(2)),
            step_name: step.into(),
            handler_kind: "noop".into(),
            step_status: step_status.into(),
            attempts,
            last_attempted_at: Some(t0),
            step_completed_at: (step_status == "complete")
                .then(|| t0 + chrono::Duration::milliseconds(ms)),
        }
    }

    /// Rates, retries and rankings from a known sample.
    #[test]
    fn bottlenecks_rank_slow_retried_and_failing_steps() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let rows = vec![
            row(a, "complete", "fetch", "complete", 3, 400),
            row(a, "complete", "save", "complete", 1, 10),
            row(b, "error", "fetch", "error", 3, 0),
            row(b, "error", "save", "pending", 0, 0),
            row(c, "in_progress", "fetch", "complete", 1, 200),
            row(c, "in_progress", "save", "in_progress", 1, 0),
        ];
        let now = Utc::now();
        let r = bottlenecks(
            &rows,
            Scope::default(),
            now,
            now,
            2.0,
            AnalyticsLimits::default(),
        );
        assert_eq!(
            (r.sample.tasks, r.sample.steps, r.sample.truncated),
            (3, 6, false)
        );
        assert_eq!(
            (
                r.tasks.created,
                r.tasks.finished,
                r.tasks.completed,
                r.tasks.errored,
                r.tasks.open
            ),
            (3, 2, 1, 1, 1)
        );
        assert_eq!(r.tasks.error_rate, Some(0.5));
        assert_eq!(r.tasks.throughput_per_hour, 1.0);
        assert_eq!(r.tasks.duration.p50_ms, Some(2000.0));
        let names: Vec<_> = r
            .slowest_steps
            .iter()
            .map(|s| s.step_name.as_str())
            .collect();
        assert_eq!(names, ["fetch", "save"]);
        let fetch = &r.steps[0];
        assert_eq!((fetch.figures.retries, fetch.figures.retried_steps), (4, 2));
        assert_eq!(fetch.figures.duration.p95_ms, Some(400.0));
        assert_eq!(fetch.figures.duration.p50_ms, Some(200.0));
        assert_eq!(fetch.figures.error_rate, Some(1.0 / 3.0));
        assert_eq!(r.most_retried_steps.len(), 1);
        assert_eq!(r.most_failing_steps[0].step_name, "fetch");
        // The cap reached is reported.
        let capped = AnalyticsLimits {
            max_tasks: 3,
            scan_limit: 3,
        };
        let p = performance(&rows, now, now, 1.0, capped);
        assert!(p.sample.truncated);
        assert_eq!(p.by_handler[0].figures.steps, 6);
    }
}
