//! Plans at scale: with a million finished single-step tasks in the tables
//! (generated in SQL, with the dead row versions an engine-run history
//! leaves, so the test stays fast), on a never-analyzed database (what a
//! fresh install with autovacuum off has) and after `maintenance()` (VACUUM
//! ANALYZE), in custom and generic plans:
//!
//! - every hot statement (claim in every shape, finish, readiness, renew,
//!   rescue, release) reads the index it is built on (`HOT_INDEXES`) and
//!   scans no table or partition that grows with the history, however small
//!   (an empty month ahead included);
//! - the bounded reads (a keyset page of tasks, tasks by tag, a task's edges), a
//!   retention batch and a prune batch (`prune_expired`, one statement)
//!   read index ranges only and sort nothing;
//! - a task's or step's transitions, events after a cursor and a task's
//!   events read each month partition holding rows through its index.
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
use tasker_store::{EventQuery, NewTask, PruneQuery, Store};
use tasker_store_postgres::{PgStore, PlanKind};

/// The index each hot statement must read, by statement name prefix (see
/// `PgStore::explain_hot_path`); every name listed must be among the
/// statements explained, so a renamed or dropped statement fails here.
/// (`release: keys` reads `flow_keys`, one row per concurrency key in use,
/// not history: it is only checked for table scans of [`TABLES`].)
const HOT_INDEXES: [(&str, &[&str]); 8] = [
    ("claim", &["steps_ready_idx"]),
    ("finish: steps", &["steps_pkey"]),
    ("finish: children", &["step_edges_pkey", "steps_pkey"]),
    ("finish: lock tasks", &["tasks_pkey"]),
    ("finish: write tasks", &["tasks_pkey"]),
    ("renew", &["steps_pkey"]),
    ("rescue", &["steps_lease_idx"]),
    ("release: unpark", &["steps_parked_idx"]),
];

/// Indexes a hot statement must not read, by statement name prefix: the
/// finish and the renewal reach their batch by primary key, never through
/// the partial lease index, whose size the planner misjudges when the
/// statistics predate the last burst of claims (docs/PERFORMANCE.md,
/// "Events in the hot statements").
const AVOIDED_INDEXES: [(&str, &[&str]); 2] = [
    ("finish: steps", &["steps_lease_idx"]),
    ("renew", &["steps_lease_idx"]),
];

async fn explain(store: &PgStore, sql: &str) -> String {
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(store.pool())
        .await
        .unwrap();
    lines.join("\n")
}

/// The tables that grow with the history (a partition is `<table>_pYYYYMM`
/// or `<table>_default`). Small tables that grow with something else (the
/// flow-control keys and buckets: one row per key in use) may be scanned.
const TABLES: [&str; 7] = [
    "steps",
    "tasks",
    "step_edges",
    "annotations",
    "step_transitions",
    "task_transitions",
    "events",
];

/// None of [`TABLES`], and none of their partitions (however small: an
/// empty month ahead or a DEFAULT partition included), is read whole.
fn no_table_scan(name: &str, plan: &str) {
    for table in TABLES {
        assert!(
            !plan.contains(&format!("Seq Scan on {table} "))
                && !plan.contains(&format!("Seq Scan on {table}_")),
            "{name} scans {table}:\n{plan}"
        );
    }
}

/// No table scan, and no rows sorted: every row comes from an index range,
/// in the order the read needs, so the read stops after its page. (The hot
/// path does sort a few rows it already holds, e.g. a claim's batch into
/// lock order, so this is for the reads.)
fn strict(name: &str, plan: &str) {
    no_table_scan(name, plan);
    for line in plan.lines() {
        let node = line.trim_start().trim_start_matches("->").trim_start();
        assert!(
            !(node.starts_with("Sort ") || node.starts_with("Incremental Sort ")),
            "{name} sorts:\n{plan}"
        );
    }
}

