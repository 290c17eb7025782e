//! `tasker bench --events false`: measures the engine without the event
//! outbox, in the same build, on the benchmark's own database
//! (docs/PERFORMANCE.md, "Event outbox cost"): PostgreSQL drops its two
//! outbox triggers and sets `tasker.events = 'off'` on the database, which
//! turns off the event CTEs of the hot statements (each a one-time filter,
//! so the statements are the same otherwise); SQLite, whose status
//! triggers write each event next to its transition, re-creates those
//! triggers without their `INSERT INTO events` statements (everything else
//! they do stays).
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
                "SELECT name, sql FROM sqlite_master \
                 WHERE type = 'trigger' AND sql LIKE '%INSERT INTO events%'",
            )
            .fetch_all(&mut conn)
            .await?;
            let mut tx = conn.begin().await?;
            for (name, sql) in triggers {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER \"{name}\"")))
                    .execute(&mut *tx)
                    .await?;
                if let Some(rest) = without_event_inserts(&sql) {
                    sqlx::query(sqlx::AssertSqlSafe(rest))
                        .execute(&mut *tx)
                        .await?;
                }
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

/// A trigger's SQL without its `INSERT INTO events …;` statements (none of
/// them holds a `;` of its own), or `None` when nothing else is left in it
/// (a trigger that only writes events).
fn without_event_inserts(sql: &str) -> Option<String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("INSERT INTO events") {
        out.push_str(&rest[..at]);
        rest = rest[at..].find(';').map_or("", |end| &rest[at + end + 1..]);
    }
    out.push_str(rest);
    out.contains(';').then_some(out)
}

#[cfg(test)]
mod tests {
    use super::without_event_inserts;

    #[test]
    fn only_the_event_inserts_go() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON x BEGIN\n\
                   INSERT INTO y VALUES (1);\n\
                   INSERT INTO events (a) SELECT json_object('k', 1) FROM z;\n\
                   UPDATE w SET n = n + 1;\nEND";
        assert_eq!(
            without_event_inserts(sql).as_deref(),
            Some(
                "CREATE TRIGGER t AFTER INSERT ON x BEGIN\nINSERT INTO y VALUES (1);\n\n\
                 UPDATE w SET n = n + 1;\nEND"
            )
        );
        let only_events = "CREATE TRIGGER t AFTER INSERT ON x WHEN NEW.a = 1 BEGIN\n\
                           INSERT INTO events (a) VALUES (1);\nEND";
        assert_eq!(without_event_inserts(only_events), None);
    }
}
