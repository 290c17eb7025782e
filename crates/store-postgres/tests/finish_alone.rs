//! The finish statement runs on its own (autocommit) when it can, and in a
//! transaction with what follows it when it must (`PgStore::finish_once`,
//! migration `20261209000000_finish_alone.sql`). The two batches that must
//! not be split are checked here by the transaction that wrote each row
//! (`xmin`): a finish whose step held a concurrency key (its key is
//! released and its task written after the statement) here, and a finish
//! whose task counters had drifted (the recounted truth is written after
//! it) in `tests/drift.rs`.
//! Both would still end right if the statement committed alone and the
//! rest followed in a second transaction; only a crash in between would
//! show it, which is why the rows' transaction is what these tests read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestDb, writer};
use std::sync::Arc;
use tasker_store::Store;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{at, claim, succeed};
use tasker_store::flow::{ConcurrencyKey, StepFlow};
use uuid::Uuid;

#[tokio::test]
async fn a_finish_that_releases_a_concurrency_key_writes_its_task_in_the_same_transaction() {
    let db = TestDb::create().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // Two steps behind one key of limit 1: one runs, the other is parked.
    let mut t = new_task(Shape::Roots(2), at(0));
    for s in &mut t.steps {
        s.flow = StepFlow {
            concurrency: Some(ConcurrencyKey {
                key: "customer:1".into(),
                limit: 1,
            }),
            rate: None,
            task_slot: None,
        };
    }
    let task = t.id;
    store.task_create(t).await.unwrap();
    let claimed = claim(&store, 2, at(1)).await;
    assert_eq!(claimed.len(), 1, "the key admits one step");
    let other: Uuid = sqlx::query_scalar("SELECT id FROM steps WHERE task_id = $1 AND id <> $2")
        .bind(task)
        .bind(claimed[0].step_id)
        .fetch_one(&pool)
        .await
        .unwrap();

    succeed(&store, &claimed[0], at(2)).await;

    let step = writer(&pool, "steps", claimed[0].step_id).await;
    assert_eq!(
        writer(&pool, "tasks", task).await,
        step,
        "task written apart from its step"
    );
    assert_eq!(
        writer(&pool, "steps", other).await,
        step,
        "the parked step was unparked by another transaction"
    );
    let running: i32 = sqlx::query_scalar("SELECT running FROM flow_keys WHERE key = 'customer:1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(running, 0, "the key still counts the finished step");
    pool.close().await;
}
