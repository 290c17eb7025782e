//! Monthly partitions of the history tables (docs/STORAGE.md,
//! "Partitions"): creating them ahead of time, dropping old transition
//! months once no remaining task has rows in them, and dropping old event
//! months for the events' own retention.
//!
//! Migration `20261129600000_partitions` partitions `task_transitions`,
//! `step_transitions` and `events` by `created_at`, one partition per UTC
//! month named `<table>_pYYYYMM`, plus `<table>_default`, and defines the
//! SQL function `tasker_partitions_ensure` used here.
//!
//! **When a transition month can go.** Every transition of a task is
//! written at or after the task's creation (`tasks.created_at`, the same
//! clock), so the tasks that can have rows in the month `[lo, hi)` are
//! among those created before `hi` (plus [`CLOCK_MARGIN`] for hosts whose
//! clocks differ). When none of them remains, the month is dropped. When a
//! few remain (a task that has been running for months, a namespace with a
//! longer window), their rows are copied into a new table, which replaces
//! the month's partition; the month then holds only their rows, and goes
//! when they do. With more than [`MAX_SURVIVORS`] such tasks, retention has
//! not caught up with that month yet and it is left for a later pass.
//!
//! **Locks.** Copying happens before any lock on the partitioned tables is
//! taken; the swap (`DROP TABLE`, and `ATTACH PARTITION` of the copy) needs
//! an `ACCESS EXCLUSIVE` lock on the partitioned tables for a few
//! milliseconds, taken with a short `lock_timeout` so that the hot path
//! never queues behind a drop waiting for a long reader: a pass that cannot
//! get it tries again [`LOCK_TRIES`] times, then leaves the month for the
//! next pass.

use crate::PgStore;
use crate::error::store_err;
// The advisory lock of the task pruner (retention.rs): one process drops
// partitions at a time, and never while another deletes a batch of tasks.
use crate::retention::PRUNE_LOCK;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use std::time::Instant;
use tasker_store::{MaintenanceRun, StoreResult};
use uuid::Uuid;

/// The partitioned history tables, in the order they are locked.
pub(crate) const PARTITIONED: [&str; 3] = ["task_transitions", "step_transitions", "events"];

/// Most remaining tasks whose rows are moved out of a month to drop it.
pub(crate) const MAX_SURVIVORS: i64 = 10_000;

/// How far a writer's clock may lag the task's creation time.
const CLOCK_MARGIN: &str = "1 hour";

/// How long a swap waits for its locks before giving up, per try.
const LOCK_TIMEOUT: &str = "100ms";

/// Tries of a swap's locks per month and pass.
const LOCK_TRIES: u32 = 5;

/// A month partition of one table, with its bounds.
#[derive(Debug, Clone)]
struct Month {
    name: String,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether a database error is a lock wait that ran out (`lock_timeout`).
fn lock_timed_out(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "55P03")
}

impl PgStore {
    /// See [`tasker_store::Store::history_partitions_ensure`].
    pub(crate) async fn partitions_ensure(
        &self,
        now: DateTime<Utc>,
        months_ahead: u32,
    ) -> StoreResult<Vec<MaintenanceRun>> {
        let now = self.rebase(now).now;
        self.partitions_ensure_at(now, months_ahead).await
    }

