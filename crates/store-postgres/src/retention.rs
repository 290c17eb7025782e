//! Retention: selecting and deleting finished tasks (docs/STORAGE.md,
//! "History, retention and maintenance").
//!
//! Deletes touch only finished tasks' rows, which the hot path never locks
//! (claims reach steps through the ready index, finishes through leased
//! steps), so a prune batch never waits for, or blocks, the work in flight.

use crate::PgStore;
use crate::error::{TxError, store_err, with_retry};
use crate::tx;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use tasker_store::{MaintenanceRun, PruneQuery, StorageHealth, StoreResult};
use uuid::Uuid;

/// Key of the transaction-level advisory lock that makes pruners take turns
/// across processes ("tasker-prune").
pub(crate) const PRUNE_LOCK: i64 = 0x7461_736b_7072_756e;

/// The states a task can be pruned in.
const FINISHED: &str = "status IN ('complete', 'cancelled', 'error', 'resolved_manually')";

/// The WHERE clause of a selection: `$1` the cutoff, `$2` the namespace or
/// NULL, `$3` the excluded namespaces. Namespaces only filter the range of
/// `tasks_finished_idx` the cutoff selects.
const SELECTION: &str = "status IN ('complete', 'cancelled', 'error', 'resolved_manually') \
     AND completed_at < $1 AND ($2::text IS NULL OR namespace = $2) \
     AND NOT (namespace = ANY($3::text[]))";

/// A page of candidates, oldest completion first.
pub(crate) fn candidates_sql() -> String {
    format!("SELECT id FROM tasks WHERE {SELECTION} ORDER BY completed_at, id LIMIT $4")
}

/// The candidates' plan, whatever the statistics say: `tasks_finished_idx`
/// in index order, stopping after `limit` rows. Without statistics (a
/// never-analyzed table) the planner may otherwise pick a bitmap scan and a
/// sort of every expired task, whose cost grows with the backlog.
pub(crate) const PIN_PLAN: &str = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off";

impl PgStore {
    pub(crate) async fn retention_candidates(&self, q: &PruneQuery) -> StoreResult<Vec<Uuid>> {
        let limit: Option<i64> = (q.limit > 0).then_some(i64::from(q.limit));
        let mut tx = self.inner.pool.begin().await.map_err(store_err)?;
        let res = async {
            sqlx::raw_sql(PIN_PLAN)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
            let ids = sqlx::query_scalar(AssertSqlSafe(candidates_sql()))
                .bind(q.finished_before)
                .bind(q.namespace.as_deref())
                .bind(&q.except_namespaces)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(store_err)?;
            Ok(ids)
        }
        .await;
        tx::end_store(tx, res).await
    }

    pub(crate) async fn retention_count(&self, q: &PruneQuery) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM tasks WHERE {SELECTION}"
        )))
        .bind(q.finished_before)
        .bind(q.namespace.as_deref())
        .bind(&q.except_namespaces)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(store_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn retention_delete(
        &self,
        ids: &[Uuid],
        finished_before: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_retry!(
            "tasks_prune",
            self.retention_delete_once(ids, finished_before)
        )
    }

    async fn retention_delete_once(
        &self,
        ids: &[Uuid],
        finished_before: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            if !prune_turn(&mut tx).await? {
                // Another process is pruning; its turn.
                return Ok(Vec::new());
            }
            // Lock the tasks that are still finished (a retry between selection
            // and now reopened the others: they stay). SKIP LOCKED: a task an
            // operator is acting on right now is left for the next pass.
            let doomed = format!(
                "SELECT id FROM tasks WHERE id = ANY($1) AND {FINISHED} AND completed_at < $2 \
                 ORDER BY id FOR UPDATE SKIP LOCKED"
            );
            let deleted: Vec<Uuid> = sqlx::query_scalar(AssertSqlSafe(delete_sql(&doomed)))
                .bind(ids)
                .bind(finished_before)
                .fetch_all(&mut *tx)
                .await?;
            Ok(deleted)
        }
        .await;
        tx::end(tx, res).await
    }

    /// See [`tasker_store::Store::prune_expired`]: selection, lock and
    /// delete of one batch in one statement, no ids round trip.
    pub(crate) async fn retention_delete_expired(
        &self,
        q: &PruneQuery,
    ) -> StoreResult<Option<u64>> {
        with_retry!("tasks_prune_expired", self.retention_delete_expired_once(q))
    }

    async fn retention_delete_expired_once(&self, q: &PruneQuery) -> Result<Option<u64>, TxError> {
        let limit: Option<i64> = (q.limit > 0).then_some(i64::from(q.limit));
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            if !prune_turn(&mut tx).await? {
                return Ok(None);
            }
            let n = sqlx::query(AssertSqlSafe(expired_delete_sql()))
                .bind(q.finished_before)
                .bind(q.namespace.as_deref())
                .bind(&q.except_namespaces)
                .bind(limit)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(Some(n))
        }
        .await;
        tx::end(tx, res).await
    }
}

