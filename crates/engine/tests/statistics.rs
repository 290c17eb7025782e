//! A running worker keeps the planner statistics of a PostgreSQL store's
//! tables current (`worker::statistics`, docs/STORAGE.md "History,
//! retention and maintenance"): started over a `steps` table that grew and
//! was never analysed, it analyses it, without anyone running `tasker
//! maintenance` and with autovacuum off for the table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};
use tasker_engine::TaskRequest;
use tasker_store::Store;
use tasker_store_postgres::testing::TestDb;

const SINGLE: &str =
    "name: single\nnamespace: stats\nstep_templates:\n  - name: a\n    handler: { kind: noop }\n";

async fn steps_rows(pg: &tasker_store_postgres::PgStore) -> f64 {
    sqlx::query_scalar(
        "SELECT reltuples::float8 FROM pg_class \
         WHERE relname = 'steps' AND relnamespace = current_schema()::regnamespace",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_worker_analyses_a_grown_table() {
    let db = TestDb::create().await;
    let pg = db.store().await;
    sqlx::query("ALTER TABLE steps SET (autovacuum_enabled = off)")
        .execute(pg.pool())
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    let tasker = common::builder(store)
        .template(common::template(SINGLE))
        .build()
        .unwrap();
    let requests = (0..2000)
        .map(|_| TaskRequest::new("stats", "single"))
        .collect();
    tasker.create_tasks(requests).await.unwrap();
    assert!(
        steps_rows(&pg).await < 0.0,
        "never analysed before the worker"
    );

    let worker = tasker.start();
    // The worker checks at start, then every few seconds; the catalog is
    // the only place its effect shows.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = steps_rows(&pg).await;
        if rows >= 0.0 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    worker.shutdown().await;
    assert!(rows >= 1000.0, "steps analysed by the worker: {rows} rows");
}
