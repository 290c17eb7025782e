//! `tasker bench --events false`: measures the engine without the event
//! outbox, in the same build, by dropping the two outbox triggers on the
//! benchmark's own database (docs/PERFORMANCE.md, "Event outbox cost").
//!
//! Only a database with no task yet is accepted (the default fresh SQLite
//! file, or a new PostgreSQL database made for the run): that database
//! records no events afterwards, so it must not be one anyone uses.

use crate::connect;
use anyhow::bail;
use sqlx::Connection;
use tasker_config::{DatabaseKind, database_kind};

const DROP: &str = "DROP TRIGGER IF EXISTS task_transitions_events ON task_transitions; \
                    DROP TRIGGER IF EXISTS step_transitions_events ON step_transitions";
const DROP_SQLITE: [&str; 2] = [
    "DROP TRIGGER IF EXISTS task_transitions_events",
    "DROP TRIGGER IF EXISTS step_transitions_events",
];

/// Drops the outbox triggers of the (migrated, empty) database `url`.
pub async fn disable(url: &str) -> anyhow::Result<()> {
    match database_kind(url) {
        Ok(DatabaseKind::Postgres) => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
                .fetch_one(&mut conn)
                .await?;
            if tasks > 0 {
                bail!(
                    "--events false needs a database with no task yet (it drops the event triggers of `{}`); use a new database",
                    connect::redact(url)
                );
            }
            sqlx::raw_sql(DROP).execute(&mut conn).await?;
            let _ = conn.close().await;
        }
        Ok(DatabaseKind::Sqlite) => {
            let mut conn =
                sqlx::SqliteConnection::connect_with(&connect::sqlite_options(url)?).await?;
            let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
                .fetch_one(&mut conn)
                .await?;
            if tasks > 0 {
                bail!(
                    "--events false needs a database with no task yet (it drops the event triggers of `{}`); use a new database",
                    connect::redact(url)
                );
            }
            for sql in DROP_SQLITE {
                sqlx::query(sql).execute(&mut conn).await?;
            }
            let _ = conn.close().await;
        }
        Err(why) => bail!("database URL `{}` {why}", connect::redact(url)),
    }
    Ok(())
}
