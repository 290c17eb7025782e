//! `tasker worker`: execute steps until stopped.

use super::EngineArgs;
use crate::connect;
use crate::logging::{self, Format};
use crate::settings::{self, Globals};
use std::process::ExitCode;
use std::time::Duration;
use tasker_store::StoreEvent;

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
pub async fn run(
    globals: &Globals,
    format: Option<Format>,
    args: Args,
) -> anyhow::Result<ExitCode> {
    let loaded = settings::load(globals, args.engine.flags())?;
    logging::init_traced(
        format,
        Some(&loaded.config.logging),
        "info",
        Some(&loaded.config.telemetry),
    );
    let tasker = settings::start(&loaded, &args.engine.templates).await?;
    let services = settings::start_services(&tasker).await?;
    let worker = tasker.start();
    tracing::info!(worker_id = worker.worker_id(), database = %connect::redact(&loaded.config.database.url), "tasker worker running");
    let idle = async {
        if !args.exit_when_idle {
            return std::future::pending::<()>().await;
        }
        // Re-check whenever a task finishes; the timer covers tasks finished
        // by other processes (their events do not reach this one on SQLite).
        let mut events = tasker.store().subscribe();
        loop {
            // One index probe, not a count of every task and step.
            if let Ok(false) = tasker.store().has_open_tasks().await {
                return;
            }
            let timer = tokio::time::sleep(Duration::from_secs(1));
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(StoreEvent::TaskFinished(_)) | Err(_) => break,
                        Ok(_) => continue,
                    },
                    _ = &mut timer => break,
                }
            }
        }
    };
    tokio::select! {
        _ = crate::signal::shutdown_signal() => tracing::info!("shutdown requested"),
        _ = idle => tracing::info!("no open tasks left"),
    }
    // One deadline for everything: the services are told to stop at once,
    // the worker drains (bounded by the deadline even while the database is
    // down), then whatever services are still blocked are aborted at the same
    // deadline. The last line says the process is done.
    let deadline = tokio::time::Instant::now() + tasker.config().shutdown_timeout;
    services.stop();
    let code = exit_code(worker.shutdown().await);
    services.shutdown_by(deadline).await;
    tracing::info!("tasker worker exiting");
    Ok(code)
}

/// 0 after a clean drain; 2 when the shutdown deadline
/// (`engine.shutdown_timeout_seconds`) abandoned steps to lease expiry.
pub(crate) fn exit_code(shutdown: tasker_engine::Shutdown) -> ExitCode {
    if shutdown.is_clean() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "tasker: shutdown timeout: {} step(s) left to lease expiry; they re-run in another worker",
            shutdown.abandoned
        );
        ExitCode::from(2)
    }
}
