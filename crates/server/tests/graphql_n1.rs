//! The DataLoader keeps `tasks { steps { parents } }` (and `tasks { events }`)
//! at a constant number of database statements, however many tasks the page
//! holds. Counted from
//! sqlx's own per-statement events (target `sqlx::query`), so what is
//! counted is what reached the database, on both stores.
//!
//! Its own test binary: the counter is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Db, Harness};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

const QUERY: &str =
    "{ tasks(first: 50) { edges { node { id steps { name status parents { name } } } } } }";

/// `Task.events` over a page, twice with different arguments (aliases).
const EVENTS: &str = r#"{ tasks(first: 50) { edges { node { id
    a: events(limit: 5) { events { type } }
    b: events(type: ["task.*"]) { nextAfter } } } } }"#;

/// Statements one run of `query` sends: the fewest of three runs. The
/// counter is process-wide, so a run can also count a statement that is
/// not the query's (a connection's first use of a statement, the store's
/// notification listener); growth with the number of tasks would show in
/// every run, so the fewest is the query's own count.
async fn statements(h: &Harness, query: &str) -> usize {
    let mut fewest = usize::MAX;
    for _ in 0..3 {
        let before = STATEMENTS.load(Ordering::SeqCst);
        let r = h.post("/tasker/graphql", json!({"query": query})).await;
        assert!(r.json.get("errors").is_none(), "{}", r.text);
        fewest = fewest.min(STATEMENTS.load(Ordering::SeqCst) - before);
    }
    fewest
}

/// Statements of `(QUERY, EVENTS)` over 5 tasks, then over 50.
async fn constant_statements(db: Db) -> [(usize, usize); 2] {
    let h = Harness::new(db).await;
    for i in 1..=5 {
        h.checkout(i).await;
    }
    // Warm-up: the readiness probe's first ping and the pool's connections.
    statements(&h, QUERY).await;
    statements(&h, EVENTS).await;
    let few = [statements(&h, QUERY).await, statements(&h, EVENTS).await];
    for i in 6..=50 {
        h.checkout(i).await;
    }
    let many = [statements(&h, QUERY).await, statements(&h, EVENTS).await];
    [(few[0], many[0]), (few[1], many[1])]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_reads_do_not_grow_with_the_number_of_tasks() {
    let subscriber = tracing_subscriber::registry().with(
        CountStatements.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("sqlx::query", tracing::Level::TRACE),
        ),
    );
    tracing::subscriber::set_global_default(subscriber).unwrap();
    for (backend, db) in [
        ("sqlite", common::sqlite().await),
        ("postgres", common::postgres().await),
    ] {
        for ((few, many), what) in constant_statements(db)
            .await
            .into_iter()
            .zip(["steps", "events"])
        {
            println!("{backend}, {what}: 5 tasks → {few} statements, 50 tasks → {many}");
            assert!(few > 0, "{backend}: the counter sees statements");
            assert_eq!(
                few, many,
                "{backend}, {what}: statements grew with the number of tasks (5 → {few}, 50 → {many})"
            );
        }
    }
}
