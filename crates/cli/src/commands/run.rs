//! `tasker run TEMPLATE.yaml --context JSON`

use super::EngineArgs;
use crate::logging::{self, Format};
use crate::output::outln;
use crate::progress;
use crate::settings::{self, Globals};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tasker_config::Source;
use tasker_engine::{TaskRequest, Tasker};

/// Arguments of `tasker run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The template file to run.
    pub template: PathBuf,
    /// The task context as a JSON object.
    #[arg(long, default_value = "{}", conflicts_with = "context_file")]
    pub context: String,
    /// Read the context from a JSON file instead.
    #[arg(long)]
    pub context_file: Option<PathBuf>,
    /// Give up waiting after this many seconds (the task keeps its state).
    #[arg(long, default_value_t = 3600.0)]
    pub timeout: f64,
    /// Print final results only (no live progress).
    #[arg(long, short)]
    pub quiet: bool,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Creates the task, runs the engine until it finishes, prints results.
/// Exit codes: 0 complete, 1 task failed or cancelled, 2 usage or system error.
pub async fn run(
    globals: &Globals,
    format: Option<Format>,
    args: Args,
) -> anyhow::Result<ExitCode> {
    let loaded = settings::load(globals, args.engine.flags())?;
    // Progress goes to stdout; keep stderr quiet unless logging was configured.
    let mut log = loaded.config.logging.clone();
    if loaded.source_of("logging.level") == Source::Default {
        log.level = "warn".into();
    }
    logging::init_traced(format, Some(&log), "warn", Some(&loaded.config.telemetry));
    let template =
        tasker_engine::templates::load_file(&args.template, Some(&loaded.config.environment))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let context_text = match &args.context_file {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => args.context.clone(),
    };
    let context: serde_json::Value = serde_json::from_str(&context_text).map_err(|e| {
        let source = args
            .context_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "--context".into());
        anyhow::anyhow!("{source}:{}:{}: invalid JSON: {e}", e.line(), e.column())
    })?;
    if !context.is_object() {
        bail!("--context must be a JSON object");
    }
    let Ok(timeout) = Duration::try_from_secs_f64(args.timeout) else {
        bail!("--timeout must be a non-negative number of seconds");
    };

    let tasker = settings::start(&loaded, &args.engine.templates).await?;
    tasker.register_templates(vec![template.clone()], true)?;

    let request = TaskRequest::new(template.namespace.clone(), template.name.clone())
        .version(template.version.to_string())
        .context(context);
    let task = tasker.create_task(request).await?;
    if !args.quiet {
        outln!("task {} ({}) created", task.id, template.full_name())?;
    }
    // Steps of kinds this process leaves to others would otherwise wait in
    // silence (up to --timeout): say so, and how to run a worker for them.
    for step in template
        .steps
        .iter()
        .filter(|s| loaded.config.engine.exclude_kinds.contains(&s.handler.kind))
    {
        eprintln!(
            "step {} waits for an external worker (kind {}, namespace {}): start one against this database, see docs/HANDLERS.md#external-workers-any-language",
            step.name, step.handler.kind, template.namespace
        );
    }
    let worker = tasker.start();
    let mut display = (!args.quiet).then(|| progress::spawn(tasker.clone(), task.id));
    let waited = match display.as_mut() {
        Some(d) => tokio::select! {
            w = tasker.wait_for_task(task.id, timeout) => w,
            // Nobody reads the progress any more (`| head -1`) or the disk is
            // full: stop like any Unix tool would; the task keeps its state
            // and a `tasker worker` can finish it.
            failed = d.failed() => {
                worker.shutdown().await;
                return Err(failed.into());
            }
        },
        None => tasker.wait_for_task(task.id, timeout).await,
    };
    if let Some(d) = display {
        d.finish().await?;
    }
    // The task is final (or the wait failed); what the worker still held is
    // reported by the wait's outcome, not by the drain.
    let _ = worker.shutdown().await;
    let finished = waited?;

    let steps = tasker.store().step_list(task.id).await?;
    let results: serde_json::Map<String, serde_json::Value> = steps
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.results.clone().unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    outln!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "task_id": finished.id,
            "status": finished.status,
            "results": results,
        }))?
    )?;
    for s in steps
        .iter()
        .filter(|s| s.last_error.is_some() && !s.status.is_done())
    {
        if let Some(e) = &s.last_error {
            eprintln!(
                "step {} ({}): attempt {}: {}",
                s.name, s.status, e.attempt, e.message
            );
        }
    }
    Ok(if Tasker::succeeded(&finished) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
