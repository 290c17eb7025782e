//! `tasker serve`: the REST API (`tasker-server`), executing steps in the
//! same process unless `--no-workers`.
//!
//! Shutdown on SIGINT / SIGTERM is in two stages: the listener stops
//! accepting and in-flight requests finish, then the engine stops claiming
//! and lets running handlers finish (up to `engine.shutdown_timeout_seconds`).

use super::EngineArgs;
use crate::logging::{self, Format};
use crate::settings::{self, Globals};
use crate::{connect, signal};
use anyhow::Context;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tasker_config::TaskerConfig;
use tasker_engine::WorkerHandle;
use tasker_server::{AppState, EngineState, ServerConfig};

/// Arguments of `tasker serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on, e.g. `127.0.0.1:8080` or `0.0.0.0:80` (`server.bind`).
    #[arg(long)]
    pub bind: Option<String>,
    /// Serve the API only; steps are executed by `tasker worker` processes (`engine.run_workers = false`).
    #[arg(long)]
    pub no_workers: bool,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Serves until SIGINT / SIGTERM.
pub async fn run(
    globals: &Globals,
    format: Option<Format>,
    args: Args,
) -> anyhow::Result<ExitCode> {
    let mut flags = args.engine.flags();
    if let Some(bind) = &args.bind {
        flags.push(("server.bind", Value::from(bind.clone()), "--bind"));
    }
    if args.no_workers {
        flags.push(("engine.run_workers", Value::from(false), "--no-workers"));
    }
    let loaded = settings::load(globals, flags)?;
    logging::init(format, Some(&loaded.config.logging), "info");
    let c = &loaded.config;
    let server = server_config(c).await?;
    let tasker = settings::start(&loaded, &args.engine.templates).await?;
    let listener = tokio::net::TcpListener::bind(server.bind)
        .await
        .with_context(|| format!("cannot listen on {}", server.bind))?;
    let local = listener.local_addr()?;

    // The handle lives behind a lock so the readiness probe can look at it
    // while this function keeps the right to shut it down.
    let worker: Arc<Mutex<Option<WorkerHandle>>> =
        Arc::new(Mutex::new(c.engine.run_workers.then(|| tasker.start())));
    let mut state = AppState::new(tasker.clone(), server);
    if c.engine.run_workers {
        let probe = worker.clone();
        state = state.with_engine_probe(move || match lock(&probe).as_ref() {
            Some(w) if w.is_running() => EngineState::Running,
            _ => EngineState::Stopped,
        });
    }
    tracing::info!(
        address = %local,
        database = %connect::redact(&c.database.url),
        workers = c.engine.run_workers,
        "tasker serve listening: http://{local}/tasker (API docs at /tasker/docs/)"
    );
    tasker_server::serve(listener, state, signal::shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("HTTP server stopped; stopping the engine");
    let handle = lock(&worker).take();
    match handle {
        Some(w) => Ok(super::worker::exit_code(w.shutdown().await)),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The server settings of a configuration, every problem named by its key
/// (also run by `tasker config check`).
pub(crate) async fn server_config(c: &TaskerConfig) -> Result<ServerConfig, settings::Problems> {
    let mut problems = Vec::new();
    let secs = |key: &str, v: f64, problems: &mut Vec<String>| match Duration::try_from_secs_f64(v)
    {
        Ok(d) if !d.is_zero() => d,
        _ => {
            problems.push(format!(
                "{key}: must be a positive number of seconds (got {v})"
            ));
            Duration::from_secs(1)
        }
    };
    let bind = match tokio::net::lookup_host(c.server.bind.as_str()).await {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => a,
            None => {
                problems.push(format!(
                    "server.bind: `{}` resolves to no address",
                    c.server.bind
                ));
                ServerConfig::default().bind
            }
        },
        Err(e) => {
            problems.push(format!(
                "server.bind: `{}` is not a HOST:PORT address: {e}",
                c.server.bind
            ));
            ServerConfig::default().bind
        }
    };
    let config = ServerConfig {
        bind,
        body_limit_bytes: usize::try_from(c.server.body_limit_bytes).unwrap_or(usize::MAX),
        request_timeout: secs(
            "server.request_timeout_seconds",
            c.server.request_timeout_seconds,
            &mut problems,
        ),
        max_page_size: c.server.max_page_size,
        default_page_size: c.server.default_page_size,
        ready_timeout: secs(
            "health.ready_timeout_seconds",
            c.health.ready_timeout_seconds,
            &mut problems,
        ),
        analysis_cache_capacity: c.cache.analysis_capacity,
        analysis_cache_ttl: secs(
            "cache.analysis_ttl_seconds",
            c.cache.analysis_ttl_seconds,
            &mut problems,
        ),
        dependency_graph: c.dependency_graph.clone(),
        status_window: secs(
            "health.status_window_seconds",
            c.health.status_window_seconds,
            &mut problems,
        ),
        request_log: c.server.request_log.parse().unwrap_or_else(|e| {
            problems.push(format!("server.request_log: {e}"));
            tasker_server::RequestLog::Info
        }),
    };
    problems.extend(config.problems());
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(settings::Problems(problems))
    }
}
