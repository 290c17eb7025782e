//! Dashboard figures for docs/PERFORMANCE.md ("Dashboard"). Not a timed
//! test: it prints percentiles and checks nothing but the status.
//!
//! ```text
//! cargo bench -p tasker-ui --bench ui
//! ```
//!
//! Server time of each page (in-process requests through the whole router
//! and middleware, `oneshot`, body read whole) for 1,000-step tasks of two
//! shapes (a fan-out of 998 between a root and a join, and a chain of
//! 1,000), half their steps resolved so the picture has several states:
//! the task page (DAG layout and SVG, the first page of the step table,
//! transitions), the same page filtered to one state and at its last step
//! page, a step page (a middle step, and the join with 998 parents), the
//! template's page on the handlers page, and the task list; on SQLite, and
//! on PostgreSQL when `TASKER_TEST_PG_URL` (or the default maintenance URL)
//! answers. The baseline of each task, measured in the same run, is the
//! REST API's `GET /tasker/tasks/{id}/steps` (the same step read, as JSON):
//! each page is reported as a ratio to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use axum::http::Method;
use common::*;
use std::time::Instant;
use tasker_engine::TaskRequest;

const RUNS: usize = 60;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn report(label: &str, mut ms: Vec<f64>, bytes: usize) {
    let n = ms.len();
    println!(
        "{label}: n={n} p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} KiB)",
        pct(&mut ms, 50.0),
        pct(&mut ms, 95.0),
        pct(&mut ms, 100.0),
        bytes / 1024
    );
}

fn chain(n: usize) -> String {
    let mut y = String::from("name: chain\nnamespace: bench\nversion: 1.0.0\nstep_templates:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - name: s{i}\n    handler: {{ kind: external }}\n"
        ));
        if i > 0 {
            y.push_str(&format!("    depends_on_step: s{}\n", i - 1));
        }
    }
    y
}

async fn time(app: &axum::Router, label: &str, path: &str) -> f64 {
    // The first request fills the analysis cache; report it apart.
    let t = Instant::now();
    let a = send(app, Method::GET, path, &[], "").await;
    assert!(a.status.is_success(), "{path}: {}", a.status);
    println!(
        "{label} (first, analysis computed): {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let mut ms = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let a = send(app, Method::GET, path, &[], "").await;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = a.body.len();
    }
    let p50 = pct(&mut ms.clone(), 50.0);
    report(label, ms, bytes);
    p50
}

fn ratio(label: &str, page: f64, baseline: f64) {
    println!("  {label}: {:.2}x the REST step list", page / baseline);
}

async fn run(backend: &str, db: Db) {
    let tasker = tasker(&db, &[wide(1000), chain(1000)]);
    let app = app(state(tasker.clone(), None));
    for (name, resolve) in [("wide", 500usize), ("chain", 500)] {
        let task = tasker
            .submit_task(TaskRequest::new("bench", name))
            .await
            .unwrap();
        let steps = tasker.task_steps(task.id).await.unwrap();
        // Resolve in dependency order (a chain's step needs its parent done).
        for s in steps.iter().take(resolve) {
            tasker
                .resolve_step(s.id, serde_json::json!({"n": s.position}), None)
                .await
                .unwrap();
        }
        let rest = time(
            &app,
            &format!("{backend} REST GET /tasker/tasks/{{id}}/steps (baseline), {name} 1000"),
            &format!("/tasker/tasks/{}/steps", task.id),
        )
        .await;
        let pages = [
            ("task page", format!("/tasker/ui/tasks/{}", task.id)),
            (
                "task page, last step page",
                format!("/tasker/ui/tasks/{}?step_page=20", task.id),
            ),
            (
                "task page, pending steps",
                format!("/tasker/ui/tasks/{}?step_state=pending", task.id),
            ),
            (
                "step page",
                format!("/tasker/ui/tasks/{}/steps/{}", task.id, steps[resolve].id),
            ),
            (
                "step page, last step",
                format!("/tasker/ui/tasks/{}/steps/{}", task.id, steps[999].id),
            ),
            ("handlers page", format!("/tasker/ui/handlers/bench/{name}")),
        ];
        for (what, path) in pages {
            let label = format!("{backend} {what}, {name} 1000");
            let p50 = time(&app, &label, &path).await;
            ratio(&label, p50, rest);
        }
    }
    time(&app, &format!("{backend} task list"), "/tasker/ui/").await;
    time(
        &app,
        &format!("{backend} task list, by correlation id"),
        "/tasker/ui/?correlation_id=nope-1",
    )
    .await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("sqlite", sqlite().await).await;
        let pg = tokio::time::timeout(std::time::Duration::from_secs(5), postgres()).await;
        match pg {
            Ok(db) => run("postgres", db).await,
            Err(_) => println!("postgres: not reachable, skipped"),
        }
    });
}
