//! `by` on the transitions an operator action writes.
//!
//! The triggers write transitions without knowing who asked, so an action
//! with a `by` notes the highest transition ids when its transaction starts
//! ([`Marks::take`]) and, before it commits, stamps `"by"` into the metadata
//! of every transition above them ([`Marks::stamp`]). The writer holds
//! `BEGIN IMMEDIATE`, so the rows above the marks are exactly this
//! transaction's. The lifecycle events those transitions' triggers wrote
//! are stamped the same way (their payload's `by`, docs/EVENTS.md).

use crate::error::DbResultExt;
use sqlx::SqliteConnection;
use tasker_store::StoreResult;

/// The highest transition ids before an action's writes.
pub(crate) struct Marks<'a> {
    by: &'a str,
    step: i64,
    task: i64,
    event: i64,
}

impl<'a> Marks<'a> {
    /// Notes where the transitions stand; nothing to do without a `by`.
    pub(crate) async fn take(
        conn: &mut SqliteConnection,
        by: Option<&'a str>,
    ) -> StoreResult<Option<Marks<'a>>> {
        let Some(by) = by else { return Ok(None) };
        let (step, task, event): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM step_transitions),
                    (SELECT COALESCE(MAX(id), 0) FROM task_transitions),
                    (SELECT COALESCE(MAX(id), 0) FROM events)",
        )
        .fetch_one(conn)
        .await
        .db()?;
        Ok(Some(Marks {
            by,
            step,
            task,
            event,
        }))
    }

    /// Writes `"by"` into every transition written since [`Marks::take`].
    pub(crate) async fn stamp(&self, conn: &mut SqliteConnection) -> StoreResult<()> {
        for (table, mark) in [
            ("step_transitions", self.step),
            ("task_transitions", self.task),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET metadata = json_set(metadata, '$.by', ?1) WHERE id > ?2"
            )))
            .bind(self.by)
            .bind(mark)
            .execute(&mut *conn)
            .await
            .db()?;
        }
        sqlx::query("UPDATE events SET payload = json_set(payload, '$.by', ?1) WHERE id > ?2")
            .bind(self.by)
            .bind(self.event)
            .execute(&mut *conn)
            .await
            .db()?;
        Ok(())
    }
}
