//! `tasker bench`: throughput and latency with no-op steps.
//!
//! Every figure comes from timestamps the engine writes (`created_at`,
//! `completed_at`, microsecond precision), not from polling, so how often
//! the harness checks for the end does not change the numbers.

use crate::connect;
use crate::output::outln;
use anyhow::bail;
use sqlx::Connection;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tasker_config::{DatabaseKind, database_kind};
use tasker_core::TaskState;
use tasker_core::template::parse_template;
use tasker_engine::{EngineConfig, TaskRequest, Tasker};
use tasker_store::{Store, TaskQuery};
use uuid::Uuid;

/// Arguments of `tasker bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which measurement: all (throughput, chain, fanout), throughput, chain,
    /// fanout, list (a page of the task list, first and deep), prune
    /// (deleting the history while chains run; needs --synthetic-history)
    /// or webhooks (delivering --webhook-events events to a local receiver);
    /// several comma-separated (`chain,throughput,list`).
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Database for the benchmark (default: a fresh SQLite file in a temp
    /// dir; `private-postgres`: a PostgreSQL cluster of its own, started
    /// for the run with the server's defaults, autovacuum on).
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
    /// Outcome transactions in flight at once (`engine.finish_concurrency`;
    /// default: the engine's).
    #[arg(long)]
    pub finish_concurrency: Option<u32>,
    /// Worker processes for the throughput run: this one plus N-1 `tasker worker` children (PostgreSQL).
    #[arg(long, default_value_t = 1)]
    pub processes: u32,
    /// Before measuring, run this many single-step tasks to completion, so
    /// the figures are taken with that much finished history in the tables.
    #[arg(long, default_value_t = 0)]
    pub history: usize,
    /// Before measuring, add this many finished single-step tasks generated
    /// in SQL (each row written pending, claimed, completed, as the engine
    /// leaves them): a million in minutes instead of hours.
    #[arg(long, default_value_t = 0)]
    pub synthetic_history: u64,
    /// With history: measure on the empty database first too, and print the
    /// ratios (with history / empty).
    #[arg(long)]
    pub baseline: bool,
    /// With history: skip `tasker maintenance` after loading it.
    #[arg(long)]
    pub skip_maintenance: bool,
    /// `engine.claim_on_completion` for this run (and its worker children):
    /// `false` measures the engine without it, in the same build.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub claim_on_completion: bool,
    /// Record Prometheus metrics during the run, as `tasker serve` does
    /// (`telemetry.metrics_enabled`), to measure what they cost.
    #[arg(long)]
    pub metrics: bool,
    /// Export a trace per task to this OTLP/HTTP traces URL during the run
    /// (`telemetry.otlp_endpoint`), to measure what traces cost.
    #[arg(long)]
    pub otlp_endpoint: Option<String>,
    /// `false` measures without the lifecycle event outbox: its event writes
    /// are removed from the benchmark's database, which must have no task yet.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub events: bool,
    /// Events delivered by `--scenario webhooks`.
    #[arg(long, default_value_t = 10_000)]
    pub webhook_events: usize,
    /// Webhook requests in flight at once for `--scenario webhooks`
    /// (`events.webhook_concurrency`).
    #[arg(long, default_value_t = 64)]
    pub webhook_concurrency: u32,
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
    let mut _cluster = None;
    let url = match args.target.as_deref() {
        Some("private-postgres") => {
            let (cluster, url) = private_postgres().await?;
            _cluster = Some(cluster);
            url
        }
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let mut store = connect::open(&url).await?;
    if args.metrics {
        tasker_engine::metrics::install();
    }
    if !args.events {
        super::bench_events::disable(&url).await?;
        // Opened again: the database setting it made applies to new
        // sessions only, and the first store's pool has some already.
        drop(store);
        store = connect::open(&url).await?;
    }
    let defaults = EngineConfig::default();
    let config = EngineConfig {
        max_concurrent_steps: args.concurrency,
        finish_concurrency: args
            .finish_concurrency
            .unwrap_or(defaults.finish_concurrency),
        claim_batch_size: 256,
        claim_on_completion: args.claim_on_completion,
        // The history is part of the set-up: no background pruner deletes
        // it while figures are taken (`--scenario prune` prunes itself).
        retention: tasker_engine::retention::RetentionConfig {
            enabled: false,
            ..Default::default()
        },
        ..defaults
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
    let on_off = |on: bool| if on { "on" } else { "off" };
    outln!(
        "tasker bench on {} ({} cores), claim on completion {}, metrics {}, traces {}",
        connect::redact(&url),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        on_off(args.claim_on_completion),
        on_off(args.metrics),
        on_off(tasker_engine::telemetry::enabled()),
    )?;
    if let Ok(h) = store.storage_health().await
        && let Some(on) = h.autovacuum
    {
        outln!("postgres autovacuum {}", if on { "on" } else { "off" })?;
    }
    if let Ok(DatabaseKind::Postgres) = database_kind(&url) {
        match postgres_session(&url).await {
            Ok(facts) => outln!("postgres session: {facts}")?,
            Err(e) => outln!("postgres session: not read ({e})")?,
        }
    }
    outln!(
        "lifecycle events {}",
        if args.events {
            "on"
        } else {
            "off (event writes removed from the database)"
        }
    )?;
    if !args.scenario.split(',').all(|s| {
        [
            "all",
            "throughput",
            "chain",
            "fanout",
            "list",
            "prune",
            "webhooks",
        ]
        .contains(&s)
    }) {
        bail!(
            "--scenario must be all, throughput, chain, fanout, list, prune or webhooks (or several, comma-separated)"
        );
    }
    if args.scenario == "prune" {
        return prune_bench(&tasker, &url, &args).await;
    }
    if args.scenario == "webhooks" {
        if args.webhook_events == 0 || !(1..=1024).contains(&args.webhook_concurrency) {
            bail!("--webhook-events must be at least 1 and --webhook-concurrency 1 to 1024");
        }
        super::bench_webhooks::run(
            store.clone(),
            args.webhook_events,
            args.webhook_concurrency,
            200,
        )
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let with_history = args.history > 0 || args.synthetic_history > 0;
    let before = if args.baseline && with_history {
        outln!("-- empty database --")?;
        Some(measure(&tasker, &url, &args).await?)
    } else {
        None
    };
    if with_history {
        if args.history > 0 {
            history(&tasker, args.history).await?;
        }
        if args.synthetic_history > 0 {
            synthetic_history(&url, args.synthetic_history, 60).await?;
        }
        if !args.skip_maintenance {
            maintenance(&tasker).await?;
        }
        checkpoint(&url).await?;
        outln!("-- with history --")?;
    }
    let after = measure(&tasker, &url, &args).await?;
    if let Some(b) = before {
        b.ratios(&after)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What one round of measurements found (None: not measured).
#[derive(Debug, Default)]
struct Figures {
    steps_per_s: Option<f64>,
    stage_p50_ms: Option<f64>,
    stage_p95_ms: Option<f64>,
    list_ms: Option<f64>,
}

impl Figures {
    fn ratios(&self, after: &Figures) -> anyhow::Result<()> {
        let r = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b / a);
        if let Some(x) = r(self.stage_p50_ms, after.stage_p50_ms) {
            outln!("ratio with history / empty: chain per-stage p50 {x:.2}x")?;
        }
        if let Some(x) = r(self.stage_p95_ms, after.stage_p95_ms) {
            outln!("ratio with history / empty: chain per-stage p95 {x:.2}x")?;
        }
        if let Some(x) = r(self.steps_per_s, after.steps_per_s) {
            outln!("ratio with history / empty: throughput {x:.2}x (above 1 is faster)")?;
        }
        if let Some(x) = r(self.list_ms, after.list_ms) {
            outln!("ratio with history / empty: task list page p50 {x:.2}x")?;
        }
        Ok(())
    }
}

async fn measure(tasker: &Tasker, url: &str, args: &Args) -> anyhow::Result<Figures> {
    let has = |s: &str| args.scenario.split(',').any(|x| x == s);
    let all = has("all");
    let mut f = Figures::default();
    if all || has("throughput") {
        f.steps_per_s = Some(throughput(tasker, url, args).await?);
    }
    if all || has("chain") {
        let (p50, p95) = chain(tasker, args.chains).await?;
        (f.stage_p50_ms, f.stage_p95_ms) = (Some(p50), Some(p95));
    }
    if all || has("fanout") {
        fanout(tasker, args.width).await?;
    }
    if has("list") {
        f.list_ms = Some(list_pages(tasker).await?);
    }
    Ok(f)
}

/// A PostgreSQL cluster of the bench's own (initdb defaults: autovacuum on).
async fn private_postgres()
-> anyhow::Result<(tasker_store_postgres::testing::PrivateCluster, String)> {
    // Starting it panics with the failing command when the server binaries
    // are missing: turn that into an error.
    let cluster = tokio::task::spawn_blocking(tasker_store_postgres::testing::PrivateCluster::start)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot start a private PostgreSQL cluster (initdb and pg_ctl under /usr/lib/postgresql/*/bin are needed)"
            )
        })?;
    let admin = cluster.url("postgres");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await?;
    sqlx::query("CREATE DATABASE bench")
        .execute(&mut conn)
        .await?;
    Ok((cluster, cluster_url(&admin)))
}

fn cluster_url(admin: &str) -> String {
    tasker_store_postgres::testing::with_database(admin, "bench")
}

/// `tasker maintenance` on the bench database, said out loud.
async fn maintenance(tasker: &Tasker) -> anyhow::Result<()> {
    let started = Instant::now();
    let runs = tasker.store().maintenance().await?;
    let what: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}", r.action, r.target))
        .collect();
    outln!(
        "maintenance after loading ({:.1}s), as `tasker maintenance` does: {}",
        started.elapsed().as_secs_f64(),
        what.join(", ")
    )?;
    Ok(())
}

/// How a session of the bench reaches PostgreSQL (TLS or not: the URL's
/// `sslmode`, `prefer` by default) and what its commits wait for (`fsync`,
/// `synchronous_commit`): its figures depend on both, and a peer compared
/// in the same run should be set up alike (docs/PERFORMANCE.md, "the
/// transport like for like").
async fn postgres_session(url: &str) -> anyhow::Result<String> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let facts: (bool, Option<String>, String, String) = sqlx::query_as(
        "SELECT COALESCE(s.ssl, false), s.version, current_setting('fsync'), \
                current_setting('synchronous_commit') \
         FROM (SELECT 1) one LEFT JOIN pg_stat_ssl s ON s.pid = pg_backend_pid()",
    )
    .fetch_one(&mut conn)
    .await?;
    let _ = conn.close().await;
    let (tls, version, fsync, synchronous_commit) = facts;
    let transport = if tls {
        format!("TLS ({})", version.unwrap_or_default())
    } else {
        "no TLS".to_string()
    };
    Ok(format!(
        "{transport}, fsync {fsync}, synchronous_commit {synchronous_commit}"
    ))
}

/// Flushes the loaded history to the database files before figures are
/// taken, said out loud: PostgreSQL's `CHECKPOINT`, SQLite's
/// `wal_checkpoint(TRUNCATE)`. A history that grew over months was
/// checkpointed as it grew; one loaded in minutes would otherwise be flushed
/// by the next checkpoint while the measured commits wait behind it, which
/// measures the load, not the history. Not being allowed to (PostgreSQL's
/// `CHECKPOINT` needs a superuser or `pg_checkpoint`) is reported, not fatal.
async fn checkpoint(url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let done = match database_kind(url) {
        Ok(DatabaseKind::Postgres) => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let r = sqlx::query("CHECKPOINT").execute(&mut conn).await;
            let _ = conn.close().await;
            r.map(|_| ()).map_err(|e| e.to_string())
        }
        Ok(DatabaseKind::Sqlite) => {
            let mut conn =
                sqlx::SqliteConnection::connect_with(&connect::sqlite_options(url)?).await?;
            let r = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
            r.map(|_| ()).map_err(|e| e.to_string())
        }
        Err(why) => bail!("database URL `{}` {why}", connect::redact(url)),
    };
    match done {
        Ok(()) => outln!(
            "checkpoint before measuring ({:.1}s)",
            started.elapsed().as_secs_f64()
        )?,
        Err(e) => outln!("checkpoint before measuring not made: {e}")?,
    }
    Ok(())
}

/// Finished single-step tasks generated in SQL, created over the last
/// `days` days.
async fn synthetic_history(url: &str, n: u64, days: i64) -> anyhow::Result<()> {
    synthetic_history_at(url, n, days, 0).await
}

/// p50 of a task list page (25 rows, newest first, estimated count): the
/// first page and a keyset page deep into the list.
async fn list_pages(tasker: &Tasker) -> anyhow::Result<f64> {
    let store = tasker.store();
    let q = TaskQuery {
        limit: 26,
        descending: true,
        count: tasker_store::CountMode::Estimated,
        ..Default::default()
    };
    let mut first = Vec::new();
    let mut deep = Vec::new();
    let mut exact = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let page = store.task_list(&q).await?;
        first.push(t.elapsed().as_secs_f64() * 1000.0);
        // Twenty pages further by cursor.
        let mut after = page
            .items
            .last()
            .map(|r| tasker_store::TaskCursor::of(tasker_store::TaskSort::CreatedAt, r));
        for _ in 0..20 {
            let t = Instant::now();
            let p = store
                .task_list(&TaskQuery {
                    after: after.clone(),
                    ..q.clone()
                })
                .await?;
            deep.push(t.elapsed().as_secs_f64() * 1000.0);
            after = p
                .items
                .last()
                .map(|r| tasker_store::TaskCursor::of(tasker_store::TaskSort::CreatedAt, r));
        }
    }
    for _ in 0..5 {
        let t = Instant::now();
        store
            .task_list(&TaskQuery {
                count: tasker_store::CountMode::Exact,
                ..q.clone()
            })
            .await?;
        exact.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let p50 = pct(&mut first, 50.0);
    outln!(
        "list: page of 25 (estimated count) p50 {p50:.2} ms, p95 {:.2} ms; keyset pages 2-21 p50 {:.2} ms; with ?count=exact p50 {:.2} ms",
        pct(&mut first, 95.0),
        pct(&mut deep, 50.0),
        pct(&mut exact, 50.0)
    )?;
    Ok(p50)
}

/// Deleting the history (all of it older than the 30-day default window)
/// while chains run: how long the prune takes, and the chains' per-stage
/// latency before and during it.
async fn prune_bench(tasker: &Tasker, url: &str, args: &Args) -> anyhow::Result<ExitCode> {
    if args.synthetic_history == 0 {
        bail!("--scenario prune needs --synthetic-history N (the tasks to prune)");
    }
    // Every task created and finished within one whole calendar month
    // that ended before the 30-day cutoff (PostgreSQL: one monthly
    // partition of the history tables, which the pass then drops).
    let cutoff = chrono::Utc::now() - chrono::Duration::days(30);
    let end = month_start(cutoff);
    let start = month_start(end - chrono::Duration::days(1));
    synthetic_history_between(url, args.synthetic_history, start, end).await?;
    if !args.skip_maintenance {
        maintenance(tasker).await?;
    }
    checkpoint(url).await?;
    let (p50, p95) = chain(tasker, args.chains).await?;
    let (before_p50, before_p95) = (p50, p95);
    outln!("prune: chains before pruning: per-stage p50 {p50:.3} ms, p95 {p95:.3} ms")?;
    let started = Instant::now();
    let pruner = tasker.clone();
    let prune = tokio::spawn(async move {
        let r = pruner
            .prune(&tasker_engine::retention::PruneOptions::default())
            .await;
        (r, started.elapsed())
    });
    let mut during = Vec::new();
    while !prune.is_finished() {
        let (p50, p95) = chain(tasker, 10).await?;
        during.push((p50, p95));
    }
    let (summary, took) = prune.await?;
    let summary = summary?;
    outln!(
        "prune: {} tasks (with their steps and transitions) deleted in {:.1}s = {:.0} tasks/s, batches of {}, a rest of {}× each batch's time after it (retention.pause_ratio)",
        summary.tasks,
        took.as_secs_f64(),
        summary.tasks as f64 / took.as_secs_f64(),
        tasker.config().retention.batch_size,
        tasker.config().retention.pause_ratio
    )?;
    for r in &summary.partitions {
        outln!("prune: {} {} ({} ms)", r.action, r.target, r.millis)?;
    }
    if !during.is_empty() {
        let mut p50s: Vec<f64> = during.iter().map(|d| d.0).collect();
        let mut p95s: Vec<f64> = during.iter().map(|d| d.1).collect();
        let (p50, p95) = (pct(&mut p50s, 50.0), pct(&mut p95s, 50.0));
        outln!(
            "prune: chains during pruning ({} rounds of 10): per-stage p50 {p50:.3} ms, p95 {p95:.3} ms (median of rounds)",
            during.len(),
        )?;
        outln!(
            "ratio during / before pruning: chain per-stage p50 {:.2}x, p95 {:.2}x",
            p50 / before_p50,
            p95 / before_p95
        )?;
    }
    let (p50, p95) = chain(tasker, args.chains).await?;
    outln!("prune: chains after pruning: per-stage p50 {p50:.3} ms, p95 {p95:.3} ms")?;
    Ok(ExitCode::SUCCESS)
}

/// The first instant of `t`'s UTC month.
fn month_start(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{Datelike, TimeZone};
    chrono::Utc
        .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t)
}

/// [`synthetic_history`] created between `from_days` and `to_days` ago.
async fn synthetic_history_at(
    url: &str,
    n: u64,
    from_days: i64,
    to_days: i64,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    synthetic_history_between(
        url,
        n,
        now - chrono::Duration::days(from_days),
        now - chrono::Duration::days(to_days),
    )
    .await
}

/// [`synthetic_history`] created (and finished 2 ms later) evenly between
/// `start` and `end`.
async fn synthetic_history_between(
    url: &str,
    n: u64,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let span_ms = (end - start).num_milliseconds() as f64;
    // Room for the last task's 2 ms before `end`.
    let spacing = ((span_ms - 10.0) / n.max(1) as f64).max(0.001);
    match tasker_config::database_kind(url) {
        Ok(tasker_config::DatabaseKind::Postgres) => {
            let s = tasker_store_postgres::PgStore::connect(url).await?;
            s.load_finished_history(n, start, spacing, "history", true)
                .await?;
            s.close().await;
        }
        Ok(tasker_config::DatabaseKind::Sqlite) => {
            let s = tasker_store_sqlite::SqliteStore::connect(url).await?;
            s.load_finished_history(n, start, spacing, "history")
                .await?;
            s.close().await;
        }
        Err(e) => bail!("{e}"),
    }
    outln!(
        "history: {n} finished single-step tasks generated in SQL, created {} to {}, in {:.1}s",
        start.format("%Y-%m-%d %H:%M"),
        end.format("%Y-%m-%d %H:%M"),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
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

async fn throughput(tasker: &Tasker, url: &str, args: &Args) -> anyhow::Result<f64> {
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
    Ok(n as f64 / secs)
}

async fn chain(tasker: &Tasker, runs: usize) -> anyhow::Result<(f64, f64)> {
    let writes_before = outcome_writes();
    let worker = tasker.start();
    let mut stages = Vec::new();
    // Every stage but a chain's first: one outcome write (which also
    // leases the next step) and the engine's hand-offs around it.
    let mut later = Vec::new();
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
        for (i, s) in steps.iter().enumerate() {
            let Some(c) = s.completed_at else {
                bail!("step {} has no completion time", s.name)
            };
            let ms = (c - prev).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            stages.push(ms);
            if i > 0 {
                later.push(ms);
            }
            prev = c;
        }
        if let Some(c) = done.completed_at {
            totals.push((c - task.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    let _ = worker.shutdown().await;
    // With `--metrics`: how much of a stage is the outcome write (the
    // store's call: statement, round trip, commit) and how much the
    // engine's own hand-offs (handler start, outcome queue, batching).
    if let (Some((sum0, n0)), Some((sum1, n1))) = (writes_before, outcome_writes())
        && n1 > n0
        && !later.is_empty()
    {
        let write_ms = (sum1 - sum0) / (n1 - n0) * 1000.0;
        let stage_ms = later.iter().sum::<f64>() / later.len() as f64;
        outln!(
            "chain: stages after a chain's first, mean {stage_ms:.3} ms; outcome writes, mean {write_ms:.3} ms over {} writes; the rest (engine hand-offs, about {:.3} ms a stage)",
            n1 - n0,
            stage_ms - write_ms
        )?;
    }
    // The peer scripts (../shared/bench/peers) time a chain from its first
    // enqueue to its last job and report percentiles of that total / 10;
    // the same measure here is the task's end-to-end time / 10, so that a
    // p95 compares like with like (a single stage's p95 is dominated by
    // each chain's first stage: creation, wake-up, claim).
    let mut per_chain: Vec<f64> = totals.iter().map(|t| t / 10.0).collect();
    // The chains run in order while the history grows: the last quarter's
    // mean stage over the first quarter's shows whether a stage's cost
    // follows the history (plans that stopped fitting the tables' size).
    if let Some(trend) = quarters_ratio(&per_chain) {
        outln!("chain: mean stage of the last quarter of chains / the first quarter: {trend:.2}x")?;
    }
    outln!(
        "chain: {runs} runs of a 10-step chain: per-stage p50 {:.3} ms, p95 {:.3} ms; per-chain mean stage p50 {:.3} ms, p95 {:.3} ms; task end-to-end p50 {:.3} ms; task creation p50 {:.3} ms, p95 {:.3} ms",
        pct(&mut stages, 50.0),
        pct(&mut stages, 95.0),
        pct(&mut per_chain, 50.0),
        pct(&mut per_chain, 95.0),
        pct(&mut totals, 50.0),
        pct(&mut creates, 50.0),
        pct(&mut creates, 95.0)
    )?;
    Ok((pct(&mut stages, 50.0), pct(&mut stages, 95.0)))
}

/// The sum (seconds) and count of `tasker_outcome_write_seconds` so far,
/// when metrics are recorded (`--metrics`); None without.
fn outcome_writes() -> Option<(f64, f64)> {
    let text = tasker_engine::metrics::handle()?.render();
    let sample = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    // Not rendered before its first sample.
    let base = tasker_engine::metrics::OUTCOME_WRITE;
    Some((
        sample(&format!("{base}_sum")).unwrap_or(0.0),
        sample(&format!("{base}_count")).unwrap_or(0.0),
    ))
}

/// Mean of the last quarter of `xs` over the mean of its first quarter
/// (in run order); `None` with fewer than 4 values.
fn quarters_ratio(xs: &[f64]) -> Option<f64> {
    let q = xs.len() / 4;
    if q == 0 {
        return None;
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let first = mean(&xs[..q]);
    (first > 0.0).then(|| mean(&xs[xs.len() - q..]) / first)
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
    // One index probe per poll (`has_open_tasks`): counting states with
    // `stats()` would scan the whole history every 20 ms and take the
    // database's CPU from the run being measured.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if !store.has_open_tasks().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("tasks of {} still open after 600 s", ids.len());
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

#[cfg(test)]
mod tests {
    use super::quarters_ratio;

    #[test]
    fn quarters_ratio_compares_the_last_quarter_with_the_first() {
        assert_eq!(quarters_ratio(&[1.0, 2.0, 3.0]), None);
        assert_eq!(quarters_ratio(&[1.0, 5.0, 5.0, 2.0]), Some(2.0));
        let flat = [2.0; 40];
        assert_eq!(quarters_ratio(&flat), Some(1.0));
        let growing: Vec<f64> = (1..=8).map(f64::from).collect();
        // (7 + 8) / (1 + 2)
        assert_eq!(quarters_ratio(&growing), Some(5.0));
    }
}
