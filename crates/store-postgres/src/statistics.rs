//! Planner statistics of the hot tables, kept current as they grow.
//!
//! PostgreSQL plans a prepared statement once per connection and keeps that
//! generic plan until something invalidates it. A plan chosen while `steps`
//! held a few dozen rows reads it with a sequential scan (cheaper than an
//! index probe at that size), and it stays a sequential scan as the table
//! grows: measured on a fresh database with autovacuum off, a chain stage
//! went from 3.0 ms over the first 250 steps to 6.0 ms at 4,000, every
//! claim and finish scanning the whole table. `ANALYZE` invalidates the
//! cached plans of every session (their next execution plans again, with
//! the table's real size), and the stage went back to 2.7 ms at once.
//!
//! Autovacuum does this by itself, but only after its naptime (a minute by
//! default) and not at all where it is off (common in CI and some managed
//! setups). So [`PgStore::analyze_grown`] analyses a table of the schema
//! once it has at least [`MIN_PAGES`] pages and twice the pages its
//! statistics recorded (or was never analysed): a handful of `ANALYZE`s
//! while a table is young, one per doubling afterwards. Every ordinary
//! table counts, not only `steps`, `tasks` and `step_edges`: the outbox's
//! numbering, the webhook dispatcher and the API's reads of transitions and
//! events have cached plans too, and the month partitions of the history
//! are tables of their own (a partitioned parent has no rows to sample).
//! Where autovacuum keeps up, the statistics are current and this does
//! nothing. `SKIP_LOCKED`: when another process is analysing the same
//! table, this one skips it rather than wait. Only tables the session may
//! analyse (it has the privileges of their owner or of the database's
//! owner) are considered: an application role that did not run the
//! migrations would otherwise have PostgreSQL skip the same tables with a
//! warning every few seconds, forever.

use crate::PgStore;
use crate::error::store_err;
use tasker_store::{MaintenanceRun, StoreResult};

/// Below this size any plan is cheap: a scan of a few pages costs about an
/// index probe, and analysing at every small growth would be churn.
pub(crate) const MIN_PAGES: i64 = 8;

/// A table is analysed again once it has this many times the pages its
/// statistics recorded.
pub(crate) const GROWTH: i64 = 2;

/// Whether a table of `pages` pages needs its statistics refreshed, given
/// the pages and rows the last `ANALYZE` or `VACUUM` recorded
/// (`pg_class.relpages`, `reltuples`: -1 for never).
pub(crate) fn outgrown(recorded_pages: i64, recorded_rows: f64, pages: i64) -> bool {
    pages >= MIN_PAGES && (recorded_rows < 0.0 || pages >= GROWTH * recorded_pages.max(1))
}

impl PgStore {
    /// Runs `ANALYZE (SKIP_LOCKED)` on each table of the schema that has
    /// outgrown its statistics ([`outgrown`]); one run per table analysed.
    pub(crate) async fn analyze_grown(&self) -> StoreResult<Vec<MaintenanceRun>> {
        let sizes: Vec<(String, i64, f64, i64)> = sqlx::query_as(
            "SELECT c.relname::text, c.relpages::bigint, c.reltuples::float8, \
                    pg_relation_size(c.oid) / current_setting('block_size')::bigint \
             FROM pg_class c \
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' \
               AND c.relname <> '_sqlx_migrations' \
               AND (pg_has_role(c.relowner, 'USAGE') \
                    OR pg_has_role((SELECT datdba FROM pg_database \
                                    WHERE datname = current_database()), 'USAGE')) \
             ORDER BY c.relname",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_err)?;
        let mut runs = Vec::new();
        for (table, recorded_pages, recorded_rows, pages) in sizes {
            if !outgrown(recorded_pages, recorded_rows, pages) {
                continue;
            }
            runs.push(self.table_command("ANALYZE (SKIP_LOCKED)", table).await?);
        }
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_are_left_alone() {
        assert!(!outgrown(-1, -1.0, 0));
        assert!(!outgrown(-1, -1.0, MIN_PAGES - 1));
        assert!(!outgrown(0, 0.0, MIN_PAGES - 1));
    }

    #[test]
    fn a_never_analysed_table_is_analysed_once_it_is_not_small() {
        assert!(outgrown(-1, -1.0, MIN_PAGES));
        // reltuples -1 with relpages 0 is PostgreSQL's "never": pages do not matter.
        assert!(outgrown(0, -1.0, 1000));
    }

    #[test]
    fn an_analysed_table_is_analysed_again_per_doubling() {
        // Analysed while empty: again once it has grown past the floor.
        assert!(outgrown(0, 0.0, MIN_PAGES));
        assert!(!outgrown(100, 2500.0, 199));
        assert!(outgrown(100, 2500.0, 200));
        // A table that shrank (retention) keeps its statistics: its plans
        // read indexes, which stay right as it shrinks.
        assert!(!outgrown(10_000, 250_000.0, 50));
    }
}
