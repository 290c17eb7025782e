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
        _key: &str,
    ) -> Vec<(String, Option<String>, Option<String>, String)> {
        // Each change is a row of `events` (migration 20261205000000: the
        // transition tables keep only older rows, and this database has
        // none): a step's rows by `step_id`, a task's own by `task_id` with
        // no step; rows that are only events have no `to_state`.
        let own = if table == "step_transitions" {
            "x.step_id = e.id"
        } else {
            "x.task_id = e.id AND x.step_id IS NULL"
        };
        let sql = format!(
            "SELECT hex(e.id), x.from_state, x.to_state, e.status FROM {entity} e
             LEFT JOIN events x ON {own} AND x.to_state IS NOT NULL ORDER BY e.id, x.id"
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
