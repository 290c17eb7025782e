//! Housekeeping of flow control on SQLite (docs/FLOW_CONTROL.md,
//! "Housekeeping"): old schedule ticks and idle rate-limit buckets. SQLite
//! has no concurrency-key counters (the claim counts running steps). One
//! write transaction: the single writer orders it with claims and firings.
//! A bucket deleted here comes back full at its next draw, as it would have
//! refilled (the claim treats a missing bucket as full).

use crate::SqliteStore;
use crate::codec::micros;
use crate::error::DbResultExt;
use chrono::{DateTime, Utc};
use tasker_store::StoreResult;
use tasker_store::flow::FlowPruned;

pub(crate) async fn prune(
    store: &SqliteStore,
    before: DateTime<Utc>,
    limit: u32,
) -> StoreResult<FlowPruned> {
    let mut tx = store.begin().await?;
    // Each schedule's newest tick stays (`schedules show` lists it; the
    // schedule's `last_tick_at` alone keeps old ticks from firing again).
    let ticks = sqlx::query(
        "DELETE FROM schedule_ticks
         WHERE rowid IN (
             SELECT x.rowid FROM schedule_ticks x
             WHERE x.fired_at < ?1
               AND x.scheduled_for < (SELECT max(y.scheduled_for) FROM schedule_ticks y
                                      WHERE y.schedule_id = x.schedule_id)
             LIMIT ?2 + 0)",
    )
    .bind(micros(before))
    .bind(i64::from(limit))
    .execute(&mut *tx)
    .await
    .db()?
    .rows_affected();
    let buckets = sqlx::query(
        "DELETE FROM rate_buckets
         WHERE key IN (SELECT key FROM rate_buckets WHERE refreshed_at < ?1 LIMIT ?2 + 0)",
    )
    .bind(micros(before))
    .bind(i64::from(limit))
    .execute(&mut *tx)
    .await
    .db()?
    .rows_affected();
    tx.commit().await.db()?;
    Ok(FlowPruned {
        schedule_ticks: ticks,
        flow_keys: 0,
        rate_buckets: buckets,
    })
}
