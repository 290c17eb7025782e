//! A store on either backend, and what keeps it alive.
//!
//! PostgreSQL tests get a fresh database each, created through the
//! maintenance URL in `TASKER_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped when the
//! [`Db`] is dropped ([`tasker_store_postgres::testing::TestDb`]).

use std::sync::Arc;
use tasker_store::Store;
use tasker_store_postgres::testing::TestDb;

/// Keeps a test database alive.
pub enum Guard {
    /// The SQLite file's directory (deleted on drop).
    Sqlite(tempfile::TempDir),
    /// The PostgreSQL database (dropped on drop).
    Postgres(TestDb),
}

/// A store and what keeps it alive.
pub struct Db {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Its database.
    pub guard: Guard,
}

/// A fresh SQLite file in a temporary directory.
pub async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tasker.db").display());
    let store = tasker_store_sqlite::SqliteStore::connect(&url)
        .await
        .unwrap();
    Db {
        store: Arc::new(store),
        guard: Guard::Sqlite(dir),
    }
}

/// A fresh PostgreSQL database.
pub async fn postgres() -> Db {
    let db = TestDb::create().await;
    let store = db.store().await;
    Db {
        store: Arc::new(store),
        guard: Guard::Postgres(db),
    }
}