    /// The month partitions from `at`'s through `months_ahead` later, `at`
    /// taken as given (already on the store's clock, or a past period).
    pub(crate) async fn partitions_ensure_at(
        &self,
        now: DateTime<Utc>,
        months_ahead: u32,
    ) -> StoreResult<Vec<MaintenanceRun>> {
        let started = Instant::now();
        let mut attempt = 0;
        let made = loop {
            attempt += 1;
            match self.ensure_once(now, months_ahead).await {
                Ok(made) => break made,
                Err(e) if lock_timed_out(&e) && attempt < LOCK_TRIES => {
                    tracing::debug!(attempt, "partition creation: locks busy; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)))
                        .await;
                }
                Err(e) => return Err(store_err(e)),
            }
        };
        let millis = elapsed_ms(started);
        Ok(made
            .into_iter()
            .map(|target| MaintenanceRun {
                target,
                action: "CREATE PARTITION".into(),
                millis,
            })
            .collect())
    }

    /// One transaction of [`Self::partitions_ensure_at`].
    async fn ensure_once(
        &self,
        now: DateTime<Utc>,
        months_ahead: u32,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut tx = self.inner.pool.begin().await?;
        // ATTACH takes SHARE UPDATE EXCLUSIVE on the parent (inserts go on)
        // but ACCESS EXCLUSIVE on the DEFAULT partition, which readers of a
        // task's history scan too: never make them queue for long.
        sqlx::query(AssertSqlSafe(format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
        )))
        .execute(&mut *tx)
        .await?;
        let made: Vec<String> =
            sqlx::query_scalar("SELECT * FROM tasker_partitions_ensure($1, $2)")
                .bind(now)
                .bind(i32::try_from(months_ahead).unwrap_or(i32::MAX))
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(made)
    }

    /// The month partitions of `table`, oldest first (bounds from the name,
    /// which `tasker_partition_ensure` derives from them).
    async fn months(&self, table: &str) -> StoreResult<Vec<Month>> {
        let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT c.relname::text, \
                    (to_date(substring(c.relname FROM '_p([0-9]{6})$'), 'YYYYMM')::timestamp \
                        AT TIME ZONE 'UTC'), \
                    ((to_date(substring(c.relname FROM '_p([0-9]{6})$'), 'YYYYMM')::timestamp \
                        + interval '1 month') AT TIME ZONE 'UTC') \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass($1) AND c.relname ~ '_p[0-9]{6}$' \
             ORDER BY 2",
        )
        .bind(table)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .map(|(name, lo, hi)| Month { name, lo, hi })
            .collect())
    }

    /// See [`tasker_store::Store::history_partitions_drop`].
    pub(crate) async fn partitions_drop(
        &self,
        before: DateTime<Utc>,
    ) -> StoreResult<Vec<MaintenanceRun>> {
        // `before` is a cutoff weeks in the past: the few milliseconds
        // between the caller's clock and the database's do not matter at
        // month granularity, and correctness rests on the survivors check.
        let mut out = Vec::new();
        for month in self.months("task_transitions").await? {
            if month.hi > before {
                break;
            }
            match self.drop_transition_month(&month).await? {
                Some(run) => out.extend(run),
                // Too many tasks still have rows there (and so in every
                // later month), or the locks were busy: next pass.
                None => break,
            }
        }
        Ok(out)
    }

    /// Drops (or compacts to its survivors' rows) one month of both
    /// transition tables. None when the month has to stay for now.
    async fn drop_transition_month(&self, m: &Month) -> StoreResult<Option<Vec<MaintenanceRun>>> {
        let started = Instant::now();
        let step_name = m.name.replacen("task_transitions", "step_transitions", 1);
        for attempt in 1..=LOCK_TRIES {
            let mut tx = self.inner.pool.begin().await.map_err(store_err)?;
            let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(PRUNE_LOCK)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_err)?;
            if !ours {
                return Ok(None);
            }
            // Tasks that may have rows in the month: created before its end.
            let survivors: Vec<Uuid> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT id FROM tasks WHERE created_at < $1 + interval '{CLOCK_MARGIN}' \
                 ORDER BY created_at LIMIT $2"
            )))
            .bind(m.hi)
            .bind(MAX_SURVIVORS + 1)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_err)?;
            if survivors.len() as i64 > MAX_SURVIVORS {
                // Now, not when `tx` drops: the prune lock goes with it
                // (crate::tx explains the dropped transaction's window).
                let _ = tx.rollback().await;
                return Ok(None);
            }
            let steps: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM steps WHERE task_id = ANY($1)")
                    .bind(&survivors)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(store_err)?;
            // Copies first, before any lock on the partitioned tables.
            let mut moved = 0u64;
            let mut copies = Vec::new();
            for (table, part, column, ids) in [
                ("task_transitions", m.name.as_str(), "task_id", &survivors),
                ("step_transitions", step_name.as_str(), "step_id", &steps),
            ] {
                let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(part)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(store_err)?;
                if !exists {
                    continue;
                }
                let n = if ids.is_empty() {
                    0
                } else {
                    copy_rows(&mut tx, table, part, column, ids, m).await?
                };
                moved += n;
                copies.push((table, part.to_string(), n > 0));
            }
            // The swap: a few milliseconds under ACCESS EXCLUSIVE locks,
            // taken in one statement in a fixed order.
            sqlx::query(AssertSqlSafe(format!(
                "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
            )))
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
            let swapped = swap(&mut tx, &copies, m).await;
            match swapped {
                Ok(()) => {}
                Err(e) if lock_timed_out(&e) => {
                    drop(tx);
                    tracing::debug!(month = %m.name, attempt, "partition swap: locks busy; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)))
                        .await;
                    continue;
                }
                Err(e) => return Err(store_err(e)),
            }
            tx.commit().await.map_err(store_err)?;
            let millis = elapsed_ms(started);
            let action = if moved == 0 {
                "DROP PARTITION".to_string()
            } else {
                format!(
                    "DROP PARTITION (kept {moved} rows of {} remaining tasks)",
                    survivors.len()
                )
            };
            return Ok(Some(
                copies
                    .into_iter()
                    .map(|(_, part, _)| MaintenanceRun {
                        target: part,
                        action: action.clone(),
                        millis,
                    })
                    .collect(),
            ));
        }
        Ok(None)
    }
}

