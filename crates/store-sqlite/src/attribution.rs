//! `by` on the transitions an operator action writes.
//!
//! The triggers write transitions without knowing who asked, so an action
//! with a `by` notes the highest row id of `events` when its transaction
//! starts ([`Marks::take`]) and, before it commits, stamps `"by"` into the
//! transition metadata and the event payload of every row above it
//! ([`Marks::stamp`]): since migration `20261205000000_transitions_are_events.sql`
//! a transition and its event are one row there. The writer holds
//! `BEGIN IMMEDIATE`, so the rows above the mark are exactly this
//! transaction's.

use crate::error::DbResultExt;
use sqlx::SqliteConnection;
use tasker_store::StoreResult;

/// The highest row id of `events` before an action's writes.
pub(crate) struct Marks<'a> {
    by: &'a str,
    event: i64,
}

impl<'a> Marks<'a> {
    /// Notes where the rows stand; nothing to do without a `by`.
    pub(crate) async fn take(
        conn: &mut SqliteConnection,
        by: Option<&'a str>,
    ) -> StoreResult<Option<Marks<'a>>> {
        let Some(by) = by else { return Ok(None) };
        let event: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(conn)
            .await
            .db()?;
        Ok(Some(Marks { by, event }))
    }

    /// Writes `"by"` into every transition and event written since
    /// [`Marks::take`] (`json_set` of a NULL is NULL: a row that is only
    /// one of the two keeps the other empty).
    pub(crate) async fn stamp(&self, conn: &mut SqliteConnection) -> StoreResult<()> {
        sqlx::query(
            "UPDATE events SET metadata = json_set(metadata, '$.by', ?1),
                               payload = json_set(payload, '$.by', ?1)
             WHERE id > ?2",
        )
        .bind(self.by)
        .bind(self.event)
        .execute(conn)
        .await
        .db()?;
        Ok(())
    }
}
