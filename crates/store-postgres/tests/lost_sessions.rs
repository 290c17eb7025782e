//! Sessions the server ends under a store (an operator's
//! `pg_terminate_backend`, a restart, a failover): the pool tests a
//! connection before handing it out only when it was idle for a while or a
//! connection was lost recently (src/pool.rs), and the store runs a
//! statement whose session was ended again. Its own test binary: the pool's
//! memory of a lost connection is process-wide, and another test's lost
//! connection would hide whether the retry works.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestDb, forget_lost_connections};
use tasker_store::conformance::base;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::{Store, StoreError};
use tasker_store_postgres::{PING_AFTER_IDLE, PgOptions};

/// Ends the server process of every pooled connection of `db` that sits
/// idle after a `SELECT 1` (the store's `ping`; the listener's last
/// statement is its `LISTEN`), and waits until each has exited.
async fn kill_idle_pool_connections(db: &TestDb) -> i64 {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND state = 'idle' AND query = 'SELECT 1'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    killed
}

/// What the pool and the store do when the server ends the session of a
/// pooled connection that was in use a moment ago, and of one idle for a
/// second. Each step starts with the pool's memory of lost connections
/// cleared, as in a process that has seen none.
#[tokio::test]
async fn a_connection_killed_while_idle_is_replaced() {
    let db = TestDb::create().await;
    let store = db
        .store_with(PgOptions {
            max_connections: 1,
            ..PgOptions::default()
        })
        .await;

    // Used a moment ago: handed out untested (no round trip before the
    // statement), so a statement outside the store's retries fails...
    store.ping().await.unwrap();
    assert_eq!(kill_idle_pool_connections(&db).await, 1);
    forget_lost_connections();
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // ...and the pool does not hand that connection out again.
    store.ping().await.unwrap();

    // A write the store retries runs again on a new connection.
    assert_eq!(kill_idle_pool_connections(&db).await, 1);
    forget_lost_connections();
    store
        .task_create(new_task(Shape::Single, base()))
        .await
        .expect("the create ran again on a new connection");

    // Idle for a second: tested, replaced, the statement works.
    store.ping().await.unwrap();
    assert_eq!(kill_idle_pool_connections(&db).await, 1);
    forget_lost_connections();
    // Idle time is the condition under test: wait until it has passed.
    tokio::time::sleep(PING_AFTER_IDLE + std::time::Duration::from_millis(100)).await;
    store.ping().await.unwrap();
}
