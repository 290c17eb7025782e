//! `tasker maintenance`: the database upkeep the server does not do by
//! itself (PostgreSQL without autovacuum: `VACUUM (ANALYZE)` on each of
//! Tasker's tables; SQLite: a WAL checkpoint), after making sure the
//! monthly history partitions exist `retention.partition_months_ahead`
//! months ahead (PostgreSQL), then the upkeep warnings that remain. Safe while workers run; schedule it (cron, a Kubernetes
//! CronJob) where autovacuum is off.

use crate::connect;
use crate::output::outln;
use std::process::ExitCode;
use tasker_config::TaskerConfig;

/// `tasker maintenance` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the upkeep and reports it.
pub async fn run(c: &TaskerConfig, args: Args) -> anyhow::Result<ExitCode> {
    let store = connect::open_with(c).await?;
    let mut runs = store
        .history_partitions_ensure(chrono::Utc::now(), c.retention.partition_months_ahead)
        .await?;
    runs.extend(store.maintenance().await?);
    let health = store.storage_health().await?;
    if args.json {
        outln!("{}", serde_json::json!({ "runs": runs, "health": health }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &runs {
        outln!("{} {} ({} ms)", r.action, r.target, r.millis)?;
    }
    for w in &health.warnings {
        outln!("warning: {w}")?;
    }
    Ok(ExitCode::SUCCESS)
}
