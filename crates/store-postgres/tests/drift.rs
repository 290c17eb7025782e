//! Task counters that drifted from their steps are reported and repaired,
//! not clamped: a counter about to go negative is recounted from the steps
//! (with an error log), so the task's counters equal the real counts after
//! every operation and the task finalises when its steps say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use tasker_store::Store;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{at, claim, succeed};
use tasker_store_postgres::testing::TestDb;
use uuid::Uuid;

/// (stored, recounted) counters of a task: remaining, live, blocked.
async fn counters(pool: &sqlx::PgPool, task: Uuid) -> ((i64, i64, i64), (i64, i64, i64)) {
    sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(
        "SELECT t.steps_remaining, t.steps_live, t.steps_blocked,
                (SELECT count(*) FROM steps s WHERE s.task_id = t.id
                   AND s.status NOT IN ('complete','resolved_manually')),
                (SELECT count(*) FROM steps s WHERE s.task_id = t.id
                   AND (s.status = 'in_progress' OR s.ready_at IS NOT NULL)),
                (SELECT count(*) FROM steps s WHERE s.task_id = t.id
                   AND s.status IN ('error','cancelled'))
         FROM tasks t WHERE t.id = $1",
    )
    .bind(task)
    .fetch_one(pool)
    .await
    .map(|(a, b, c, d, e, f)| ((a, b, c), (d, e, f)))
    .unwrap()
}

#[tokio::test]
async fn drifted_counters_are_recounted_not_clamped() {
    let db = TestDb::create().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let t = new_task(Shape::Roots(3), at(0));
    let task = t.id;
    store.task_create(t).await.unwrap();
    let claimed = claim(&store, 3, at(1)).await;
    let (stored, truth) = counters(&pool, task).await;
    assert_eq!(stored, truth);

    // Drift: the stored live counter says nothing runs, while three do.
    sqlx::query("UPDATE tasks SET steps_live = 0 WHERE id = $1")
        .bind(task)
        .execute(&pool)
        .await
        .unwrap();

    // Finishing one step would take it to -1: clamping said 0 (still wrong,
    // two run); the store recounts instead.
    succeed(&store, &claimed[0], at(2)).await;
    let (stored, truth) = counters(&pool, task).await;
    assert_eq!(truth, (2, 2, 0));
    assert_eq!(stored, truth);
    // And in the step's own transaction: a finish statement run on its own
    // refuses a batch with drifted counters, which then runs in a
    // transaction with its recount (`tests/finish_alone.rs`).
    assert_eq!(
        common::writer(&pool, "tasks", task).await,
        common::writer(&pool, "steps", claimed[0].step_id).await,
        "the recount was written apart from the step"
    );

    // From the truth on, the task finishes exactly when its steps do.
    succeed(&store, &claimed[1], at(3)).await;
    assert_ne!(
        store.task_get(task).await.unwrap().status,
        tasker_core::TaskState::Complete
    );
    succeed(&store, &claimed[2], at(4)).await;
    let (stored, truth) = counters(&pool, task).await;
    assert_eq!(stored, truth);
    assert_eq!(
        store.task_get(task).await.unwrap().status,
        tasker_core::TaskState::Complete
    );
    pool.close().await;
}
