//! Plans at scale on SQLite: with a million finished single-step tasks in
//! the tables (generated in SQL, `load_finished_history`), every hot
//! statement (the idle probes, the claim's pick in every shape and its
//! lease, the pick and lease in one statement, finish, the readiness read, rescue) reaches rows only through an
//! index, and the claim walks the ready index in order (no sort): on a
//! database without statistics (as the engine leaves it) and after
//! `ANALYZE` (statistics of the million rows), which is when SQLite's
//! planner could change its mind.
//!
//! `TASKER_PLAN_HISTORY` overrides the number of tasks (default 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Duration;
use sqlx::SqlitePool;
use std::sync::Arc;
use std::time::Instant;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{base, params};
use tasker_store::{NewTask, Store};
use tasker_store_sqlite::SqliteStore;

/// The index each statement must read, by name prefix; every name listed
/// must be among the statements explained.
const INDEXES: [(&str, &str); 16] = [
    ("claim: probe", "steps_ready_idx"),
    ("claim: pick", "steps_ready_idx"),
    ("claim: pick per task", "steps_ready_idx"),
    ("claim: pick among", "sqlite_autoindex_steps_1"),
    ("claim: pick per task among", "sqlite_autoindex_steps_1"),
    ("claim: lease", "sqlite_autoindex_steps_1"),
    // The pick and the lease in one statement: the ready index for the
    // pick, the primary key for each leased step.
    ("claim: lease as picked", "steps_ready_idx"),
    ("claim: lease as picked", "sqlite_autoindex_steps_1"),
    ("finish", "sqlite_autoindex_steps_1"),
    (
        "readiness: children",
        "SEARCH e USING PRIMARY KEY (parent_id=?)",
    ),
    ("rescue: probe", "steps_lease_idx"),
    ("rescue", "steps_lease_idx"),
    // A task's events: its own rows and its steps' rows, each through its
    // partial index, never by walking the outbox.
    ("events: one task", "events_task_idx"),
    ("events: one task", "events_step_idx"),
    ("events: many tasks", "events_task_idx"),
    ("events: many tasks", "events_step_idx"),
];

/// A full scan of a table (`SCAN <alias>` without an index, or a whole
/// index walked as a table): every `SCAN` line must be of a JSON list
/// (`json_each`), a CTE or subquery result, or a range-bounded index in
/// order (`SEARCH`).
fn check(name: &str, plan: &str) {
    for line in plan.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("SCAN ") {
            // Results of the statement's own CTEs and subqueries (at most
            // a batch of candidates) are fine to walk.
            let ok = rest.contains("VIRTUAL TABLE")
                || rest.starts_with("json_each")
                || rest.starts_with("(subquery")
                || ["cand", "ranked", "c", "j", "a", "x"]
                    .iter()
                    .any(|t| rest == *t || rest.starts_with(&format!("{t} ")));
            assert!(ok, "{name} scans a table:\n{plan}");
        }
        // The plain pick walks the ready index in order: it sorts nothing.
        let plain_pick = name.starts_with("claim: pick")
            && !name.contains("per task")
            && !name.contains("among");
        assert!(
            !plain_pick || !line.contains("USE TEMP B-TREE FOR ORDER BY"),
            "{name} sorts the frontier:\n{plan}"
        );
    }
}

async fn check_all(store: &SqliteStore, when: &str) {
    let plans = store.explain_hot_path().await.unwrap();
    for (prefix, _) in INDEXES {
        assert!(
            plans.iter().any(|(n, _)| n.starts_with(prefix)),
            "no statement named {prefix}*"
        );
    }
    for (name, plan) in &plans {
        let label = format!("{name} ({when})");
        eprintln!("{label}:\n{plan}\n");
        check(&label, plan);
        // The longest matching prefix decides (`claim: pick per task among`
        // is an among-pick, reached by primary key); it may name several.
        let longest = INDEXES
            .iter()
            .filter(|(p, _)| name.starts_with(p))
            .map(|(p, _)| p.len())
            .max();
        for (_, index) in INDEXES
            .iter()
            .filter(|(p, _)| name.starts_with(p) && Some(p.len()) == longest)
        {
            assert!(
                plan.contains(index),
                "{label} does not read {index}:\n{plan}"
            );
        }
    }
}

#[tokio::test]
async fn plans_hold_with_a_million_finished_tasks() {
    let n: u64 = std::env::var("TASKER_PLAN_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plans.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    let s: Arc<dyn Store> = Arc::new(store.clone());
    let now = base();
    let started = Instant::now();
    store
        .load_finished_history(n, now - Duration::days(60), 1.0, "history")
        .await
        .unwrap();
    eprintln!("{n} finished tasks generated in {:?}", started.elapsed());
    assert_eq!(
        s.stats().await.unwrap().tasks_by_state["complete"],
        n as i64
    );
    // Finished tasks with edges (diamonds), then live work: 500 running
    // under leases, 500 ready.
    let diamonds: Vec<NewTask> = (0..500).map(|_| new_task(Shape::Diamond, now)).collect();
    s.task_create_many(diamonds).await.unwrap();
    let fresh: Vec<NewTask> = (0..40).map(|_| new_task(Shape::Roots(25), now)).collect();
    s.task_create_many(fresh).await.unwrap();
    assert_eq!(
        s.step_claim(&params("w", 1000, now)).await.unwrap().len(),
        1000
    );
    check_all(&store, "no statistics").await;
    let db = SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(&db).await.unwrap();
    db.close().await;
    // New connections read the statistics.
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    check_all(&store, "after ANALYZE").await;
    let s: Arc<dyn Store> = Arc::new(store);
    assert!(
        !s.step_claim(&params("w", 1000, now))
            .await
            .unwrap()
            .is_empty(),
        "the claim still finds the ready steps"
    );
}
