//! Synthetic finished history, generated in SQL (a recursive series), for
//! benchmarks and plan checks at millions of rows. Each task goes through
//! the states the engine moves it through (created pending and ready,
//! claimed, completed), and the schema's triggers write its transitions and
//! counters, as for an engine-run task. Ids are UUID v7 of the creation time.

use crate::SqliteStore;
use crate::codec::micros;
use crate::error::DbResultExt;
use chrono::{DateTime, Utc};
use tasker_store::StoreResult;

/// Tasks per write transaction.
const BATCH: i64 = 50_000;

impl SqliteStore {
    /// Adds `n` finished single-step tasks (namespace `namespace`, template
    /// `single@1.0.0`), created `spacing_ms` apart from `start` and completed
    /// 2 ms after their creation. Not for production databases.
    pub async fn load_finished_history(
        &self,
        n: u64,
        start: DateTime<Utc>,
        spacing_ms: f64,
        namespace: &str,
    ) -> StoreResult<()> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let start_us = micros(start);
        let step_us = (spacing_ms * 1000.0).round() as i64;
        let mut lo = 0i64;
        while lo < n {
            let hi = (lo + BATCH).min(n) - 1;
            let (from, to) = (start_us + lo * step_us, start_us + (hi + 1) * step_us);
            let mut tx = self.begin().await?;
            sqlx::query(
                "WITH RECURSIVE s(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM s WHERE i < ?2) \
                 INSERT INTO tasks (id, namespace, name, version, status, context, initiator, \
                     source_system, reason, tags, correlation_id, steps_total, steps_remaining, \
                     steps_live, steps_blocked, created_at, updated_at) \
                 SELECT unhex(printf('%012x', (?3 + i * ?4) / 1000) || '7' || \
                            substr(hex(randomblob(2)), 1, 3) || '8' || substr(hex(randomblob(8)), 1, 15)), \
                        ?5, 'single', '1.0.0', 'pending', '{}', 'bench', 'bench', 'history', '[]', \
                        hex(randomblob(8)), 1, 1, 1, 0, ?3 + i * ?4, ?3 + i * ?4 FROM s",
            )
            .bind(lo)
            .bind(hi)
            .bind(start_us)
            .bind(step_us)
            .bind(namespace)
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query(
                "INSERT INTO steps (id, task_id, name, position, dependent_system, handler_kind, \
                     handler_config, inputs, status, max_attempts, retry_limit, retryable, skippable, \
                     remaining_parents, ready_at, created_at, updated_at) \
                 SELECT unhex(substr(hex(id), 1, 16) || hex(randomblob(8))), id, 'only', 0, 'unknown', \
                        'noop', '{}', '{}', 'pending', 3, 3, 1, 0, 0, created_at, created_at, created_at \
                 FROM tasks t WHERE created_at >= ?1 AND created_at < ?2 AND namespace = ?3 \
                   AND status = 'pending' AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.task_id = t.id)",
            )
            .bind(from)
            .bind(to)
            .bind(namespace)
            .execute(&mut *tx)
            .await
            .db()?;
            tx.commit().await.db()?;
            // Claimed, then completed (the triggers write the rest).
            for sql in [
                "UPDATE steps SET status = 'in_progress', ready_at = NULL, attempts = 1, \
                     lease_owner = 'bench-history', lease_token = randomblob(16), \
                     lease_expires_at = created_at + 30000000, last_attempted_at = created_at + 1000, \
                     updated_at = created_at + 1000 \
                 WHERE task_id IN (SELECT id FROM tasks WHERE created_at >= ?1 AND created_at < ?2 \
                                   AND namespace = ?3)",
                "UPDATE steps SET status = 'complete', lease_owner = NULL, lease_token = NULL, \
                     lease_expires_at = NULL, results = '{}', completed_at = created_at + 2000, \
                     updated_at = created_at + 2000 \
                 WHERE task_id IN (SELECT id FROM tasks WHERE created_at >= ?1 AND created_at < ?2 \
                                   AND namespace = ?3)",
            ] {
                let mut tx = self.begin().await?;
                sqlx::query(sql)
                    .bind(from)
                    .bind(to)
                    .bind(namespace)
                    .execute(&mut *tx)
                    .await
                    .db()?;
                tx.commit().await.db()?;
            }
            lo = hi + 1;
        }
        Ok(())
    }
}
