//! Pause / resume across processes (two pools on one database stand in for
//! two engine processes): a pause in one stops claims in the other at once,
//! and a resume wakes the other's workers (LISTEN/NOTIFY) and its claim
//! takes the step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestDb;
use std::sync::Arc;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{at, params};
use tasker_store::{Store, StoreEvent};
use tasker_store_postgres::PgOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_in_one_pool_holds_claims_in_another_until_resumed() {
    let db = TestDb::create().await;
    let opts = PgOptions {
        max_connections: 4,
        ..PgOptions::default()
    };
    let a: Arc<dyn Store> = Arc::new(db.store_with(opts.clone()).await);
    let b: Arc<dyn Store> = Arc::new(
        db.store_with(PgOptions {
            run_migrations: false,
            ..opts
        })
        .await,
    );
    let t = new_task(Shape::Roots(3), at(0));
    a.task_create(t.clone()).await.unwrap();
    a.task_pause(t.id, at(1), Some("ops")).await.unwrap();
    assert!(
        b.step_claim(&params("wb", 10, at(2)))
            .await
            .unwrap()
            .is_empty(),
        "the other process claims nothing of a paused task"
    );
    assert_eq!(b.step_next_ready_at().await.unwrap(), None);
    assert!(b.task_get(t.id).await.unwrap().paused_at.is_some());

    let mut rx_b = b.subscribe();
    a.task_resume(t.id, at(3), Some("ops")).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx_b.recv()).await {
            Ok(Ok(StoreEvent::WorkAvailable)) => break,
            Ok(_) => continue,
            Err(_) => panic!("the other pool was not woken by the resume"),
        }
    }
    assert_eq!(
        b.step_claim(&params("wb", 10, at(4))).await.unwrap().len(),
        3
    );
}

/// A namespace pause in one pool racing with task creation in another: no
/// task is left running, whichever commits first (the creators read the
/// pauses under the namespace's shared lock, the pause holds it
/// exclusively). Resuming wakes the other pool, whose claim takes them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespace_pause_races_creates_in_another_pool() {
    let db = TestDb::create().await;
    let opts = PgOptions {
        max_connections: 4,
        ..PgOptions::default()
    };
    let a: Arc<dyn Store> = Arc::new(db.store_with(opts.clone()).await);
    let b: Arc<dyn Store> = Arc::new(
        db.store_with(PgOptions {
            run_migrations: false,
            ..opts
        })
        .await,
    );
    let scope = tasker_store::FlowScope {
        namespace: "test".into(),
        name: None,
    };
    let creator = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..200 {
                let t = new_task(Shape::Roots(2), at(i));
                ids.push(t.id);
                b.task_create(t).await.unwrap();
            }
            ids
        })
    };
    tokio::task::yield_now().await;
    a.flow_pause(&scope, at(50), Some("ops"), Some("incident"))
        .await
        .unwrap();
    let ids = creator.await.unwrap();
    assert!(
        b.step_claim(&params("wb", 1000, at(300)))
            .await
            .unwrap()
            .is_empty(),
        "no step of the paused namespace is claimable, whenever its task was created"
    );
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let free: i64 = sqlx::query_scalar("SELECT count(*) FROM steps WHERE NOT paused")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(free, 0);

    let mut rx_b = b.subscribe();
    a.flow_resume(&scope).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx_b.recv()).await {
            Ok(Ok(StoreEvent::WorkAvailable)) => break,
            Ok(_) => continue,
            Err(_) => panic!("the other pool was not woken by the resume"),
        }
    }
    assert_eq!(
        b.step_claim(&params("wb", 1000, at(301)))
            .await
            .unwrap()
            .len(),
        ids.len() * 2
    );
}
