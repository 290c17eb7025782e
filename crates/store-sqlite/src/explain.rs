//! Plans of the hot-path statements (`EXPLAIN QUERY PLAN`), for tests that
//! pin them over a large history (`tests/history_plans.rs`).

use crate::SqliteStore;
use crate::error::DbResultExt;
use crate::{effects, events_outbox, work};
use sqlx::Row;
use tasker_store::EventQuery;
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
    ///
    /// The statements that end a finish are planned one by one. Also the
    /// two reads of a task's events (a page of one task's, and of
    /// three tasks' at once), which must stay bounded by the task's history
    /// whatever the size of the whole outbox.
    pub async fn explain_hot_path(&self) -> StoreResult<Vec<(String, String)>> {
        let one_task = EventQuery {
            task_id: Some(uuid::Uuid::nil()),
            ..EventQuery::default()
        };
        let (page, _) = events_outbox::list_sql(&one_task);
        let (many, _) = events_outbox::list_many_sql(3, &EventQuery::default());
        // The end of a finish is a query of several statements: each is
        // planned on its own (`COMMIT` has no plan).
        let close = [
            ("close: claiming", work::CLOSE_CLAIMING, 12),
            (
                "close: claiming per task",
                work::CLOSE_CLAIMING_PER_TASK,
                12,
            ),
            ("close: no claim", work::CLOSE, 2),
        ]
        .into_iter()
        .flat_map(|(name, sql, params)| {
            sql.split("; ")
                .filter(|s| *s != "COMMIT")
                .map(move |s| (name, s.to_string(), params))
        });
        // The claim that picks and leases in one statement, without the
        // `BEGIN` it is sent with.
        let lease_as_picked = work::BEGIN_CLAIM
            .trim_start_matches("BEGIN IMMEDIATE; ")
            .to_string();
        let statements = HOT
            .iter()
            .map(|(n, sql, p)| (*n, sql.to_string(), *p))
            .chain([("claim: lease as picked", lease_as_picked, 8)])
            .chain(close)
            .chain([
                ("events: one task", page, 3),
                ("events: many tasks", many, 5),
            ]);
        let mut out = Vec::new();
        for (name, sql, params) in statements {
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
