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
