//! `tasker bench`: throughput and latency with no-op steps.
//!
//! Every figure comes from timestamps the engine writes (`created_at`,
//! `completed_at`, microsecond precision), not from polling, so how often
//! the harness checks for the end does not change the numbers.

use crate::connect;
use crate::output::outln;
use anyhow::bail;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tasker_core::TaskState;
use tasker_core::template::parse_template;
use tasker_engine::{EngineConfig, TaskRequest, Tasker};
use tasker_store::{Store, TaskQuery};
use uuid::Uuid;

/// Arguments of `tasker bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which measurement: all, throughput, chain or fanout.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Database for the benchmark (default: a fresh SQLite file in a temp dir).
    #[arg(long)]
    pub target: Option<String>,
    /// Single-step tasks for the throughput run.
    #[arg(long, default_value_t = 10_000)]
    pub tasks: usize,
    /// 10-step chains run one after another for the latency run.
    #[arg(long, default_value_t = 100)]
    pub chains: usize,
    /// Steps of the fan-out/fan-in task (root + middle + join).
    #[arg(long, default_value_t = 1000)]
    pub width: usize,
    /// Handlers running at once (per process).
    #[arg(long, default_value_t = 256)]
    pub concurrency: u32,
    /// Worker processes for the throughput run: this one plus N-1 `tasker worker` children (PostgreSQL).
    #[arg(long, default_value_t = 1)]
    pub processes: u32,
    /// Before measuring, run this many single-step tasks to completion, so
    /// the figures are taken with that much finished history in the tables.
    #[arg(long, default_value_t = 0)]
    pub history: usize,
    /// `engine.claim_on_completion` for this run (and its worker children):
    /// `false` measures the engine without it, in the same build.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub claim_on_completion: bool,
    /// `false` measures without the lifecycle event outbox: its triggers are
    /// dropped on the benchmark's database, which must have no task yet.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub events: bool,
}

const SINGLE: &str = "name: single\nnamespace: bench\nstep_templates:\n  - name: only\n    handler: { kind: noop }\n";

fn chain_yaml(n: usize) -> String {
    let mut y = String::from("name: chain\nnamespace: bench\nstep_templates:\n");
    for i in 0..n {
        y.push_str(&format!("  - name: s{i}\n    handler: {{ kind: noop }}\n"));
        if i > 0 {
            y.push_str(&format!("    depends_on_step: s{}\n", i - 1));
        }
    }
    y
}

