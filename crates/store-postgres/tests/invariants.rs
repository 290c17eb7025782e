//! The schema's invariants (docs/STORAGE.md) hold on PostgreSQL after every
//! operation of a long random workload, the same one SQLite runs
//! (`tasker_store::conformance::workload`): readiness, parents counters,
//! leases, **task counters equal to the real counts**, settled task states,
//! and transition chains that follow the state tables.
//!
//! PostgreSQL keeps the task counters in Rust (`settle.rs`), not in
//! triggers, so this is where a drifting counter would show; the store
//! never clamps one (see `tests/drift.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use sqlx::PgPool;
use tasker_store::conformance::workload::{Inspect, random_workload};
use tasker_store_postgres::testing::TestDb;

struct Postgres(PgPool);

#[async_trait]
impl Inspect for Postgres {
    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.0)
            .await
            .unwrap()
    }

    async fn transitions(
        &self,
        table: &str,
        entity: &str,
        key: &str,
    ) -> Vec<(String, Option<String>, Option<String>, String)> {
        let sql = format!(
            "SELECT e.id::text, x.from_state, x.to_state, e.status FROM {entity} e
             LEFT JOIN {table} x ON x.{key} = e.id ORDER BY e.id, x.id"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.0)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn invariants_hold_under_a_random_workload() {
    let test_db = TestDb::create().await;
    let store = test_db.store().await;
    let db = PgPool::connect(&test_db.url).await.unwrap();
    let tasks = random_workload(&store, &Postgres(db), 400).await;
    println!("{tasks} tasks settled");
}
