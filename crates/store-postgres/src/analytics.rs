//! The analytics reads: the ready queue's depth and a bounded sample of
//! recent history (see `tasker_store::analytics`), and their plans.

use crate::PgStore;
use crate::error::store_err;
use crate::explain::PlanKind;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tasker_store::{HistoryQuery, HistoryStep, QueueDepth, StoreResult};

/// Claimable steps, counted over the partial ready index up to a cap, and
/// the oldest `ready_at` (the index's first entry). The count walks the
/// index in the claim's order (`ready_at, id`): without it a generic plan
/// may prefer a scan of the table to a count of unknown size.
pub(crate) const QUEUE_SQL: &str = "SELECT \
     (SELECT count(*) FROM (SELECT 1 FROM steps \
        WHERE ready_at IS NOT NULL AND NOT paused AND NOT parked AND ready_at <= $1 ORDER BY ready_at, id LIMIT $2) q) AS ready, \
     (SELECT min(ready_at) FROM steps WHERE ready_at IS NOT NULL AND NOT paused AND NOT parked AND ready_at <= $1) AS oldest";

/// The newest tasks of the window (a backward range of `tasks_created_id_idx`,
/// stopping after the scan cap `$6`), the newest `$5` of them of the asked
/// template, then each one's steps by `steps_task_position_idx` (a lateral
/// per-task probe, so the steps table is never scanned).
pub(crate) const HISTORY_SQL: &str = "SELECT t.id AS task_id, t.status AS task_status, \
        t.created_at AS task_created_at, t.completed_at AS task_completed_at, \
        s.name AS step_name, s.handler_kind, s.status AS step_status, s.attempts, \
        s.last_attempted_at, s.completed_at AS step_completed_at \
     FROM (SELECT id, status, created_at, completed_at FROM \
             (SELECT id, status, created_at, completed_at, namespace, name, version FROM tasks \
              WHERE created_at >= $1 ORDER BY created_at DESC LIMIT $6) w \
           WHERE ($2::text IS NULL OR namespace = $2) \
             AND ($3::text IS NULL OR name = $3) \
             AND ($4::text IS NULL OR version = $4) \
           ORDER BY created_at DESC LIMIT $5) t \
     CROSS JOIN LATERAL (SELECT name, handler_kind, status, attempts, last_attempted_at, \
                                completed_at, position \
                         FROM steps WHERE task_id = t.id ORDER BY position) s \
     ORDER BY t.created_at DESC, t.id, s.position";

impl PgStore {
    pub(crate) async fn read_queue_depth(
        &self,
        now: DateTime<Utc>,
        cap: u32,
    ) -> StoreResult<QueueDepth> {
        let row = sqlx::query(QUEUE_SQL)
            .bind(now)
            .bind(i64::from(cap))
            .fetch_one(&self.inner.pool)
            .await
            .map_err(store_err)?;
        let ready: i64 = row.try_get("ready").map_err(store_err)?;
        Ok(QueueDepth {
            ready: u64::try_from(ready).unwrap_or(0),
            oldest_ready_at: row.try_get("oldest").map_err(store_err)?,
        })
    }

    pub(crate) async fn read_history_sample(
        &self,
        q: &HistoryQuery,
    ) -> StoreResult<Vec<HistoryStep>> {
        let rows = sqlx::query(HISTORY_SQL)
            .bind(q.since)
            .bind(q.namespace.as_deref())
            .bind(q.name.as_deref())
            .bind(q.version.as_deref())
            .bind(i64::from(q.max_tasks))
            .bind(i64::from(q.scan_limit.max(q.max_tasks)))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|r| {
                Ok(HistoryStep {
                    task_id: r.try_get("task_id")?,
                    task_status: r.try_get("task_status")?,
                    task_created_at: r.try_get("task_created_at")?,
                    task_completed_at: r.try_get("task_completed_at")?,
                    step_name: r.try_get("step_name")?,
                    handler_kind: r.try_get("handler_kind")?,
                    step_status: r.try_get("step_status")?,
                    attempts: r.try_get("attempts")?,
                    last_attempted_at: r.try_get("last_attempted_at")?,
                    step_completed_at: r.try_get("step_completed_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(store_err)
    }

    /// The plans of the analytics reads (`queue`, `history`), as
    /// [`PgStore::explain_hot_path`] shows the hot path's: `PREPARE` +
    /// `EXPLAIN EXECUTE` under the given plan kind, for a window starting at
    /// `since` (custom plans depend on it); nothing is executed.
    pub async fn explain_analytics(
        &self,
        kind: PlanKind,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, String)>> {
        let mut conn = self.inner.pool.acquire().await.map_err(store_err)?;
        let cases = [
            (
                "queue",
                QUEUE_SQL,
                "(timestamptz, bigint)",
                "(now(), 100000)".to_string(),
            ),
            (
                "history",
                HISTORY_SQL,
                "(timestamptz, text, text, text, bigint, bigint)",
                format!(
                    "('{}'::timestamptz, 'shop', NULL, NULL, 1000, 10000)",
                    since.to_rfc3339()
                ),
            ),
        ];
        let statements = cases
            .into_iter()
            .map(|(name, sql, types, args)| {
                (
                    name.to_string(),
                    format!("PREPARE tasker_explain {types} AS {sql}"),
                    args,
                )
            })
            .collect();
        crate::explain::explain_prepared(&mut conn, kind, statements).await
    }
}
