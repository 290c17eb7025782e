//! Plans of the hot-path statements (`EXPLAIN QUERY PLAN`), for tests that
//! pin them over a large history (`tests/history_plans.rs`).

use crate::SqliteStore;
use crate::error::DbResultExt;
use crate::{effects, work};
use sqlx::Row;
use tasker_store::StoreResult;

/// Statement name, SQL, and how many parameters it numbers (bound NULL:
/// the plan does not depend on values, SQLite plans without them).
const HOT: [(&str, &str, usize); 10] = [
    ("claim: probe", work::ANY_READY, 1),
    ("claim: pick", work::PICK, 5),
    ("claim: pick per task", work::PICK_PER_TASK, 7),
    ("claim: pick among", work::PICK_AMONG, 8),
    ("claim: pick per task among", work::PICK_PER_TASK_AMONG, 8),
    ("claim: lease", work::CLAIM_SQL, 4),
    ("finish", work::FINISH_SQL, 2),
    ("readiness: children", effects::CHILDREN_READY_SQL, 1),
    ("rescue: probe", work::ANY_EXPIRED, 1),
    ("rescue", work::RESCUE_SQL, 2),
];

impl SqliteStore {
    /// The plans of the hot-path statements as `(statement, plan)` pairs,
    /// one `EXPLAIN QUERY PLAN` detail line per row. Nothing is executed.
    /// (Unblocking children and moving the task counters happen in the
    /// schema's triggers, which run per updated row by primary key.)
    pub async fn explain_hot_path(&self) -> StoreResult<Vec<(String, String)>> {
        let mut out = Vec::with_capacity(HOT.len());
        for (name, sql, params) in HOT {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
            for _ in 0..params {
                q = q.bind(Option::<String>::None);
            }
            let rows = q.fetch_all(&self.reader).await.db()?;
            let mut lines = Vec::with_capacity(rows.len());
            for r in &rows {
                lines.push(r.try_get::<String, _>(3).db()?);
            }
            out.push((name.to_string(), lines.join("\n")));
        }
        Ok(out)
    }
}
