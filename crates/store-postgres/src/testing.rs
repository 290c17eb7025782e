//! Test support for anything that needs a PostgreSQL database: one fresh
//! database per test, dropped when its guard is.
//!
//! The maintenance URL comes from `TASKER_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each [`TestDb`] creates
//! `tasker_test_<uuid>` through it and drops it (best effort) when the guard
//! goes out of scope. An unreachable server panics with a clear message:
//! tests that use this never skip. Used by this crate's tests, the server's
//! route tests and the CLI's multi-process tests; not meant for production.

use crate::{PgOptions, PgStore};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Default maintenance URL.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance URL in effect.
pub fn admin_url() -> String {
    std::env::var("TASKER_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // The path starts at the first '/' after "scheme://authority".
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..authority_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Makes this process's pools forget that a connection was lost, so that
/// they test connections at acquire only after an idle second again
/// (`pool.rs`). For a test that needs to see what a pool does before any
/// loss was seen, in a test binary of its own (the memory is process-wide).
pub fn forget_lost_connections() {
    crate::pool::forget_losses();
}

/// A database that is dropped when this guard is.
pub struct TestDb {
    /// URL of the test database.
    pub url: String,
    name: String,
    admin: String,
}

impl TestDb {
    /// Creates a fresh, empty database through [`admin_url`]; panics loudly
    /// if PostgreSQL is unreachable.
    pub async fn create() -> TestDb {
        Self::create_on(&admin_url()).await
    }

    /// Creates a fresh, empty database through the maintenance URL `admin`.
    pub async fn create_on(admin: &str) -> TestDb {
        let admin = admin.to_string();
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => panic!(
                "\n\nPostgreSQL is required for these tests and is not reachable\n\
                 at {admin} ({e}).\nStart it (trust auth on 127.0.0.1:5432) or point \
                 TASKER_TEST_PG_URL at a maintenance database a superuser can reach.\n\n"
            ),
        };
        let name = format!("tasker_test_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name} via {admin}: {e}"));
        let _ = conn.close().await;
        TestDb {
            url: with_database(&admin, &name),
            name,
            admin,
        }
    }

    /// A store on this database (migrated), on the caller's clock
    /// ([`crate::PgClock::Caller`]) so that injected times are stored exactly.
    pub async fn store(&self) -> PgStore {
        self.store_with(PgOptions {
            clock: crate::PgClock::Caller,
            ..PgOptions::default()
        })
        .await
    }

    /// A store on this database with options.
    pub async fn store_with(&self, options: PgOptions) -> PgStore {
        PgStore::connect_with(&self.url, options)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.url))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime; do the async work on a thread
        // of its own with a small runtime, and wait for it.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    // WITH (FORCE) (PostgreSQL 13+) ends sessions still open,
                    // e.g. a listener whose task has not noticed the abort yet.
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A private PostgreSQL cluster in a temporary directory, for tests that stop
/// or restart the server (outages) without touching the shared one. Started
/// with `initdb` / `pg_ctl` from `/usr/lib/postgresql/*/bin`, run as the
/// `postgres` user when the test runs as root (pg_ctl refuses root). Stopped
/// (`-m immediate`) and deleted when dropped.
pub struct PrivateCluster {
    dir: std::path::PathBuf,
    port: u16,
    bin: std::path::PathBuf,
}

impl PrivateCluster {
    /// initdb + start on a free local port. Panics with the failing command.
    pub fn start() -> PrivateCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(format!("tasker-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let c = PrivateCluster { dir, port, bin };
        let ok = shell(&format!("chmod 777 {}", c.dir.display()), false)
            && shell(
                &format!(
                    "{}/initdb -D {} -A trust -U postgres >/dev/null",
                    c.bin.display(),
                    c.data().display()
                ),
                true,
            );
        assert!(ok, "initdb failed in {}", c.dir.display());
        c.pg_ctl("start -w");
        c
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    /// Runs `pg_ctl <action>` on this cluster (`stop -m fast`, `start -w`, …);
    /// panics if it fails.
    pub fn pg_ctl(&self, action: &str) {
        if !self.try_pg_ctl(action) {
            panic!("pg_ctl {action} failed (log: {}/log)", self.dir.display());
        }
    }

    fn try_pg_ctl(&self, action: &str) -> bool {
        shell(
            &format!(
                "{}/pg_ctl -D {} -o '-p {} -k {} -c listen_addresses=127.0.0.1' -l {}/log {action} >/dev/null",
                self.bin.display(),
                self.data().display(),
                self.port,
                self.dir.display(),
                self.dir.display()
            ),
            true,
        )
    }

    /// URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        // Best effort: the test may have stopped it already.
        let _ = self.try_pg_ctl("stop -m immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` with `sh -c`, as `postgres` when `as_postgres` and we are
/// root; true when it succeeded.
fn shell(cmd: &str, as_postgres: bool) -> bool {
    let root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
    let status = if as_postgres && root {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "sh", "-c", cmd])
            .status()
    } else {
        std::process::Command::new("sh").args(["-c", cmd]).status()
    };
    matches!(status, Ok(s) if s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/postgres?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
