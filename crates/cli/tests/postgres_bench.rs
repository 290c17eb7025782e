//! `tasker bench` on PostgreSQL states how its sessions reach the server
//! (TLS or not) and what their commits wait for, since its figures depend
//! on both (docs/PERFORMANCE.md, "A claim planned once, and the transport
//! like for like").
//!
//! PostgreSQL must be reachable at `TASKER_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`): this test fails, loudly,
//! when it is not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sqlx::{Connection, PgConnection};
use tasker_store_postgres::testing::TestDb;

fn bench_session_line(url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = common::bin(dir.path())
        .args([
            "bench",
            "--target",
            url,
            "--scenario",
            "chain",
            "--chains",
            "1",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout
        .lines()
        .find(|l| l.starts_with("postgres session: "))
        .unwrap_or_else(|| panic!("no session line:\n{stdout}"))
        .to_string()
}

fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

#[tokio::test]
async fn bench_states_its_transport_and_durability() {
    let db = TestDb::create().await;
    let plain = bench_session_line(&with_param(&db.url, "sslmode=disable"));
    assert!(plain.contains("no TLS"), "{plain}");
    // The server's own settings, as the line must report them.
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let (ssl, fsync, sync): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('ssl'), current_setting('fsync'), \
                current_setting('synchronous_commit')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    assert!(
        plain.ends_with(&format!("fsync {fsync}, synchronous_commit {sync}")),
        "{plain}"
    );
    if ssl == "on" {
        let tls = bench_session_line(&with_param(&db.url, "sslmode=require"));
        assert!(tls.contains("TLS (TLSv"), "{tls}");
        assert!(!tls.contains("no TLS"), "{tls}");
    }
}
