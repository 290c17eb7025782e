//! `tasker schedules list|show|pause|resume|trigger|delete`
//! (docs/FLOW_CONTROL.md, "Schedules"). Through the service, like the REST
//! routes: `trigger` needs the schedule's template (`--templates` or
//! `engine.template_directories`).

use crate::logging::{self, Format};
use crate::output::outln;
use crate::settings::{self, Globals};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use tasker_engine::schedules::ScheduleInfo;

/// `tasker schedules ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: SchedulesCommand,
    /// Template files or directories to register (for `trigger`), besides
    /// `engine.template_directories`; their `schedules:` are written to the store first.
    #[arg(long = "templates", value_delimiter = ',', global = true)]
    pub templates: Vec<PathBuf>,
}

/// Subcommands of `tasker schedules`.
#[derive(Debug, clap::Subcommand)]
pub enum SchedulesCommand {
    /// List schedules with their next fire times.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one schedule and its newest ticks.
    Show {
        /// Schedule name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a schedule: no tick fires until resumed.
    Pause {
        /// Schedule name.
        name: String,
    },
    /// Resume a schedule from now (ticks missed while paused are skipped).
    Resume {
        /// Schedule name.
        name: String,
    },
    /// Fire a schedule now, by hand (also while paused).
    Trigger {
        /// Schedule name.
        name: String,
    },
    /// Delete a schedule (its tasks stay).
    Delete {
        /// Schedule name.
        name: String,
    },
}

fn timing(i: &ScheduleInfo) -> String {
    let s = &i.row.spec;
    match (&s.cron, s.every_seconds) {
        (Some(c), _) => format!("cron {c} {}", s.timezone.as_deref().unwrap_or("UTC")),
        (None, Some(n)) => format!("every {n}s"),
        (None, None) => "-".into(),
    }
}

fn next(i: &ScheduleInfo) -> String {
    match (i.row.paused_at, i.next_fire_times.first()) {
        (Some(_), _) => "paused".into(),
        (None, Some(t)) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        (None, None) => "never".into(),
    }
}

/// Runs a `tasker schedules` subcommand.
pub async fn run(
    globals: &Globals,
    format: Option<Format>,
    args: Args,
) -> anyhow::Result<ExitCode> {
    logging::init(format, None, "warn");
    let loaded = settings::load(globals, Vec::new())?;
    let mut loaded = loaded;
    // A one-shot command: no worker loops, so the store is only read and
    // written by what the subcommand asks.
    loaded.config.scheduler.enabled = false;
    let tasker = settings::start(&loaded, &args.templates).await?;
    if !args.templates.is_empty() {
        tasker.sync_template_schedules().await?;
    }
    match args.command {
        SchedulesCommand::List { json } => {
            let all = tasker.list_schedules().await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "schedules": all }))?
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "{:<24}  {:<36}  {:<28}  {:<8}  NEXT",
                "NAME",
                "TEMPLATE",
                "WHEN",
                "CATCH_UP"
            )?;
            for i in &all {
                let s = &i.row.spec;
                outln!(
                    "{:<24}  {:<36}  {:<28}  {:<8}  {}",
                    s.name,
                    format!(
                        "{}.{}{}",
                        s.namespace,
                        s.template,
                        s.version
                            .as_deref()
                            .map(|v| format!("@{v}"))
                            .unwrap_or_default()
                    ),
                    timing(i),
                    s.catch_up.as_str(),
                    next(i)
                )?;
            }
            outln!("{} schedule(s)", all.len())?;
        }
        SchedulesCommand::Show { name, json } => {
            let info = tasker.get_schedule(&name).await?;
            let ticks = tasker.schedule_ticks(&name, 10).await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "schedule": info, "ticks": ticks })
                    )?
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!("schedule {} ({})", info.row.spec.name, timing(&info))?;
            for t in &info.next_fire_times {
                outln!("  next  {}", t.format("%Y-%m-%d %H:%M:%S"))?;
            }
            for t in &ticks {
                outln!(
                    "  fired {}  task {}{}",
                    t.scheduled_for.format("%Y-%m-%d %H:%M:%S"),
                    t.task_id,
                    if t.manual { " (manual)" } else { "" }
                )?;
            }
        }
        SchedulesCommand::Pause { name } => {
            tasker
                .pause_schedule(&name)
                .await
                .with_context(|| format!("pause schedule {name}"))?;
            outln!("schedule {name} paused")?;
        }
        SchedulesCommand::Resume { name } => {
            let i = tasker
                .resume_schedule(&name)
                .await
                .with_context(|| format!("resume schedule {name}"))?;
            outln!("schedule {name} resumed (next {})", next(&i))?;
        }
        SchedulesCommand::Trigger { name } => {
            let t = tasker
                .trigger_schedule(&name)
                .await
                .with_context(|| format!("trigger schedule {name}"))?;
            outln!("schedule {name} triggered: task {}", t.id)?;
        }
        SchedulesCommand::Delete { name } => {
            tasker
                .delete_schedule(&name)
                .await
                .with_context(|| format!("delete schedule {name}"))?;
            outln!("schedule {name} deleted")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
