//! Concurrency keys on PostgreSQL: steps held back by a full key cost a
//! claim of other work nothing (they leave the ready index), and four pools
//! (four engine processes) claiming and finishing at once never run more
//! than the key's limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestDb;
use common::plans::HeldBack;
use std::sync::Arc;
use tasker_store::conformance::factory::{Shape, TaskBuilder, new_task};
use tasker_store::conformance::{at, params, success};
use tasker_store::flow::{ConcurrencyKey, StepFlow};
use tasker_store::{NewTask, Store};
use tasker_store_postgres::{PgOptions, PgStore};

fn keyed_task(roots: usize, key: &str, limit: i32, secs: i64) -> NewTask {
    let mut t = new_task(Shape::Roots(roots), at(secs));
    for s in &mut t.steps {
        s.flow = StepFlow {
            concurrency: Some(ConcurrencyKey {
                key: key.into(),
                limit,
            }),
            rate: None,
            task_slot: None,
        };
    }
    t
}

/// 10,000 ready steps of one key whose limit (2) is reached: once the
/// claim that met them has parked them, a claim of other work scans its
/// candidates with the same plan, reads the same index entries and buffers
/// as before they were ready (same tables, same sizes, statistics fresh
/// both times), and no part of the statement reads more than one step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_blocked_steps_cost_a_claim_of_other_work_nothing() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    // 100 tasks: a gate step, and 100 steps of key `hot` waiting for it.
    let tasks: Vec<NewTask> = (0..100)
        .map(|_| {
            let mut b = TaskBuilder::new("test", "fan").step("gate", &[]);
            for i in 0..100 {
                b = b.step(&format!("k{i}"), &["gate"]);
            }
            let mut t = b.build(at(0));
            for step in t.steps.iter_mut().skip(1) {
                step.flow = StepFlow {
                    concurrency: Some(ConcurrencyKey {
                        key: "hot".into(),
                        limit: 2,
                    }),
                    rate: None,
                    task_slot: None,
                };
            }
            t
        })
        .collect();
    s.task_create_many(tasks).await.unwrap();
    let gates = s.step_claim(&params("w", 500, at(1))).await.unwrap();
    assert_eq!(gates.len(), 100);
    s.task_create(new_task(Shape::Single, at(2))).await.unwrap();
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
    let before = HeldBack::measure(&store, params("w", 10, at(10))).await;

    // The gates finish: 10,000 steps of `hot` become ready. The claim that
    // meets them takes two (and the other step) and parks all the rest.
    let done: Vec<_> = gates
        .iter()
        .map(|c| success(c, serde_json::json!({})))
        .collect();
    s.step_finish_many(&done, at(3)).await.unwrap();
    let got = s.step_claim(&params("w", 10, at(4))).await.unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        s.step_claim(&params("w", 10, at(4)))
            .await
            .unwrap()
            .is_empty()
    );
    // What autovacuum does on its own after such a burst of updates (the
    // dead index entries of the parked steps' old versions go).
    before
        .check(
            &store,
            "SELECT count(*) FROM steps WHERE parked",
            9_998,
            &["steps"],
        )
        .await;
}

/// Four pools claim and finish steps of two keys (limit 2) as fast as they
/// can, with claim on completion: sampled after every claim, the running
/// steps of a key never exceed 2, and every step completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_pools_never_run_more_than_the_limit() {
    let db = TestDb::create().await;
    let opts = PgOptions {
        max_connections: 3,
        clock: tasker_store_postgres::PgClock::Caller,
        ..PgOptions::default()
    };
    let first: PgStore = db.store_with(opts.clone()).await;
    let tasks: Vec<NewTask> = (0..40)
        .map(|i| keyed_task(5, if i % 2 == 0 { "even" } else { "odd" }, 2, 0))
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
        let pool = db.store_with(PgOptions {
            run_migrations: false,
            ..opts.clone()
        });
        let check = pool.await;
        handles.push(tokio::spawn(async move {
            let worker = format!("w{i}");
            let mut held = Vec::new();
            let mut idle = 0;
            while idle < 20 {
                let got = store.step_claim(&params(&worker, 3, at(1))).await.unwrap();
                held.extend(got);
                let (max,): (i64,) = sqlx::query_as(
                    "SELECT COALESCE(max(n), 0) FROM (SELECT count(*) AS n FROM steps \
                     WHERE status = 'in_progress' GROUP BY concurrency_key) x",
                )
                .fetch_one(check.pool())
                .await
                .unwrap();
                assert!(max <= 2, "{max} steps of one key running");
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
    let (complete, total): (i64, i64) =
        sqlx::query_as("SELECT count(*) FILTER (WHERE status = 'complete'), count(*) FROM steps")
            .fetch_one(db.store().await.pool())
            .await
            .unwrap();
    assert_eq!((complete, total), (200, 200));
}