/// The copy of a month's partition of `table` holding only the rows of
/// `ids` (by `column`), as a table `<part>_keep` ready to be attached;
/// returns how many rows it holds (0: no copy is kept).
async fn copy_rows(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
    part: &str,
    column: &str,
    ids: &[Uuid],
    m: &Month,
) -> StoreResult<u64> {
    let keep = format!("{part}_keep");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS \"{keep}\"; \
         CREATE TABLE \"{keep}\" (LIKE \"{table}\" INCLUDING DEFAULTS)"
    )))
    .execute(&mut **tx)
    .await
    .map_err(store_err)?;
    // Straight into the copy, a table not attached yet: no outbox trigger
    // is on it (ATTACH adds the partitioned table's row triggers later, and
    // they fire only on rows inserted after), so no event is written twice.
    let n = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{keep}\" SELECT * FROM \"{part}\" WHERE {column} = ANY($1)"
    )))
    .bind(ids)
    .execute(&mut **tx)
    .await
    .map_err(store_err)?
    .rows_affected();
    if n == 0 {
        sqlx::query(AssertSqlSafe(format!("DROP TABLE \"{keep}\"")))
            .execute(&mut **tx)
            .await
            .map_err(store_err)?;
        return Ok(0);
    }
    // The range as a constraint: ATTACH then skips its validation scan
    // (`swap` drops it after: writers would pay for checking it again).
    sqlx::raw_sql(AssertSqlSafe(format!(
        "ALTER TABLE \"{keep}\" ADD CONSTRAINT \"{part}_range\" \
             CHECK (created_at >= '{lo}' AND created_at < '{hi}'); \
         ALTER TABLE \"{keep}\" SET (autovacuum_vacuum_insert_scale_factor = 0.05)",
        lo = m.lo.to_rfc3339(),
        hi = m.hi.to_rfc3339()
    )))
    .execute(&mut **tx)
    .await
    .map_err(store_err)?;
    Ok(n)
}