/// Takes the prune lock for this transaction (false: another process
/// holds it), and pins the delete's plan ([`PIN_PLAN`]): index ranges on
/// the task id for every table, whatever the statistics say.
async fn prune_turn(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<bool, TxError> {
    let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(PRUNE_LOCK)
        .fetch_one(&mut **tx)
        .await?;
    if ours {
        sqlx::raw_sql(PIN_PLAN).execute(&mut **tx).await?;
    }
    Ok(ours)
}

/// One batch of a selection ([`SELECTION`], `$4` the limit), deleted in
/// one statement (`Store::prune_expired`).
pub(crate) fn expired_delete_sql() -> String {
    delete_sql(&format!(
        "SELECT id FROM tasks WHERE {SELECTION} ORDER BY completed_at, id LIMIT $4 \
         FOR UPDATE SKIP LOCKED"
    ))
}

/// One statement deleting the tasks `doomed` selects (and locks) with
/// everything that hangs off them, children first: annotations, edges,
/// steps, then the tasks; returns the deleted task ids. No foreign key
/// cascades (migration 20261130500000): each table is one index range per
/// batch instead of a trigger query per deleted row. Transitions are not
/// deleted here: their month's partition is dropped once no remaining task
/// has rows in it (partitions.rs); until then the rows are unreachable
/// (reads check the task or step exists).
fn delete_sql(doomed: &str) -> String {
    format!(
        "WITH doomed AS MATERIALIZED ({doomed}), \
              a AS (DELETE FROM annotations WHERE task_id = ANY(ARRAY(SELECT id FROM doomed))), \
              e AS (DELETE FROM step_edges WHERE task_id = ANY(ARRAY(SELECT id FROM doomed))), \
              s AS (DELETE FROM steps WHERE task_id = ANY(ARRAY(SELECT id FROM doomed))) \
         DELETE FROM tasks WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING id"
    )
}

/// A ready index this many times larger than its live entries need (and
/// over [`BLOAT_MIN_BYTES`]) is bloated with dead entries.
const BLOAT_FACTOR: u64 = 10;
/// Below this size an index is never called bloated.
const BLOAT_MIN_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes a live `(ready_at, id)` entry takes in a typical page (tuple,
/// line pointer, free space of a 70% full page).
const ENTRY_BYTES: u64 = 64;

impl PgStore {
    pub(crate) async fn upkeep_health(&self) -> StoreResult<StorageHealth> {
        let autovacuum: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(store_err)?;
        let autovacuum = autovacuum == "on";
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT pg_relation_size(to_regclass('steps_ready_idx'))")
                .fetch_one(&self.inner.pool)
                .await
                .map_err(store_err)?;
        let ready: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM steps WHERE ready_at IS NOT NULL LIMIT 100000) r",
        )
        .fetch_one(&self.inner.pool)
        .await
        .map_err(store_err)?;
        let bytes = bytes.and_then(|b| u64::try_from(b).ok());
        let ready = u64::try_from(ready).unwrap_or(0);
        let mut warnings = Vec::new();
        if !autovacuum {
            warnings.push(
                "PostgreSQL autovacuum is off: dead rows of steps and tasks pile up and slow the \
                 hot path; enable it, or run `tasker maintenance` regularly (e.g. every few minutes)"
                    .to_string(),
            );
        }
        if let Some(b) = bytes
            && b > BLOAT_MIN_BYTES
            && b > BLOAT_FACTOR * (16_384 + ready * ENTRY_BYTES)
        {
            warnings.push(format!(
                "the ready-steps index steps_ready_idx is {} MiB for {ready} ready steps (bloated \
                 with dead entries): run `tasker maintenance` (VACUUM), or REINDEX INDEX \
                 CONCURRENTLY steps_ready_idx",
                b / (1024 * 1024)
            ));
        }
        warnings.extend(self.partition_warnings().await?);
        Ok(StorageHealth {
            autovacuum: Some(autovacuum),
            ready_index_bytes: bytes,
            ready_steps: ready,
            warnings,
        })
    }

    /// `VACUUM (ANALYZE)` on every table of the schema (Tasker's, whatever
    /// later migrations add), one at a time; VACUUM takes no lock that blocks
    /// reads or writes.
    pub(crate) async fn upkeep(&self) -> StoreResult<Vec<MaintenanceRun>> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c \
             WHERE c.relnamespace = current_schema()::regnamespace \
               AND c.relkind IN ('r', 'p') AND c.relname <> '_sqlx_migrations' \
             ORDER BY c.relname",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_err)?;
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            out.push(self.table_command("VACUUM (ANALYZE)", t).await?);
        }
        Ok(out)
    }

    /// Runs `action` (a utility command such as `VACUUM (ANALYZE)`) on the
    /// table named `table`, timed. Names come from the catalog, never from
    /// input; quoted as an identifier anyway.
    pub(crate) async fn table_command(
        &self,
        action: &str,
        table: String,
    ) -> StoreResult<MaintenanceRun> {
        let started = std::time::Instant::now();
        let sql = format!("{action} \"{}\"", table.replace('"', "\"\""));
        // Not prepared: one text per table, run rarely, would only take room
        // in each connection's statement cache.
        sqlx::query(AssertSqlSafe(sql))
            .persistent(false)
            .execute(&self.inner.pool)
            .await
            .map_err(store_err)?;
        Ok(MaintenanceRun {
            target: table,
            action: action.into(),
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}
