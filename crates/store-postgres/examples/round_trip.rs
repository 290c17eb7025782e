//! What one round trip to PostgreSQL costs from this store's client stack
//! (sqlx on tokio), with nearly no server work: `SELECT 1`, and an empty
//! `BEGIN` + `COMMIT` (two round trips, no WAL flush). It is what the
//! finish statement saves by running on its own (docs/PERFORMANCE.md, "The
//! finish statement on its own").
//!
//! ```sh
//! cargo run --release -p tasker-store-postgres --example round_trip -- postgres://postgres@127.0.0.1:5432/postgres
//! ```

use sqlx::Connection;
use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: round_trip POSTGRES_URL")?;
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    let n = 5000;
    for round in 1..=3 {
        let t = Instant::now();
        for _ in 0..n {
            sqlx::query("SELECT 1").execute(&mut conn).await?;
        }
        let select = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let t = Instant::now();
        for _ in 0..n {
            conn.begin().await?.commit().await?;
        }
        let begin_commit = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!(
            "round {round}: SELECT 1 {select:.1} µs; empty BEGIN + COMMIT {begin_commit:.1} µs ({n} each)"
        );
    }
    Ok(())
}
