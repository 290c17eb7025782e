//! Opens the store a database URL names.
//!
//! What a URL means is decided by [`tasker_config::database_kind`], the same
//! function the configuration checks use, so a URL that passed the checks
//! opens the store they expected.

use anyhow::{Context, bail};
use sqlx::Connection;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tasker_config::{DatabaseKind, TaskerConfig, database_kind};
use tasker_store::Store;

/// Connects with the pool settings of `[database]` (creating the SQLite
/// file if needed) and applies migrations.
///
/// On PostgreSQL one plain connection is tried first: the pool retries a
/// refused connection until its acquire timeout, which turns "nothing
/// listens there" into a vague "pool timed out" after seconds.
pub async fn open_with(c: &TaskerConfig) -> anyhow::Result<Arc<dyn Store>> {
    let url = c.database.url.as_str();
    let acquire = Duration::try_from_secs_f64(c.database.acquire_timeout_seconds)
        .unwrap_or(Duration::from_secs(5));
    match database_kind(url) {
        Ok(DatabaseKind::Postgres) => {
            probe_postgres(url, acquire)
                .await
                .with_context(|| format!("cannot open PostgreSQL database {}", redact(url)))?;
            let options = tasker_store_postgres::PgOptions {
                max_connections: c.database.max_connections,
                min_connections: c.database.min_connections,
                acquire_timeout: acquire,
                announce_changes: c.database.announce_changes,
                ..tasker_store_postgres::PgOptions::default()
            };
            let store = tasker_store_postgres::PgStore::connect_with(url, options)
                .await
                .with_context(|| format!("cannot open PostgreSQL database {}", redact(url)))?;
            Ok(Arc::new(store))
        }
        Ok(DatabaseKind::Sqlite) => {
            let options = tasker_store_sqlite::SqliteOptions {
                synchronous_full: c.database.sqlite_synchronous == "full",
                max_connections: c.database.max_connections,
                ..tasker_store_sqlite::SqliteOptions::default()
            };
            let store = tasker_store_sqlite::SqliteStore::connect_with(url, options)
                .await
                .with_context(|| format!("cannot open SQLite database {url}"))?;
            Ok(Arc::new(store))
        }
        Err(why) => bail!(
            "database URL `{}` {why}: {}",
            redact(url),
            tasker_config::DATABASE_URL_FIX
        ),
    }
}

/// [`open_with`] with default pool settings.
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let mut c = TaskerConfig::default();
    c.database.url = url.to_string();
    open_with(&c).await
}

/// One connection attempt, so a refused or rejected connection is reported
/// at once and by name.
async fn probe_postgres(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| anyhow::anyhow!("invalid PostgreSQL URL: {e}"))?;
    let attempt = tokio::time::timeout(timeout, sqlx::PgConnection::connect_with(&options)).await;
    match attempt {
        Err(_) => bail!("no answer within {timeout:?}"),
        Ok(Err(sqlx::Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            bail!(
                "connection refused (is PostgreSQL running at {}:{}?)",
                options.get_host(),
                options.get_port()
            )
        }
        // The message only: `{e:#}` of the sqlx error would repeat it.
        Ok(Err(e)) => bail!("{e}"),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
    }
}

/// Migrations recorded as applied in the database `url` names; 0 when the
/// database (or its SQLite file) does not exist yet. Never creates anything.
pub async fn applied_migrations(url: &str) -> anyhow::Result<i64> {
    match database_kind(url) {
        Ok(DatabaseKind::Postgres) => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let n: i64 = sqlx::query_scalar(
                "SELECT CASE WHEN to_regclass('_sqlx_migrations') IS NULL THEN 0 \
                 ELSE (SELECT count(*) FROM _sqlx_migrations WHERE success) END",
            )
            .fetch_one(&mut conn)
            .await?;
            let _ = conn.close().await;
            Ok(n)
        }
        Ok(DatabaseKind::Sqlite) => {
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Ok(0);
            }
            let options = sqlite_options(url)?
                .read_only(true)
                .create_if_missing(false);
            // A file that cannot be opened read-only does not exist yet.
            let Ok(mut conn) = sqlx::SqliteConnection::connect_with(&options).await else {
                return Ok(0);
            };
            let n: i64 = sqlx::query_scalar(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
                 AND name = '_sqlx_migrations') THEN (SELECT count(*) FROM _sqlx_migrations \
                 WHERE success = 1) ELSE 0 END",
            )
            .fetch_one(&mut conn)
            .await?;
            let _ = conn.close().await;
            Ok(n)
        }
        Err(why) => bail!("database URL `{}` {why}", redact(url)),
    }
}

/// Connection options for a SQLite URL (`sqlite:…`) or a bare file path.
pub fn sqlite_options(url: &str) -> anyhow::Result<sqlx::sqlite::SqliteConnectOptions> {
    Ok(if url.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(url)?
    } else {
        sqlx::sqlite::SqliteConnectOptions::new().filename(url)
    })
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    tasker_config::load::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
