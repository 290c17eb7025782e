//! `tasker worker`: execute steps until stopped.

use super::EngineArgs;
use crate::connect;
use std::process::ExitCode;
use std::time::Duration;
use tasker_engine::Tasker;

/// Arguments of `tasker worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exit once no task is pending or in progress (batch / crash-recovery runs).
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs the engine until SIGINT/SIGTERM (or idle, with `--exit-when-idle`).
pub async fn run(database: &str, args: Args) -> anyhow::Result<ExitCode> {
    let store = connect::open(database).await?;
    let mut builder = Tasker::builder(store).config(args.engine.config()?);
    for p in &args.engine.templates {
        builder = builder.template_path(p);
    }
    let tasker = builder.build()?;
    let worker = tasker.start();
    tracing::info!(worker_id = worker.worker_id(), database = %connect::redact(database), "tasker worker running");
    let idle = async {
        if !args.exit_when_idle {
            return std::future::pending::<()>().await;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(stats) = tasker.store().stats().await {
                let open = ["pending", "in_progress"]
                    .iter()
                    .map(|s| stats.tasks_by_state.get(*s).copied().unwrap_or(0))
                    .sum::<i64>();
                if open == 0 {
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutdown requested"),
        _ = idle => tracing::info!("no open tasks left"),
    }
    worker.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
