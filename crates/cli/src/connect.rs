//! Opens the store a database URL names.

use anyhow::{Context, bail};
use std::sync::Arc;
use tasker_store::Store;

/// Connects (creating the SQLite file if needed) and applies migrations.
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = tasker_store_postgres::PgStore::connect(url)
            .await
            .with_context(|| format!("cannot open PostgreSQL database {}", redact(url)))?;
        Ok(Arc::new(store))
    } else if url.starts_with("sqlite:") || !url.contains("://") {
        let store = tasker_store_sqlite::SqliteStore::connect(url)
            .await
            .with_context(|| format!("cannot open SQLite database {url}"))?;
        Ok(Arc::new(store))
    } else {
        bail!(
            "unsupported database URL `{}`: use sqlite://PATH or postgres://…",
            redact(url)
        )
    }
}

/// Connects with the pool settings of `[database]`.
pub async fn open_with(c: &tasker_config::TaskerConfig) -> anyhow::Result<Arc<dyn Store>> {
    let url = c.database.url.as_str();
    let acquire = std::time::Duration::try_from_secs_f64(c.database.acquire_timeout_seconds)
        .unwrap_or(std::time::Duration::from_secs(5));
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = tasker_store_postgres::PgOptions {
            max_connections: c.database.max_connections,
            min_connections: c.database.min_connections,
            acquire_timeout: acquire,
            ..tasker_store_postgres::PgOptions::default()
        };
        let store = tasker_store_postgres::PgStore::connect_with(url, options)
            .await
            .with_context(|| format!("cannot open PostgreSQL database {}", redact(url)))?;
        Ok(Arc::new(store))
    } else if url.starts_with("sqlite:") || !url.contains("://") {
        let options = tasker_store_sqlite::SqliteOptions {
            synchronous_full: c.database.sqlite_synchronous == "full",
            max_connections: c.database.max_connections,
            ..tasker_store_sqlite::SqliteOptions::default()
        };
        let store = tasker_store_sqlite::SqliteStore::connect_with(url, options)
            .await
            .with_context(|| format!("cannot open SQLite database {url}"))?;
        Ok(Arc::new(store))
    } else {
        bail!(
            "unsupported database URL `{}`: use sqlite://PATH or postgres://…",
            redact(url)
        )
    }
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
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
