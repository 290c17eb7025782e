//! `max_running_tasks` on PostgreSQL: tasks waiting for their template's
//! slot cost a claim of other work nothing (their steps leave the ready
//! index), and pools claiming at once never start more than the limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestDb;
use common::plans::HeldBack;
use std::sync::Arc;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{at, params, success};
use tasker_store::flow::TaskSlot;
use tasker_store::{FlowScope, NewTask, Store};
use tasker_store_postgres::PgOptions;

fn limited(limit: i32, secs: i64) -> NewTask {
    let mut t = new_task(Shape::Single, at(secs));
    t.name = "limited".into();
    for s in &mut t.steps {
        s.flow.task_slot = Some(TaskSlot {
            key: TaskSlot::key_of(&t.namespace, "limited"),
            limit,
        });
    }
    t
}

/// 10,000 tasks of a template with `max_running_tasks: 2`: the claim that
/// meets them starts two and parks the ready steps of all the others at
/// once; after that a claim of other work scans its candidates with the
/// same plan, reads the same index entries and about the same buffers as
/// before they existed, and no part of the statement reads more than one
/// step or task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_waiting_for_a_slot_cost_a_claim_of_other_work_nothing() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    // The 10,000 tasks exist from the start, held by a template pause (out
    // of the ready index): both plans see the same tables.
    let tasks: Vec<NewTask> = (0..10_000).map(|_| limited(2, 0)).collect();
    let scope = FlowScope {
        namespace: tasks[0].namespace.clone(),
        name: Some("limited".into()),
    };
    s.flow_pause(&scope, at(0), None, None).await.unwrap();
    s.task_create_many(tasks).await.unwrap();
    s.task_create(new_task(Shape::Single, at(0))).await.unwrap();
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
    let before = HeldBack::measure(&store, params("w", 10, at(10))).await;
    assert_eq!(
        s.step_claim(&params("w", 10, at(1))).await.unwrap().len(),
        1
    );

    // Resumed, they are ready: the claim that meets them starts two tasks
    // and parks every other one.
    s.flow_resume(&scope).await.unwrap();
    let got = s.step_claim(&params("w", 10, at(3))).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        s.step_claim(&params("w", 10, at(3)))
            .await
            .unwrap()
            .is_empty()
    );
    before
        .check(
            &store,
            "SELECT count(*) FROM steps WHERE parked AND flow_wait = 'task_slot'",
            9_998,
            &["steps", "tasks"],
        )
        .await;
}

/// Four pools claim and finish steps of 40 tasks (limit 3, three steps
/// each) as fast as they can, with claim on completion: sampled after every
/// claim, no more than 3 tasks of the template are `in_progress`, every
/// step completes once, and the slot count ends at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_pools_never_start_more_tasks_than_the_limit() {
    let db = TestDb::create().await;
    let opts = PgOptions {
        max_connections: 3,
        clock: tasker_store_postgres::PgClock::Caller,
        ..PgOptions::default()
    };
    let first = db.store_with(opts.clone()).await;
    let tasks: Vec<NewTask> = (0..40)
        .map(|_| {
            let mut t = new_task(Shape::Roots(3), at(0));
            t.name = "limited".into();
            for s in &mut t.steps {
                s.flow.task_slot = Some(TaskSlot {
                    key: TaskSlot::key_of(&t.namespace, "limited"),
                    limit: 3,
                });
            }
            t
        })
        .collect();
    first.task_create_many(tasks).await.unwrap();
    let mut pools: Vec<Arc<dyn Store>> = vec![Arc::new(first)];
    for _ in 0..3 {
        pools.push(Arc::new(
            db.store_with(PgOptions {
                run_migrations: false,
                ..opts.clone()
            })
            .await,
        ));
    }
    let mut handles = Vec::new();
    for (i, store) in pools.iter().enumerate() {
        let store = store.clone();
        let check = db
            .store_with(PgOptions {
                run_migrations: false,
                ..opts.clone()
            })
            .await;
        handles.push(tokio::spawn(async move {
            let worker = format!("w{i}");
            let mut held = Vec::new();
            let mut idle = 0;
            while idle < 50 {
                let got = store.step_claim(&params(&worker, 2, at(1))).await.unwrap();
                held.extend(got);
                let (running,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM tasks WHERE status = 'in_progress' AND slot_key IS NOT NULL",
                )
                .fetch_one(check.pool())
                .await
                .unwrap();
                assert!(running <= 3, "{running} tasks of the template running");
                if held.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                let c = held.remove(0);
                let r = store
                    .step_finish_and_claim(
                        &[success(&c, serde_json::json!({}))],
                        at(2),
                        Some(&params(&worker, 1, at(2))),
                    )
                    .await
                    .unwrap();
                assert_eq!(r.applied, 1);
                held.extend(r.claimed);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let pool = db.store().await;
    let (complete, total): (i64, i64) =
        sqlx::query_as("SELECT count(*) FILTER (WHERE status = 'complete'), count(*) FROM tasks")
            .fetch_one(pool.pool())
            .await
            .unwrap();
    assert_eq!((complete, total), (40, 40));
    let (running,): (i32,) = sqlx::query_as("SELECT running FROM task_slots")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    assert_eq!(running, 0, "every slot was given back");
}
