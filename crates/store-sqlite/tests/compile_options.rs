//! The bundled SQLite is built with the options `.cargo/config.toml` gives
//! libsqlite3-sys (`LIBSQLITE3_FLAGS`): without memory statistics, which
//! otherwise take a global mutex around each of SQLite's allocations (about
//! 13 % of the embedded store's throughput, docs/PERFORMANCE.md, "SQLite:
//! memory statistics and per-row scratch tables"). A build that lost the
//! setting (the file moved, the variable renamed upstream) fails here
//! rather than running slower unnoticed.

use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

#[tokio::test]
async fn sqlite_is_built_without_memory_statistics() {
    let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
    let options: Vec<String> =
        sqlx::query_scalar("SELECT compile_options FROM pragma_compile_options")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "compile options: {options:?}"
    );
}