fn fanout_yaml(width: usize) -> String {
    let middle = width.saturating_sub(2).max(1);
    let mut y = String::from(
        "name: fanout\nnamespace: bench\nstep_templates:\n  - name: root\n    handler: { kind: noop }\n",
    );
    for i in 0..middle {
        y.push_str(&format!(
            "  - name: m{i}\n    depends_on_step: root\n    handler: {{ kind: noop }}\n"
        ));
    }
    y.push_str("  - name: join\n    handler: { kind: noop }\n    depends_on_steps: [");
    y.push_str(
        &(0..middle)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    y.push_str("]\n");
    y
}

/// Runs the chosen measurements and prints a report.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let url = match &args.target {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let store = connect::open(&url).await?;
    if !args.events {
        super::bench_events::disable(&url).await?;
    }
    let config = EngineConfig {
        max_concurrent_steps: args.concurrency,
        claim_batch_size: 256,
        claim_on_completion: args.claim_on_completion,
        ..EngineConfig::default()
    };
    let templates = vec![
        parse_template("<bench>", SINGLE, None).map_err(|e| anyhow::anyhow!("{e}"))?,
        parse_template("<bench>", &chain_yaml(10), None).map_err(|e| anyhow::anyhow!("{e}"))?,
        parse_template("<bench>", &fanout_yaml(args.width), None)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    ];
    let mut builder = Tasker::builder(store.clone()).config(config);
    for t in templates {
        builder = builder.template(t);
    }
    let tasker = builder.build()?;
    outln!(
        "tasker bench on {} ({} cores), claim on completion {}",
        connect::redact(&url),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        if args.claim_on_completion {
            "on"
        } else {
            "off"
        }
    )?;
    outln!(
        "lifecycle events {}",
        if args.events {
            "on"
        } else {
            "off (outbox triggers dropped)"
        }
    )?;

    if args.history > 0 {
        history(&tasker, args.history).await?;
    }
    let all = args.scenario == "all";
    if !all && !["throughput", "chain", "fanout"].contains(&args.scenario.as_str()) {
        bail!("--scenario must be one of all, throughput, chain, fanout");
    }
    if all || args.scenario == "throughput" {
        throughput(&tasker, &url, &args).await?;
    }
    if all || args.scenario == "chain" {
        chain(&tasker, args.chains).await?;
    }
    if all || args.scenario == "fanout" {
        fanout(&tasker, args.width).await?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn history(tasker: &Tasker, n: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let worker = tasker.start();
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let reqs = chunk
            .iter()
            .map(|_| TaskRequest::new("bench", "single"))
            .collect();
        ids.extend(tasker.create_tasks(reqs).await?);
    }
    wait_all(tasker.store().as_ref(), &ids).await?;
    let _ = worker.shutdown().await;
    outln!(
        "history: {n} finished single-step tasks loaded in {:.1}s",
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

async fn throughput(tasker: &Tasker, url: &str, args: &Args) -> anyhow::Result<()> {
    let (n, processes, concurrency) = (args.tasks, args.processes, args.concurrency);
    // Extra worker processes start first and wait (idle, on LISTEN) for work.
    let mut children = Vec::new();
    for _ in 1..processes.max(1) {
        let exe = std::env::current_exe()?;
        children.push(
            std::process::Command::new(exe)
                .args([
                    "--database",
                    url,
                    "worker",
                    "--concurrency",
                    &concurrency.to_string(),
                ])
                .env("RUST_LOG", "warn")
                .env(
                    "TASKER__ENGINE__CLAIM_ON_COMPLETION",
                    args.claim_on_completion.to_string(),
                )
                .stdout(std::process::Stdio::null())
                .spawn()?,
        );
    }
    if !children.is_empty() {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let worker = tasker.start();
    // All tasks in one transaction: no step is claimable before its commit,
    // and every process sees the work at that moment. The clock starts when
    // the commit returns (claims in other processes may begin microseconds
    // earlier, which this ignores).
    let started = Instant::now();
    let reqs = (0..n)
        .map(|_| TaskRequest::new("bench", "single"))
        .collect();
    let ids = tasker.create_tasks(reqs).await?;
    let created = started.elapsed();
    let t0 = chrono::Utc::now();
    wait_all(tasker.store().as_ref(), &ids).await?;
    let _ = worker.shutdown().await;
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let end = last_completion(tasker.store().as_ref(), &ids).await?;
    let secs = (end - t0).num_microseconds().unwrap_or(0) as f64 / 1e6;
    outln!(
        "throughput: {n} single-step tasks, {} process(es): created in {:.3}s (one transaction); all complete {secs:.3}s after the commit = {:.0} steps/s",
        processes.max(1),
        created.as_secs_f64(),
        n as f64 / secs
    )?;
    Ok(())
}

async fn chain(tasker: &Tasker, runs: usize) -> anyhow::Result<()> {
    let worker = tasker.start();
    let mut stages = Vec::new();
    let mut creates = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let task = tasker
            .create_task(TaskRequest::new("bench", "chain"))
            .await?;
        creates.push(t.elapsed().as_secs_f64() * 1000.0);
        let done = tasker
            .wait_for_task(task.id, Duration::from_secs(60))
            .await?;
        if done.status != TaskState::Complete {
            bail!("chain task {} ended {}", task.id, done.status);
        }
        let steps = tasker.store().step_list(task.id).await?;
        let mut prev = task.created_at;
        for s in &steps {
            let Some(c) = s.completed_at else {
                bail!("step {} has no completion time", s.name)
            };
            stages.push((c - prev).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            prev = c;
        }
        if let Some(c) = done.completed_at {
            totals.push((c - task.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    let _ = worker.shutdown().await;
    outln!(
        "chain: {runs} runs of a 10-step chain: per-stage p50 {:.3} ms, p95 {:.3} ms; task end-to-end p50 {:.3} ms; task creation p50 {:.3} ms, p95 {:.3} ms",
        pct(&mut stages, 50.0),
        pct(&mut stages, 95.0),
        pct(&mut totals, 50.0),
        pct(&mut creates, 50.0),
        pct(&mut creates, 95.0)
    )?;
    Ok(())
}

async fn fanout(tasker: &Tasker, width: usize) -> anyhow::Result<()> {
    let worker = tasker.start();
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let task = tasker
            .create_task(TaskRequest::new("bench", "fanout"))
            .await?;
        let create_ms = t.elapsed().as_secs_f64() * 1000.0;
        let done = tasker
            .wait_for_task(task.id, Duration::from_secs(120))
            .await?;
        let Some(end) = done.completed_at else {
            bail!("fan-out task {} ended {}", task.id, done.status)
        };
        let ms = (end - task.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        outln!(
            "fanout: {width}-step fan-out/fan-in: created in {create_ms:.1} ms, completed {ms:.1} ms after creation"
        )?;
        times.push(ms);
    }
    let _ = worker.shutdown().await;
    outln!("fanout: median {:.1} ms end to end", pct(&mut times, 50.0))?;
    Ok(())
}

async fn wait_all(store: &dyn Store, ids: &[Uuid]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let stats = store.stats().await?;
        let open: i64 = ["pending", "in_progress"]
            .iter()
            .map(|s| stats.tasks_by_state.get(*s).copied().unwrap_or(0))
            .sum();
        if open == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} of {} tasks still open after 600 s", open, ids.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn last_completion(
    store: &dyn Store,
    ids: &[Uuid],
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let page = store
        .task_list(&TaskQuery {
            limit: 1,
            descending: true,
            sort: tasker_store::TaskSort::UpdatedAt,
            name: Some("single".into()),
            ..Default::default()
        })
        .await?;
    let _ = ids;
    page.items
        .first()
        .and_then(|t| t.completed_at)
        .ok_or_else(|| anyhow::anyhow!("no completed task found"))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}
