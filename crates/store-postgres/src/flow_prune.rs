//! Housekeeping of flow control (docs/FLOW_CONTROL.md, "Housekeeping"):
//! old schedule ticks, idle rate-limit buckets and concurrency-key counters
//! with nothing running. Called by the retention pass (`Tasker::prune`).
//!
//! Each delete is one short statement that locks its rows `SKIP LOCKED`:
//! a row a claim or a firing scheduler holds right now is left for the next
//! pass, and no claim ever waits for the pruner. Deleting a counter or a
//! bucket is safe at any time: the claim recreates a missing one
//! (`GATE_SQL`, `kfix` / `bfix`) and decides at its next pass.

use crate::PgStore;
use crate::error::{TxError, with_retry};
use chrono::{DateTime, Utc};
use tasker_store::StoreResult;
use tasker_store::flow::FlowPruned;

/// Ticks fired before `$1`, except each schedule's newest, at most `$2`.
const TICKS_SQL: &str = "DELETE FROM schedule_ticks t \
     WHERE (t.schedule_id, t.scheduled_for, t.manual) IN ( \
         SELECT x.schedule_id, x.scheduled_for, x.manual FROM schedule_ticks x \
         WHERE x.fired_at < $1 \
           AND x.scheduled_for < (SELECT max(y.scheduled_for) FROM schedule_ticks y \
                                  WHERE y.schedule_id = x.schedule_id) \
         LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Counters of keys with no step holding a slot and none ready or parked
/// (`steps_key_ready_idx`, `steps_parked_idx`), at most `$1`. A step of the
/// key still waiting for its parents, or a task created while this runs,
/// finds the counter gone at its claim, which recreates it.
const KEYS_SQL: &str = "DELETE FROM flow_keys k \
     WHERE k.key = ANY (ARRAY( \
         SELECT x.key FROM flow_keys x WHERE x.running = 0 \
           AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.concurrency_key = x.key \
                           AND s.concurrency_key IS NOT NULL AND s.ready_at IS NOT NULL AND NOT s.parked) \
           AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.concurrency_key = x.key \
                           AND s.parked AND s.ready_at IS NOT NULL) \
         LIMIT $1 FOR UPDATE SKIP LOCKED)) \
       AND k.running = 0";

/// Buckets not drawn from since `$1`, at most `$2`.
const BUCKETS_SQL: &str = "DELETE FROM rate_buckets b \
     WHERE b.key = ANY (ARRAY( \
         SELECT x.key FROM rate_buckets x WHERE x.refreshed_at < $1 \
         LIMIT $2 FOR UPDATE SKIP LOCKED)) \
       AND b.refreshed_at < $1";

impl PgStore {
    pub(crate) async fn flow_prune_rows(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<FlowPruned> {
        with_retry!("flow_prune", self.flow_prune_once(before, limit))
    }

    async fn flow_prune_once(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<FlowPruned, TxError> {
        let limit = i64::from(limit);
        let pool = &self.inner.pool;
        let ticks = sqlx::query(TICKS_SQL)
            .bind(before)
            .bind(limit)
            .execute(pool)
            .await?
            .rows_affected();
        let keys = sqlx::query(KEYS_SQL)
            .bind(limit)
            .execute(pool)
            .await?
            .rows_affected();
        let buckets = sqlx::query(BUCKETS_SQL)
            .bind(before)
            .bind(limit)
            .execute(pool)
            .await?
            .rows_affected();
        Ok(FlowPruned {
            schedule_ticks: ticks,
            flow_keys: keys,
            rate_buckets: buckets,
        })
    }
}
