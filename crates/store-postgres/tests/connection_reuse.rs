//! The pool hands out the connection given back last (vendor/README.md,
//! "most recently used first"; docs/PERFORMANCE.md, "The connection given
//! back last"):
//!
//! - statements one after another run on one backend, whose caches (parsed
//!   statements, plans, catalog) are warm, instead of visiting every pooled
//!   connection in turn, each of which plans every statement five times
//!   before it settles on a generic plan;
//! - connections a burst opened and the steady load no longer needs sink
//!   to the bottom of the stack and expire after their idle timeout, while
//!   the ones in use keep their places.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use sqlx::postgres::PgPoolOptions;
use std::time::{Duration, Instant};

/// The backend of the connection a statement ran on, once that connection
/// is back in the pool: sqlx gives a connection back in a task of its own,
/// after a round trip that checks it, so a statement sent at once would
/// find it still away and take the next one.
async fn backend_pid(pool: &sqlx::PgPool) -> i32 {
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap();
    all_idle(pool).await;
    pid
}

/// Waits until every open connection of the pool is idle in it.
async fn all_idle(pool: &sqlx::PgPool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.num_idle() < pool.size() as usize {
        assert!(
            Instant::now() < deadline,
            "connections never came back to the pool"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn statements_one_after_another_run_on_the_connection_given_back_last() {
    let db = common::TestDb::create().await;
    let store = db.store().await;
    let pool = store.pool();
    // A burst: four connections at once, then all given back.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    all_idle(pool).await;
    assert_eq!(pool.size(), 4);
    // Then a steady, one-at-a-time load: one backend serves all of it (a
    // queue would hand out the four in turn).
    let mut pids = Vec::new();
    for _ in 0..12 {
        pids.push(backend_pid(pool).await);
    }
    assert!(
        pids.iter().all(|p| *p == pids[0]),
        "one statement after another ran on several backends: {pids:?}"
    );
    assert_eq!(pool.size(), 4);
}

#[tokio::test]
async fn connections_the_load_no_longer_needs_expire_and_the_one_in_use_stays() {
    let db = common::TestDb::create().await;
    // Long beside the test's use of its one connection (every 50 ms), so
    // that a stalled machine does not expire the connection in use.
    let idle_timeout = Duration::from_secs(2);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .idle_timeout(idle_timeout)
        .connect(&db.url)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    all_idle(&pool).await;
    assert_eq!(pool.size(), 3);
    // One connection in steady use, well within its idle timeout each
    // time; the two below it are never handed out, so they expire and the
    // pool's reaper (every `idle_timeout`) closes them.
    let in_use = backend_pid(&pool).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.size() > 1 {
        assert!(
            Instant::now() < deadline,
            "the idle connections were never closed: {} open",
            pool.size()
        );
        assert_eq!(
            backend_pid(&pool).await,
            in_use,
            "the connection in use moved"
        );
        tokio::time::sleep(idle_timeout / 40).await;
    }
    assert_eq!(
        backend_pid(&pool).await,
        in_use,
        "the connection in use was closed"
    );
    pool.close().await;
}
