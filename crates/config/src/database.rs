//! Which store a `database.url` names. One function, used by the
//! configuration checks and by the binary that opens the store, so the two
//! can never disagree about what a URL means.

/// The store a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:…`, or a bare path that is clearly a file.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

/// Reads the kind of database `url` names, or says why it names none.
///
/// Accepted: `sqlite://PATH` / `sqlite:PATH` / `sqlite::memory:`,
/// `postgres://…` / `postgresql://…`, and a bare path that clearly is a file
/// (it contains a `/`, or ends in `.db`, `.sqlite` or `.sqlite3`). Anything
/// else is refused rather than guessed: `localhost` alone would otherwise
/// silently become a SQLite file named `localhost`.
pub fn database_kind(url: &str) -> Result<DatabaseKind, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("is empty".into());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseKind::Postgres);
    }
    if url.starts_with("sqlite:") {
        return Ok(DatabaseKind::Sqlite);
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(format!("has the unsupported scheme `{scheme}://`"));
    }
    let file_like = [".db", ".sqlite", ".sqlite3"]
        .iter()
        .any(|ext| url.ends_with(ext));
    if url.contains('/') || file_like {
        return Ok(DatabaseKind::Sqlite);
    }
    Err(format!(
        "is neither a URL nor clearly a file path (write sqlite://{url} for a SQLite file of that name, postgres://{url}/DBNAME for a PostgreSQL server)"
    ))
}

/// What to write instead, for error messages.
pub const DATABASE_URL_FIX: &str = "use sqlite://PATH or postgres://user@host/db";

#[cfg(test)]
mod tests {
    use super::{DatabaseKind::*, database_kind};

    #[test]
    fn schemes_and_file_paths_are_accepted() {
        for (url, kind) in [
            ("sqlite://tasker.db", Sqlite),
            ("sqlite::memory:", Sqlite),
            ("sqlite:t.db?mode=rwc", Sqlite),
            ("postgres://u@h/db", Postgres),
            ("postgresql://u@h/db", Postgres),
            ("./tasker.db", Sqlite),
            ("/var/lib/tasker/state", Sqlite),
            ("tasker.sqlite3", Sqlite),
        ] {
            assert_eq!(database_kind(url), Ok(kind), "{url}");
        }
    }

    #[test]
    fn empty_bare_words_and_other_schemes_are_refused() {
        for url in [
            "",
            "  ",
            "localhost",
            "tasker",
            "mysql://u@h/db",
            "http://h",
        ] {
            assert!(database_kind(url).is_err(), "{url}");
        }
    }
}
