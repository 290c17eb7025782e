//! Plans at scale: with a million finished single-step tasks in the tables
//! (generated in SQL, with the dead row versions an engine-run history
//! leaves, so the test stays fast), the hot statements (claim, finish,
//! readiness, rescue) and the bounded reads (a keyset page of tasks, a
//! task's edges, a retention batch) reach rows only through their indexes:
//! on a never-analyzed database (what a fresh install with autovacuum off
//! has) and after `maintenance()` (VACUUM ANALYZE).
//!
//! `TASKER_PLAN_HISTORY` overrides the number of tasks (default 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::Duration;
use common::TestDb;
use std::sync::Arc;
use std::time::Instant;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{base, params};
use tasker_store::{NewTask, PruneQuery, Store};
use tasker_store_postgres::{PgStore, PlanKind};

const TABLES: [&str; 5] = [
    "steps",
    "tasks",
    "step_edges",
    "step_transitions",
    "task_transitions",
];

async fn explain(store: &PgStore, sql: &str) -> String {
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(store.pool())
        .await
        .unwrap();
    lines.join("\n")
}

fn no_table_scan(name: &str, plan: &str) {
    for table in TABLES {
        assert!(
            !plan.contains(&format!("Seq Scan on {table} ")),
            "{name} scans {table}:\n{plan}"
        );
    }
}

async fn check(store: &PgStore, when: &str) {
    for kind in [PlanKind::Custom, PlanKind::Generic] {
        for (name, plan) in store.explain_hot_path(kind).await.unwrap() {
            let name = format!("{name} ({kind:?} plan, {when})");
            no_table_scan(&name, &plan);
            if name.starts_with("claim") && !name.contains("among: true") {
                assert!(plan.contains("steps_ready_idx"), "{name}:\n{plan}");
            }
            if name.starts_with("rescue") {
                assert!(plan.contains("steps_lease_idx"), "{name}:\n{plan}");
            }
        }
    }
    // Bounded reads, as the store writes them.
    let reads = [
        (
            "task list, keyset page",
            "SELECT id FROM tasks WHERE (created_at, id) < (now(), '00000000-0000-0000-0000-000000000000'::uuid) \
             ORDER BY created_at DESC, id DESC LIMIT 26",
            "tasks_created_id_idx",
        ),
        (
            "step list, a task's edges",
            "SELECT parent_id, child_id FROM step_edges WHERE task_id = '00000000-0000-0000-0000-000000000000'::uuid",
            "step_edges_task_idx",
        ),
    ];
    for (name, sql, index) in reads {
        let plan = explain(store, sql).await;
        let name = format!("{name} ({when})");
        no_table_scan(&name, &plan);
        assert!(plan.contains(index), "{name}:\n{plan}");
        assert!(!plan.contains("Sort"), "{name} sorts:\n{plan}");
    }
    // A retention batch half-way into the history: an index range in
    // completion order that stops after the page.
    let plan = store
        .explain_prune_candidates(base() - Duration::days(30))
        .await
        .unwrap();
    let name = format!("retention batch ({when})");
    no_table_scan(&name, &plan);
    assert!(
        plan.contains("Scan using tasks_finished_idx"),
        "{name}:\n{plan}"
    );
    assert!(!plan.contains("Sort"), "{name} sorts:\n{plan}");
}

#[tokio::test]
async fn plans_hold_with_a_million_finished_tasks() {
    let n: u64 = std::env::var("TASKER_PLAN_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    let now = base();
    let started = Instant::now();
    store
        .load_finished_history(n, now - Duration::days(60), 1.0, "history", false)
        .await
        .unwrap();
    eprintln!("{n} finished tasks generated in {:?}", started.elapsed());
    let stats = s.stats().await.unwrap();
    assert_eq!(stats.tasks_by_state["complete"], n as i64);
    assert_eq!(stats.steps_by_state["complete"], n as i64);
    // Each generated task looks engine-made: three transitions on the task
    // and on its step.
    let oldest = s
        .prune_candidates(&PruneQuery {
            finished_before: now,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(s.task_transitions(oldest).await.unwrap().len(), 3);
    let step = &s.step_list(oldest).await.unwrap()[0];
    assert_eq!(s.step_transitions(step.id).await.unwrap().len(), 3);
    // Finished tasks with edges too (4,000 diamond steps), as real history has.
    for _ in 0..2 {
        let diamonds: Vec<NewTask> = (0..500).map(|_| new_task(Shape::Diamond, now)).collect();
        s.task_create_many(diamonds).await.unwrap();
    }
    sqlx::query(
        "UPDATE steps SET status = 'complete', ready_at = NULL, remaining_parents = 0, completed_at = $1 \
         WHERE status = 'pending'",
    )
    .bind(now)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE tasks SET status = 'complete', steps_remaining = 0, steps_live = 0, completed_at = $1 \
         WHERE status = 'pending'",
    )
    .bind(now)
    .execute(store.pool())
    .await
    .unwrap();
    // Live work: 500 running under leases, 500 ready.
    let fresh: Vec<NewTask> = (0..40).map(|_| new_task(Shape::Roots(25), now)).collect();
    s.task_create_many(fresh).await.unwrap();
    assert_eq!(
        s.step_claim(&params("w", 500, now)).await.unwrap().len(),
        500
    );

    check(&store, "never analyzed").await;
    let runs = s.maintenance().await.unwrap();
    assert!(runs.iter().any(|r| r.target == "steps"), "{runs:?}");
    check(&store, "after maintenance").await;
    let health = s.storage_health().await.unwrap();
    assert_eq!(health.ready_steps, 500);
    assert!(
        !health.warnings.iter().any(|w| w.contains("bloated")),
        "{health:?}"
    );
    // And the claim does take the ready steps only.
    assert_eq!(
        s.step_claim(&params("w", 1000, now)).await.unwrap().len(),
        500
    );
}
