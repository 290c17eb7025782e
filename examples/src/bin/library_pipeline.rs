//! The library API end to end: a data pipeline whose steps are Rust handlers,
//! run on an embedded SQLite file.
//!
//! ```text
//! cargo run -p tasker-examples --bin library_pipeline
//! ```
//!
//! extract_a ─┐
//!            ├─► transform ─► load
//! extract_b ─┘
//!
//! `extract_b` fails on its first attempt (a retryable error) to show retries.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tasker_engine::{StepContext, StepError, StepHandler, TaskRequest, Tasker};

const TEMPLATE: &str = "
name: pipeline
namespace: analytics
version: 2.0.0
context_schema:
  type: object
  required: [numbers]
  properties:
    numbers: { type: array, items: { type: integer } }
step_templates:
  - name: extract_a
    handler: { kind: extract, config: { half: first } }
  - name: extract_b
    handler: { kind: extract, config: { half: second } }
  - name: transform
    depends_on_steps: [extract_a, extract_b]
    handler: { kind: square_sum }
  - name: load
    depends_on_step: transform
    handler: { kind: noop }
";

/// Takes one half of `context.numbers`.
struct Extract;

#[async_trait]
impl StepHandler for Extract {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        let numbers: Vec<i64> = step.context["numbers"]
            .as_array()
            .ok_or_else(|| StepError::permanent("context.numbers must be an array"))?
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        let mid = numbers.len() / 2;
        let part = if step.config["half"] == "first" {
            &numbers[..mid]
        } else {
            &numbers[mid..]
        };
        if step.config["half"] == "second" && step.attempt == 1 {
            // A flaky upstream: ask to be retried in 50 ms.
            return Err(
                StepError::retryable("upstream busy").with_retry_after(Duration::from_millis(50))
            );
        }
        Ok(json!({ "numbers": part }))
    }
}

/// Sums the squares of everything the parents extracted.
struct SquareSum;

#[async_trait]
impl StepHandler for SquareSum {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        let sum: i64 = step
            .parent_results
            .values()
            .filter_map(|r| r["numbers"].as_array())
            .flatten()
            .filter_map(Value::as_i64)
            .map(|n| n * n)
            .sum();
        Ok(json!({ "sum_of_squares": sum }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let dir = std::env::temp_dir().join(format!("tasker-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("pipeline.db").display());
    let store = tasker_store_sqlite::SqliteStore::connect(&url).await?;

    let template = tasker_engine::templates::parse_str("pipeline.yaml", TEMPLATE)?;
    let tasker = Tasker::builder(Arc::new(store))
        .handler("extract", Extract)
        .handler("square_sum", SquareSum)
        .template(template)
        .build()?;

    let worker = tasker.start();
    let task = tasker
        .create_task(
            TaskRequest::new("analytics", "pipeline")
                .context(json!({ "numbers": [1, 2, 3, 4, 5, 6] })),
        )
        .await?;
    let done = tasker
        .wait_for_task(task.id, Duration::from_secs(30))
        .await?;
    worker.shutdown().await;

    println!("task {} finished: {}", done.id, done.status);
    for step in tasker.store().step_list(done.id).await? {
        println!(
            "  {:<10} {:<10} attempts={} results={}",
            step.name,
            step.status,
            step.attempts,
            step.results.unwrap_or(Value::Null)
        );
    }
    std::fs::remove_dir_all(&dir)?;
    anyhow::ensure!(Tasker::succeeded(&done), "pipeline did not complete");
    Ok(())
}