async fn check(store: &PgStore, when: &str) {
    for kind in [PlanKind::Custom, PlanKind::Generic] {
        let plans = store.explain_hot_path(kind).await.unwrap();
        for (prefix, _) in HOT_INDEXES {
            assert!(
                plans.iter().any(|(name, _)| name.starts_with(prefix)),
                "no hot statement named {prefix}*: {:?}",
                plans.iter().map(|p| &p.0).collect::<Vec<_>>()
            );
        }
        for (name, plan) in plans {
            let name = format!("{name} ({kind:?} plan, {when})");
            no_table_scan(&name, &plan);
            for (prefix, indexes) in HOT_INDEXES {
                // A claim among given steps (claim on completion) reaches
                // them by primary key instead of walking the ready index.
                let among = name.contains("among: true");
                if !name.starts_with(prefix) || (prefix == "claim" && among) {
                    continue;
                }
                for index in indexes {
                    assert!(
                        plan.contains(index),
                        "{name} does not read {index}:\n{plan}"
                    );
                }
            }
            for (prefix, indexes) in AVOIDED_INDEXES {
                if !name.starts_with(prefix) {
                    continue;
                }
                for index in indexes {
                    assert!(!plan.contains(index), "{name} reads {index}:\n{plan}");
                }
            }
            if name.starts_with("claim") && name.contains("among: true") {
                assert!(plan.contains("steps_pkey"), "{name}:\n{plan}");
                assert!(!plan.contains("steps_ready_idx"), "{name}:\n{plan}");
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
            "tasks by tag (the filter of src/read.rs: the index holds tagged tasks only)",
            "SELECT id FROM tasks WHERE tags <> '[]'::jsonb AND tags @> '[\"nightly\"]'::jsonb",
            "tasks_tags_gin",
        ),
        (
            "step list, a task's edges",
            "SELECT parent_id, child_id FROM step_edges WHERE task_id = '00000000-0000-0000-0000-000000000000'::uuid",
            "step_edges_task_idx",
        ),
        // The partitioned tables: each partition's copy of the index
        // (`<partition>_<columns>_idx`), merged in order.
        (
            "a task's transitions",
            "SELECT id FROM task_transitions WHERE task_id = '00000000-0000-0000-0000-000000000000'::uuid \
             AND EXISTS (SELECT 1 FROM tasks WHERE id = '00000000-0000-0000-0000-000000000000'::uuid) ORDER BY id",
            "_task_id_id_idx",
        ),
        (
            "a step's transitions",
            "SELECT id FROM step_transitions WHERE step_id = '00000000-0000-0000-0000-000000000000'::uuid \
             AND EXISTS (SELECT 1 FROM steps WHERE id = '00000000-0000-0000-0000-000000000000'::uuid) ORDER BY id",
            "_step_id_id_idx",
        ),
        (
            "events after a cursor",
            "SELECT id, type, task_id FROM events WHERE id > 1000 ORDER BY id LIMIT 100",
            "_id_created_at_idx",
        ),
        (
            "a task's events",
            "SELECT id, type FROM events WHERE id > 0 \
             AND task_id = '00000000-0000-0000-0000-000000000000'::uuid ORDER BY id LIMIT 100",
            "_task_id_id_idx",
        ),
    ];
    // Partitions holding rows: never read whole, nor filtered through a
    // bitmap of a whole month. Empty ones (the months ahead, DEFAULT) may be
    // scanned: nothing to read, and their plan cannot be told apart without
    // statistics (a never-analyzed empty table).
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent IN ('task_transitions'::regclass, 'step_transitions'::regclass, 'events'::regclass)",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut holding = Vec::new();
    for part in parts {
        let any: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM \"{part}\")"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap();
        if any {
            holding.push(part);
        }
    }
    assert!(
        holding.len() >= 3,
        "the history is in month partitions: {holding:?}"
    );
    for (name, sql, index) in reads {
        let plan = explain(store, sql).await;
        let name = format!("{name} ({when})");
        assert!(plan.contains(index), "{name}:\n{plan}");
        if !(name.contains("transitions") || name.contains("events")) {
            strict(&name, &plan);
            continue;
        }
        for part in &holding {
            assert!(
                !plan.contains(&format!("Seq Scan on {part} ")),
                "{name} scans {part}:\n{plan}"
            );
        }
        // Over the partitions the rows come from each partition's index
        // range (checked above); a Sort, when the planner picks one over a
        // Merge Append, orders what those ranges returned: one task's
        // transitions, or the events past a cursor, never a month.
    }
    // A retention batch half-way into the history: an index range in
    // completion order that stops after the page.
    let plan = store
        .explain_prune_candidates(base() - Duration::days(30))
        .await
        .unwrap();
    let name = format!("retention batch ({when})");
    strict(&name, &plan);
    assert!(
        plan.contains("Scan using tasks_finished_idx"),
        "{name}:\n{plan}"
    );
    // A prune batch without an archive: one statement, each table reached
    // by one index range on the task id (no cascades, no scans).
    let plan = store
        .explain_prune_expired(base() - Duration::days(30))
        .await
        .unwrap();
    let name = format!("prune batch ({when})");
    strict(&name, &plan);
    // (Annotations: an index on the task id too; which one, of the two
    // that hold it, depends on the table's size: here it is empty.)
    assert!(
        plan.contains("Index Scan using annotations_"),
        "{name}:\n{plan}"
    );
    for index in [
        "tasks_finished_idx",
        "step_edges_task_idx",
        "steps_task_position_idx",
        "tasks_pkey",
    ] {
        assert!(
            plan.contains(index),
            "{name} does not read {index}:\n{plan}"
        );
    }
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
    // Each generated task looks engine-made: three transitions on the task,
    // two on its step (its creation is none).
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
    assert_eq!(s.step_transitions(step.id).await.unwrap().len(), 2);
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

    // A reader numbers the committed events (the sequencer runs before
    // every read), as in any system whose events are read: the id indexes
    // hold numbered rows only.
    s.events_list(&EventQuery {
        limit: 1,
        ..Default::default()
    })
    .await
    .unwrap();
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
    // The history went into its month partitions, none into a DEFAULT one.
    assert!(
        !health.warnings.iter().any(|w| w.contains("DEFAULT")),
        "{health:?}"
    );
    // And the claim does take the ready steps only.
    assert_eq!(
        s.step_claim(&params("w", 1000, now)).await.unwrap().len(),
        500
    );
}
