//! Unit tests of the analysis: expected values are worked out by hand from
//! the reference's definitions, never recomputed with the code under test.

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
fn exhausted_error_makes_a_chain_and_a_high_bottleneck() {
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
    // Worked by hand from the reference's definition (docs/API.md):
    // (1 downstream × 5 + 1 blocked × 15) × (error 2.0 + exhausted 0.5)
    // = 50, + 3 failed attempts × 3 = 59, + exhausted 20 = 79: at or above
    // `high` (50), below `critical` (100).
    assert_eq!(b.impact_score, 79.0);
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
    // By hand: (11 downstream × 5 + 11 blocked × 15) × (2.0 + 0.5) = 550,
    // + 1 failed attempt × 3 + 10 (non-retryable) + 20 (exhausted) = 583.
    assert_eq!(b.impact_score, 583.0);
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
