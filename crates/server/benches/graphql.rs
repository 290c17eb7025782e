//! GraphQL figures for docs/PERFORMANCE.md ("GraphQL API"). Not a timed
//! test: it prints percentiles and checks nothing.
//!
//! ```text
//! cargo bench -p tasker-server --bench graphql
//! ```
//!
//! 1. `task(id)` with 10 steps against REST `GET /tasker/tasks/{id}` in the
//!    same run (interleaved, alternating which goes first, in-process
//!    `oneshot` through the whole router), on SQLite and PostgreSQL: seven
//!    rounds of 300 pairs, a p50 ratio per round and their median.
//! 2. `tasks(first: 100) { steps { name status } }` (one batched step read).
//! 3. Subscription latency: from a step change's commit (the service call
//!    returning) to the `stepUpdated` message, in-process on both stores and
//!    from another store instance on PostgreSQL (`announce_changes`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use async_graphql::futures_util::StreamExt;
use axum::body::Body;
use axum::http::Request;
use common::{Db, Harness};
use http_body_util::BodyExt;
use serde_json::json;
use std::time::Instant;
use tasker_core::template::parse_template;
use tasker_engine::TaskRequest;
use tower::ServiceExt;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn report(label: &str, ms: &mut [f64]) -> f64 {
    let p50 = pct(ms, 50.0);
    println!(
        "{label}: n={} p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms",
        ms.len(),
        p50,
        pct(ms, 95.0),
        pct(ms, 99.0)
    );
    p50
}

/// `bench.ten` 1.0.0: ten steps in a chain.
fn ten_steps() -> tasker_core::TaskTemplate {
    let mut y = String::from("name: ten\nnamespace: bench\nversion: 1.0.0\nstep_templates:\n");
    for i in 0..10 {
        y.push_str(&format!("  - name: s{i}\n    handler: {{ kind: noop }}\n"));
        if i > 0 {
            y.push_str(&format!("    depends_on_step: s{}\n", i - 1));
        }
    }
    parse_template("<ten>", &y, None).unwrap()
}

async fn send(h: &Harness, req: Request<Body>) -> f64 {
    send_app(&h.app, req).await
}

/// Milliseconds for one request through the whole router, body read.
async fn send_app(app: &axum::Router, req: Request<Body>) -> f64 {
    let t = Instant::now();
    let res = app.clone().oneshot(req).await.unwrap();
    assert!(res.status().is_success());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(!body.windows(10).any(|w| w == b"\"errors\":["), "{body:?}");
    t.elapsed().as_secs_f64() * 1000.0
}

/// Rounds of the REST / GraphQL comparison, and pairs per round.
const ROUNDS: usize = 7;
const PAIRS: usize = 300;

/// One pair, GraphQL first: (GraphQL ms, REST ms).
async fn swapped(h: &Harness, id: uuid::Uuid, body: &str) -> (f64, f64) {
    let g = Request::post("/tasker/graphql")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = Request::get(format!("/tasker/tasks/{id}"))
        .body(Body::empty())
        .unwrap();
    (send_app(&h.app, g).await, send_app(&h.app, r).await)
}

const TASK: &str = "query($id: UUID!) { task(id: $id) { id namespace name version status context \
    initiator reason tags correlationId createdAt updatedAt execution annotations { type content } \
    steps { id name status attempts retryLimit results readyAt parents { name } children { name } } } }";

