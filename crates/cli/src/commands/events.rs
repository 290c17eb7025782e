//! `tasker events tail`: prints lifecycle events as they are recorded
//! (docs/EVENTS.md), straight from the store's outbox.
//!
//! It reads the database directly, like `tasker tasks`. Events written by
//! this process would wake it, but it writes none, and other processes'
//! commits are not signalled across processes on SQLite (nor step changes
//! on PostgreSQL), so it reads again every `--interval` when nothing came.

use crate::connect;
use crate::output::outln;
use anyhow::bail;
use std::process::ExitCode;
use std::time::Duration;
use tasker_config::TaskerConfig;
use tasker_core::mask::Masker;
use tasker_store::EventQuery;
use uuid::Uuid;

/// Subcommands of `tasker events`.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Print events as they are recorded, until Ctrl-C (or `--count`).
    Tail(TailArgs),
}

/// `tasker events tail`
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Only these types or patterns (repeatable or comma-separated):
    /// `task.*`, `step.failed`, `custom.*`.
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only this task's events.
    #[arg(long)]
    pub task: Option<Uuid>,
    /// Only events of tasks in this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Start after this event id (default: only events recorded from now on).
    #[arg(long, conflicts_with = "from_start")]
    pub after: Option<i64>,
    /// Start with the oldest event kept.
    #[arg(long)]
    pub from_start: bool,
    /// Stop after printing this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when no more events are there instead of waiting for new ones.
    #[arg(long)]
    pub no_follow: bool,
    /// Seconds between reads when nothing came (0.05–60).
    #[arg(long, default_value_t = 0.5)]
    pub interval: f64,
    /// Print each event as one line of JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tasker events ...`.
pub async fn run(config: &TaskerConfig, cmd: EventsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EventsCommand::Tail(args) => tail(config, args).await,
    }
}

fn check_types(types: &[String]) -> anyhow::Result<()> {
    for t in types {
        let name = t.strip_suffix(".*").unwrap_or(t);
        let ok = t == "*"
            || (!name.is_empty()
                && name.split('.').all(|seg| {
                    !seg.is_empty()
                        && seg
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                }));
        if !ok {
            bail!(
                "--type `{t}` is not an event type or pattern (use e.g. task.completed, step.* or *)"
            );
        }
    }
    Ok(())
}

async fn tail(config: &TaskerConfig, a: TailArgs) -> anyhow::Result<ExitCode> {
    check_types(&a.types)?;
    if !(a.interval.is_finite() && (0.05..=60.0).contains(&a.interval)) {
        bail!("--interval must be between 0.05 and 60 seconds");
    }
    if a.after.is_some_and(|n| n < 0) {
        bail!("--after must be an event id (0 or more)");
    }
    let store = connect::open_with(config).await?;
    let masker = Masker::new(&config.logging.sensitive_keys);
    let after = match (a.after, a.from_start) {
        (Some(n), _) => n,
        (None, true) => 0,
        (None, false) => store.events_last_id().await?,
    };
    let mut query = EventQuery {
        after,
        limit: 500,
        types: a.types.clone(),
        task_id: a.task,
        namespace: a.namespace.clone(),
    };
    let mut printed = 0u64;
    let interval = Duration::from_secs_f64(a.interval);
    let stop = crate::signal::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let rows = store.events_list(&query).await?;
        let full = rows.len() == query.limit as usize;
        for mut e in rows {
            query.after = e.id;
            e.payload = masker.mask(&e.payload);
            if a.json {
                outln!("{}", serde_json::to_string(&e)?)?;
            } else {
                let step = e
                    .payload
                    .get("step_name")
                    .and_then(|v| v.as_str())
                    .map(|s| format!(" step={s}"))
                    .unwrap_or_default();
                outln!(
                    "{:>8}  {}  {:<22}  task={}{}  {}",
                    e.id,
                    tasker_core::time::format(&e.created_at),
                    e.event_type,
                    e.task_id,
                    step,
                    e.payload
                )?;
            }
            printed += 1;
            if a.count.is_some_and(|c| printed >= c) {
                return Ok(ExitCode::SUCCESS);
            }
        }
        if full {
            continue; // more are there already
        }
        if a.no_follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
