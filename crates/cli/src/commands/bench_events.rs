//! `tasker bench --events false`: measures the engine without the event
//! outbox, in the same build, on the benchmark's own database
//! (docs/PERFORMANCE.md, "Event outbox cost"): PostgreSQL drops its two
//! outbox triggers and sets `tasker.events = 'off'` on the database, which
//! turns off the event CTEs of the hot statements (each a one-time filter,
//! so the statements are the same otherwise); SQLite, whose status
//! triggers write each change as one row that is both its transition and
//! its event, re-creates those triggers with their event switch
//! `(1 /* lifecycle events */)` turned to 0: the same rows, without event
//! type and payload (migration `20261205000000_transitions_are_events.sql`).
//!
//! Only a database with no task yet is accepted (the default fresh SQLite
//! file, or a new PostgreSQL database made for the run): that database
//! records no events afterwards, so it must not be one anyone uses.

use crate::connect;
use anyhow::bail;
use sqlx::Connection;
use tasker_config::{DatabaseKind, database_kind};

const DROP: &str = "DROP TRIGGER IF EXISTS task_transitions_event ON task_transitions; \
                    DROP TRIGGER IF EXISTS step_transitions_event ON step_transitions; \
                    DO $$ BEGIN \
                        EXECUTE format('ALTER DATABASE %I SET tasker.events = %L', current_database(), 'off'); \
                    END $$";

/// Removes the event writes of the (migrated, empty) database `url`.
pub async fn disable(url: &str) -> anyhow::Result<()> {
    match database_kind(url) {
        Ok(DatabaseKind::Postgres) => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
                .fetch_one(&mut conn)
                .await?;
            refuse_if_used(tasks, url)?;
            sqlx::raw_sql(DROP).execute(&mut conn).await?;
            let _ = conn.close().await;
        }
        Ok(DatabaseKind::Sqlite) => {
            let mut conn =
                sqlx::SqliteConnection::connect_with(&connect::sqlite_options(url)?).await?;
            let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
                .fetch_one(&mut conn)
                .await?;
            refuse_if_used(tasks, url)?;
            let triggers: Vec<(String, String)> = sqlx::query_as(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND sql LIKE ?1",
            )
            .bind(format!("%{EVENTS_ON}%"))
            .fetch_all(&mut conn)
            .await?;
            if triggers.is_empty() {
                bail!("no trigger of `{}` records events", connect::redact(url));
            }
            let mut tx = conn.begin().await?;
            for (name, sql) in triggers {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER \"{name}\"")))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(sql.replace(EVENTS_ON, EVENTS_OFF)))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            let _ = conn.close().await;
        }
        Err(why) => bail!("database URL `{}` {why}", connect::redact(url)),
    }
    Ok(())
}

/// Refuses a database that already has tasks: it would record no events
/// afterwards, so it must be one made for the benchmark.
fn refuse_if_used(tasks: i64, url: &str) -> anyhow::Result<()> {
    if tasks > 0 {
        bail!(
            "--events false needs a database with no task yet (it removes the event writes of `{}`); use a new database",
            connect::redact(url)
        );
    }
    Ok(())
}

/// The switch in every SQLite trigger that records an event: a constant
/// the trigger's `CASE` tests before naming the event's type.
const EVENTS_ON: &str = "(1 /* lifecycle events */)";
/// [`EVENTS_ON`] turned off: no type, so no payload either.
const EVENTS_OFF: &str = "(0 /* lifecycle events */)";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// On SQLite the switch leaves every transition (and what the triggers
    /// do besides: counters, the task's start) and writes no event; a
    /// database with a task is refused.
    #[tokio::test]
    async fn sqlite_off_keeps_the_transitions_and_records_no_event() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("off.db").display());
        drop(connect::open(&url).await.unwrap());
        disable(&url).await.unwrap();
        let mut conn =
            sqlx::SqliteConnection::connect_with(&connect::sqlite_options(&url).unwrap())
                .await
                .unwrap();
        for sql in [
            "INSERT INTO tasks (id, namespace, name, version, status, context, initiator, \
             source_system, reason, correlation_id, steps_total, steps_remaining, steps_live, \
             steps_blocked, created_at, updated_at) VALUES (x'01', 'n', 't', '1.0.0', 'pending', \
             '{}', 'i', 's', 'r', 'c', 1, 1, 1, 0, 1, 1)",
            "INSERT INTO steps (id, task_id, name, position, dependent_system, handler_kind, \
             handler_config, inputs, status, max_attempts, retry_limit, retryable, skippable, \
             remaining_parents, ready_at, created_at, updated_at) VALUES (x'02', x'01', 's', 0, \
             'd', 'noop', '{}', '{}', 'pending', 3, 3, 1, 0, 0, 1, 1, 1)",
            "UPDATE steps SET status = 'in_progress', attempts = 1, lease_owner = 'w', \
             lease_token = randomblob(16), lease_expires_at = 100, \
             ready_at = NULL, last_attempted_at = 2, updated_at = 2",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let (events, transitions, status): (i64, i64, String) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events WHERE type IS NOT NULL OR payload IS NOT NULL), \
                    (SELECT count(*) FROM events WHERE to_state IS NOT NULL), \
                    (SELECT status FROM tasks)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            (events, transitions, status.as_str()),
            (0, 3, "in_progress"),
            "task created, step and task started (a step's creation is no transition)"
        );
        let _ = conn.close().await;
        let refused = disable(&url).await.unwrap_err().to_string();
        assert!(refused.contains("no task yet"), "{refused}");
    }
}