async fn task_vs_rest(backend: &str, db: Db) {
    let h = Harness::new(db).await;
    h.tasker
        .register_templates(vec![ten_steps()], false)
        .unwrap();
    let id = h
        .tasker
        .create_task(TaskRequest::new("bench", "ten"))
        .await
        .unwrap()
        .id;
    let body = json!({"query": TASK, "variables": {"id": id}}).to_string();
    let pair = |h: &Harness| {
        let r = Request::get(format!("/tasker/tasks/{id}"))
            .body(Body::empty())
            .unwrap();
        let g = Request::post("/tasker/graphql")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let app = h.app.clone();
        async move { (send_app(&app, r).await, send_app(&app, g).await) }
    };
    // Warm the caches and the pool.
    for _ in 0..200 {
        pair(&h).await;
    }
    // Rounds of interleaved pairs (the order within a pair alternates, so
    // neither always runs right after the other): a ratio per round, and
    // their median, so one noisy stretch of a loaded machine moves one
    // round, not the figure.
    let (mut rest, mut gql, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (mut r_ms, mut g_ms) = (Vec::new(), Vec::new());
        for i in 0..PAIRS {
            let (a, b) = if i % 2 == 0 {
                pair(&h).await
            } else {
                let (b, a) = swapped(&h, id, &body).await;
                (a, b)
            };
            r_ms.push(a);
            g_ms.push(b);
        }
        let ratio = pct(&mut g_ms, 50.0) / pct(&mut r_ms, 50.0);
        println!(
            "{backend}: round {round}: REST p50 {:.3} ms, GraphQL p50 {:.3} ms, ratio {ratio:.2}",
            pct(&mut r_ms, 50.0),
            pct(&mut g_ms, 50.0)
        );
        ratios.push(ratio);
        rest.extend(r_ms);
        gql.extend(g_ms);
    }
    let r = report(
        &format!("{backend}: REST GET /tasker/tasks/{{id}} (10 steps)"),
        &mut rest,
    );
    let g = report(
        &format!("{backend}: GraphQL task(id) with 10 steps"),
        &mut gql,
    );
    println!(
        "{backend}: GraphQL / REST p50 = {:.2} (all samples); median of {ROUNDS} round ratios = {:.2}",
        g / r,
        pct(&mut ratios, 50.0)
    );

    for i in 0..99 {
        h.tasker
            .create_task(TaskRequest::new("bench", "ten").correlation_id(format!("c{i}")))
            .await
            .unwrap();
    }
    let list =
        json!({"query": "{ tasks(first: 100) { edges { node { id steps { name status } } } } }"})
            .to_string();
    let mut ms = Vec::new();
    for i in 0..220 {
        let g = Request::post("/tasker/graphql")
            .header("content-type", "application/json")
            .body(Body::from(list.clone()))
            .unwrap();
        let t = send(&h, g).await;
        if i >= 20 {
            ms.push(t);
        }
    }
    report(
        &format!(
            "{backend}: GraphQL tasks(first: 100) {{ steps {{ name status }} }} (1,000 steps)"
        ),
        &mut ms,
    );
}

/// Commit → `stepUpdated` message; `writer` makes the change (the same
/// harness, or another store instance).
async fn subscription_latency(label: &str, reader: &Harness, writer: &Harness) {
    let mut ms = Vec::new();
    for _ in 0..60 {
        let id = writer.checkout(1).await;
        let req = async_graphql::Request::new(
            "subscription($id: UUID!) { stepUpdated(taskId: $id) { name status } }",
        )
        .variables(async_graphql::Variables::from_json(json!({"id": id})))
        .data(reader.state.clone())
        .data(tasker_auth::Identity::anonymous());
        let mut s = reader.state.graphql().execute_stream(req);
        for _ in 0..4 {
            s.next().await.unwrap();
        }
        let validate = writer.step_id(id, "validate").await;
        writer
            .tasker
            .resolve_step(validate, json!({}), None)
            .await
            .unwrap();
        let t = Instant::now();
        let msg = s.next().await.unwrap();
        assert!(msg.errors.is_empty());
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report(label, &mut ms);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "tasker-server graphql bench ({} cores)",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
        task_vs_rest("sqlite", common::sqlite().await).await;
        task_vs_rest("postgres", common::postgres().await).await;

        let h = Harness::new(common::sqlite().await).await;
        subscription_latency("sqlite: subscription, same process", &h, &h).await;
        drop(h);

        use tasker_store_postgres::PgOptions;
        let db = tasker_store_postgres::testing::TestDb::create().await;
        let options = || PgOptions {
            announce_changes: true,
            ..PgOptions::default()
        };
        let open = |store: tasker_store_postgres::PgStore| Db {
            store: std::sync::Arc::new(store),
            guard: common::Guard::Sqlite(tempfile::tempdir().unwrap()),
        };
        let here = Harness::new(open(db.store_with(options()).await)).await;
        let there = Harness::new(open(db.store_with(options()).await)).await;
        subscription_latency("postgres: subscription, same process", &here, &here).await;
        subscription_latency(
            "postgres: subscription, change made by another store instance (LISTEN/NOTIFY)",
            &here,
            &there,
        )
        .await;
    });
}
