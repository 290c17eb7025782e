//! The analytics reads: the ready queue's depth and a bounded sample of
//! recent history (see `tasker_store::analytics`). Both run on the reader
//! pool, never behind the writer.

use crate::codec::{micros, time};
use crate::error::DbResultExt;
use sqlx::Row;
use sqlx::SqlitePool;
use tasker_store::{HistoryQuery, HistoryStep, QueueDepth, StoreResult};

/// Claimable steps, counted over the partial ready index up to a cap, and
/// the oldest `ready_at` (the index's first entry).
pub(crate) const QUEUE_SQL: &str = "SELECT \
     (SELECT COUNT(*) FROM (SELECT 1 FROM steps INDEXED BY steps_ready_idx \
        WHERE ready_at IS NOT NULL AND paused = 0 AND parked = 0 AND ready_at <= ?1 LIMIT ?2 + 0)), \
     (SELECT MIN(ready_at) FROM steps INDEXED BY steps_ready_idx \
        WHERE ready_at IS NOT NULL AND paused = 0 AND parked = 0 AND ready_at <= ?1)";

/// The newest tasks of the window (a backward range of `tasks_created_id_idx`,
/// named: without statistics SQLite might prefer another index for the
/// filters) up to the scan cap `?6`, the newest `?5` of the template, then
/// their steps by `steps_task_position_idx`.
pub(crate) const HISTORY_SQL: &str = "SELECT t.id AS task_id, t.status AS task_status, \
        t.created_at AS task_created_at, t.completed_at AS task_completed_at, \
        s.name AS step_name, s.handler_kind, s.status AS step_status, s.attempts, \
        s.last_attempted_at, s.completed_at AS step_completed_at \
     FROM (SELECT id, status, created_at, completed_at FROM \
             (SELECT id, status, created_at, completed_at, namespace, name, version \
              FROM tasks INDEXED BY tasks_created_id_idx \
              WHERE created_at >= ?1 ORDER BY created_at DESC LIMIT ?6 + 0) \
           WHERE (?2 IS NULL OR namespace = ?2) \
             AND (?3 IS NULL OR name = ?3) \
             AND (?4 IS NULL OR version = ?4) \
           ORDER BY created_at DESC LIMIT ?5 + 0) t \
     JOIN steps s INDEXED BY steps_task_position_idx ON s.task_id = t.id \
     ORDER BY t.created_at DESC, t.id, s.position";

pub(crate) async fn queue_depth(
    pool: &SqlitePool,
    now: chrono::DateTime<chrono::Utc>,
    cap: u32,
) -> StoreResult<QueueDepth> {
    let row = sqlx::query(QUEUE_SQL)
        .bind(micros(now))
        .bind(i64::from(cap))
        .fetch_one(pool)
        .await
        .db()?;
    let ready: i64 = row.try_get(0).db()?;
    let oldest: Option<i64> = row.try_get(1).db()?;
    Ok(QueueDepth {
        ready: u64::try_from(ready).unwrap_or(0),
        oldest_ready_at: oldest.map(time).transpose()?,
    })
}

pub(crate) async fn history_sample(
    pool: &SqlitePool,
    q: &HistoryQuery,
) -> StoreResult<Vec<HistoryStep>> {
    let rows = sqlx::query(HISTORY_SQL)
        .bind(micros(q.since))
        .bind(q.namespace.as_deref())
        .bind(q.name.as_deref())
        .bind(q.version.as_deref())
        .bind(i64::from(q.max_tasks))
        .bind(i64::from(q.scan_limit.max(q.max_tasks)))
        .fetch_all(pool)
        .await
        .db()?;
    rows.iter()
        .map(|r| {
            let opt = |col: &str| -> StoreResult<_> {
                let v: Option<i64> = r.try_get(col).db()?;
                v.map(time).transpose()
            };
            Ok(HistoryStep {
                task_id: r.try_get("task_id").db()?,
                task_status: r.try_get("task_status").db()?,
                task_created_at: time(r.try_get("task_created_at").db()?)?,
                task_completed_at: opt("task_completed_at")?,
                step_name: r.try_get("step_name").db()?,
                handler_kind: r.try_get("handler_kind").db()?,
                step_status: r.try_get("step_status").db()?,
                attempts: r.try_get("attempts").db()?,
                last_attempted_at: opt("last_attempted_at")?,
                step_completed_at: opt("step_completed_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::SqliteStore;

    async fn plan(store: &SqliteStore, sql: &str, params: usize) -> String {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for _ in 0..params {
            q = q.bind(Option::<i64>::None);
        }
        let rows = q.fetch_all(&store.reader).await.unwrap();
        rows.iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The queue is read from the partial ready index only; the history
    /// sample walks a range of `tasks_created_id_idx` and reaches each task's
    /// steps by `steps_task_position_idx`: no table is scanned.
    #[tokio::test]
    async fn analytics_reads_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        let p = plan(&store, QUEUE_SQL, 2).await;
        assert!(p.contains("USING COVERING INDEX steps_ready_idx"), "{p}");
        assert!(
            !p.contains("SCAN steps\n") && !p.ends_with("SCAN steps"),
            "{p}"
        );
        let p = plan(&store, HISTORY_SQL, 6).await;
        assert!(
            p.contains("SEARCH tasks USING INDEX tasks_created_id_idx (created_at>?)"),
            "{p}"
        );
        assert!(
            p.contains("SEARCH s USING INDEX steps_task_position_idx (task_id=?)"),
            "{p}"
        );
        assert!(!p.contains("SCAN tasks") && !p.contains("SCAN s"), "{p}");
    }
}
