//! The schema's invariants (docs/STORAGE.md) hold on SQLite after every
//! operation of a long random workload (`tasker_store::conformance::workload`,
//! shared with PostgreSQL): readiness, parents counters, leases, task
//! counters, settled task states, and transition chains that follow the
//! state tables.
//!
//! The triggers maintain most of these, so this test reads the database
//! directly and recomputes everything from the rows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use sqlx::SqlitePool;
use tasker_store::conformance::workload::{Inspect, random_workload};
use tasker_store_sqlite::SqliteStore;

struct Sqlite(SqlitePool);

#[async_trait]
impl Inspect for Sqlite {
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
    ) -> Vec<(String, Option<String>, String, String)> {
        let sql = format!(
            "SELECT hex(x.{key}), x.from_state, x.to_state, e.status FROM {table} x
             JOIN {entity} e ON e.id = x.{key} ORDER BY x.{key}, x.id"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.0)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn invariants_hold_under_a_random_workload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inv.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    let db = SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let tasks = random_workload(&store, &Sqlite(db), 1000).await;
    println!("{tasks} tasks settled");
}
