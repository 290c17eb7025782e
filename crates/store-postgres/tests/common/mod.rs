//! Test support: one fresh PostgreSQL database per test (see
//! `tasker_store_postgres::testing`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod plans;

use std::sync::Arc;
use tasker_store_postgres::PgStore;
pub use tasker_store_postgres::testing::*;

/// The conformance factory: a migrated store on a fresh database, and the
/// guard that drops the database at the end of the test.
pub async fn fresh_store() -> (Arc<PgStore>, TestDb) {
    let db = TestDb::create().await;
    let store = db.store().await;
    (Arc::new(store), db)
}

/// The id of the transaction that wrote the row `id` of `table` (`steps`
/// or `tasks`) last: two rows written by one transaction share it.
pub async fn writer(pool: &sqlx::PgPool, table: &str, id: uuid::Uuid) -> String {
    let sql = match table {
        "steps" => "SELECT xmin::text FROM steps WHERE id = $1",
        "tasks" => "SELECT xmin::text FROM tasks WHERE id = $1",
        _ => panic!("no such table here: {table}"),
    };
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}