/// Drops the month's partitions and attaches the copies that hold rows.
async fn swap(
    tx: &mut Transaction<'_, Postgres>,
    copies: &[(&str, String, bool)],
    m: &Month,
) -> Result<(), sqlx::Error> {
    if copies.is_empty() {
        return Ok(());
    }
    let tables: Vec<&str> = copies.iter().map(|c| c.0).collect();
    sqlx::query(AssertSqlSafe(format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        tables.join(", ")
    )))
    .execute(&mut **tx)
    .await?;
    for (table, part, kept) in copies {
        let mut sql = format!("DROP TABLE \"{part}\"");
        if *kept {
            sql.push_str(&format!(
                "; ALTER TABLE \"{part}_keep\" RENAME TO \"{part}\"; \
                 ALTER TABLE \"{table}\" ATTACH PARTITION \"{part}\" \
                     FOR VALUES FROM ('{lo}') TO ('{hi}'); \
                 ALTER TABLE \"{part}\" DROP CONSTRAINT \"{part}_range\"",
                lo = m.lo.to_rfc3339(),
                hi = m.hi.to_rfc3339()
            ));
        }
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut **tx).await?;
    }
    Ok(())
}

impl PgStore {
    /// Drops the event partitions of months that ended before `before`
    /// whose rows all have ids and that do not hold the newest event (the
    /// rows `events_prune` would delete one by one); returns how many
    /// rows went.
    pub(crate) async fn event_partitions_drop(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut dropped = 0u64;
        for m in self.months("events").await? {
            if m.hi > before {
                break;
            }
            let mut tx = self.inner.pool.begin().await.map_err(store_err)?;
            let (unnumbered, newest, rows): (bool, bool, i64) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM \"{p}\" WHERE id IS NULL), \
                        COALESCE((SELECT max(seq) FROM \"{p}\") >= (SELECT max(seq) FROM events), false), \
                        (SELECT count(*) FROM \"{p}\")",
                p = m.name
            )))
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err)?;
            if unnumbered || newest {
                break;
            }
            sqlx::query(AssertSqlSafe(format!(
                "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
            )))
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
            match sqlx::raw_sql(AssertSqlSafe(format!(
                "LOCK TABLE events IN ACCESS EXCLUSIVE MODE; DROP TABLE \"{}\"",
                m.name
            )))
            .execute(&mut *tx)
            .await
            {
                Ok(_) => {}
                // Busy: the rows go one batch at a time instead, or next pass.
                Err(e) if lock_timed_out(&e) => break,
                Err(e) => return Err(store_err(e)),
            }
            tx.commit().await.map_err(store_err)?;
            dropped += u64::try_from(rows).unwrap_or(0);
        }
        Ok(dropped)
    }

    /// Warnings about the partitions: rows in a DEFAULT partition (times
    /// outside every month created), no partition for next month (nothing
    /// creates them: neither the pruner nor `tasker maintenance` runs).
    pub(crate) async fn partition_warnings(&self) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        for table in PARTITIONED {
            let default = format!("{table}_default");
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&default)
                .fetch_one(&self.inner.pool)
                .await
                .map_err(store_err)?;
            if !exists {
                continue;
            }
            // One probe, not a count: the health check runs often.
            let any: bool = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM \"{default}\")"
            )))
            .fetch_one(&self.inner.pool)
            .await
            .map_err(store_err)?;
            if any {
                out.push(format!(
                    "rows of {table} are in its DEFAULT partition {default} (their times are \
                     outside every monthly partition): retention cannot drop them with a month; \
                     run `tasker maintenance` or the pruner, which create the months from now on \
                     and move such rows into them"
                ));
            }
        }
        let next_month: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass('task_transitions') \
               AND c.relname = 'task_transitions_p' || \
                   to_char(date_trunc('month', now(), 'UTC') AT TIME ZONE 'UTC' + interval '1 month', 'YYYYMM'))",
        )
        .fetch_one(&self.inner.pool)
        .await
        .map_err(store_err)?;
        if !next_month {
            out.push(
                "no partition of the history tables exists for next month: run `tasker \
                 maintenance`, or enable the pruner (`retention.enabled`), which create them \
                 ahead of time"
                    .to_string(),
            );
        }
        Ok(out)
    }
}
