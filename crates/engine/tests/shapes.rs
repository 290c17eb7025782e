//! End-to-end runs of the reference workflow shapes (ruby-tasker-semantics
//! §13.1) on a real SQLite file: every step runs once, after all its parents
//! ended, with its parents' results.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::HashMap;
use tasker_core::{StepState, TaskState};
use tasker_engine::TaskRequest;

/// Builds a template from (step, parents) pairs, all handled by the recorder.
fn shape_yaml(name: &str, steps: &[(&str, &[&str])]) -> String {
    let mut y = format!("name: {name}\nnamespace: shapes\nstep_templates:\n");
    for (step, parents) in steps {
        y.push_str(&format!(
            "  - name: {step}\n    handler: {{ kind: record }}\n    inputs: {{ delay_ms: 5 }}\n"
        ));
        if !parents.is_empty() {
            y.push_str(&format!("    depends_on_steps: [{}]\n", parents.join(", ")));
        }
    }
    y
}

async fn run_shape(name: &str, steps: &[(&str, &[&str])]) {
    let (store, _dir) = sqlite().await;
    let rec = Recorder::default();
    let tasker = builder(store.clone())
        .handler("record", rec.clone())
        .template(template(&shape_yaml(name, steps)))
        .build()
        .unwrap();
    let done = run_once(&tasker, TaskRequest::new("shapes", name)).await;
    let task = done.clone();

    assert_eq!(done.status, TaskState::Complete, "{name}");
    let calls = rec.by_step();
    assert_eq!(
        rec.calls().len(),
        steps.len(),
        "{name}: each step runs exactly once"
    );
    for (step, parents) in steps {
        let call = &calls[*step];
        let mut expected: Vec<String> = parents.iter().map(|p| p.to_string()).collect();
        expected.sort();
        assert_eq!(
            call.parents, expected,
            "{name}/{step} gets its parents' results"
        );
        for p in *parents {
            assert!(
                call.start >= calls[*p].end,
                "{name}: {step} started before parent {p} ended"
            );
        }
    }
    let rows = store.step_list(task.id).await.unwrap();
    assert!(
        rows.iter()
            .all(|s| s.status == StepState::Complete && s.attempts == 1)
    );
    let results: HashMap<_, _> = rows
        .iter()
        .map(|s| (s.name.clone(), s.results.clone()))
        .collect();
    assert_eq!(
        results[steps[0].0],
        Some(serde_json::json!({"step": steps[0].0}))
    );
    // Every step: pending → in_progress → complete, persisted (its history
    // starts with its first change: a step's creation is not a transition).
    for s in &rows {
        let t: Vec<String> = step_states(&store, s.id).await;
        assert_eq!(t, ["in_progress", "complete"], "{name}/{}", s.name);
    }
    let t: Vec<String> = task_states(&store, task.id).await;
    assert_eq!(t, ["pending", "in_progress", "complete"]);
}

#[tokio::test]
async fn linear() {
    run_shape(
        "linear",
        &[
            ("initialize_data", &[]),
            ("validate_input", &["initialize_data"]),
            ("process_data", &["validate_input"]),
            ("transform_results", &["process_data"]),
            ("validate_output", &["transform_results"]),
            ("finalize_workflow", &["validate_output"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn diamond() {
    run_shape(
        "diamond",
        &[
            ("start_workflow", &[]),
            ("branch_one_process", &["start_workflow"]),
            ("branch_one_validate", &["branch_one_process"]),
            ("branch_two_process", &["start_workflow"]),
            ("branch_two_validate", &["branch_two_process"]),
            (
                "merge_branches",
                &["branch_one_validate", "branch_two_validate"],
            ),
            ("end_workflow", &["merge_branches"]),
        ],
    )
    .await;
}

#[tokio::test]
async fn parallel_merge() {
    run_shape(
        "parallel_merge",
        &[
            ("fetch_user_data", &[]),
            ("fetch_order_data", &[]),
            ("fetch_inventory_data", &[]),
            ("fetch_pricing_data", &[]),
            ("process_user_data", &["fetch_user_data"]),
            ("process_order_data", &["fetch_order_data"]),
            (
                "merge_all_data",
                &[
                    "process_user_data",
                    "process_order_data",
                    "fetch_inventory_data",
                    "fetch_pricing_data",
                ],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn tree() {
    run_shape(
        "tree",
        &[
            ("root_initialization", &[]),
            ("branch_a_setup", &["root_initialization"]),
            ("branch_b_setup", &["root_initialization"]),
            ("branch_a_task_one", &["branch_a_setup"]),
            ("branch_a_task_two", &["branch_a_setup"]),
            ("branch_b_task_one", &["branch_b_setup"]),
            ("branch_b_task_two", &["branch_b_setup"]),
            (
                "aggregate_results",
                &[
                    "branch_a_task_one",
                    "branch_a_task_two",
                    "branch_b_task_one",
                    "branch_b_task_two",
                ],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn mixed() {
    run_shape(
        "mixed",
        &[
            ("init_auth", &[]),
            ("validate_permissions", &["init_auth"]),
            ("init_config", &[]),
            ("setup_environment", &["init_config"]),
            ("cleanup_temp_files", &["setup_environment"]),
            (
                "begin_processing",
                &["validate_permissions", "setup_environment"],
            ),
            ("process_critical_data", &["begin_processing"]),
            ("process_optional_data", &["begin_processing"]),
            (
                "finalize_and_report",
                &["process_critical_data", "cleanup_temp_files"],
            ),
        ],
    )
    .await;
}
