//! `tasker tasks list` / `tasker tasks show ID` / `tasker tasks pause|resume ID` /
//! `tasker tasks restart ID --step NAME`

use crate::connect;
use crate::output::outln;
use anyhow::Context;
use std::process::ExitCode;
use tasker_config::TaskerConfig;
use tasker_core::{ExecutionContext, TaskState};
use tasker_store::TaskQuery;

/// Subcommands of `tasker tasks`.
#[derive(Debug, clap::Subcommand)]
pub enum TasksCommand {
    /// List tasks, newest first.
    List {
        /// Only this state (pending, in_progress, complete, error, cancelled, resolved_manually).
        #[arg(long)]
        status: Option<TaskState>,
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only this template name.
        #[arg(long)]
        name: Option<String>,
        /// Page size (1–1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Rows to skip.
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one task with its steps.
    Show {
        /// Task id.
        id: uuid::Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a task: no new step of it starts (running ones finish) until resumed.
    Pause {
        /// Task id.
        id: uuid::Uuid,
        /// Who asks (recorded on the transition).
        #[arg(long)]
        by: Option<String>,
    },
    /// Resume a paused task.
    Resume {
        /// Task id.
        id: uuid::Uuid,
        /// Who asks (recorded on the transition).
        #[arg(long)]
        by: Option<String>,
    },
    /// Re-run a finished or failed task from a step: it and everything downstream run again.
    Restart {
        /// Task id.
        id: uuid::Uuid,
        /// The step to restart from (its name).
        #[arg(long)]
        step: String,
        /// Why (recorded on the transitions).
        #[arg(long)]
        reason: Option<String>,
        /// Who asks (recorded on the transitions).
        #[arg(long)]
        by: Option<String>,
    },
}

/// Reads the store and prints.
pub async fn run(config: &TaskerConfig, cmd: TasksCommand) -> anyhow::Result<ExitCode> {
    let store = connect::open_with(config).await?;
    match cmd {
        TasksCommand::List {
            status,
            namespace,
            name,
            limit,
            offset,
            json,
        } => {
            let query = TaskQuery {
                status,
                namespace,
                name,
                limit,
                offset,
                descending: true,
                ..TaskQuery::default()
            };
            let page = store.task_list(&query).await?;
            let pauses = store.flow_pauses().await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"tasks": page.items, "total": page.total})
                    )?
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "{:<36}  {:<22}  {:<40}  CREATED",
                "ID",
                "STATUS",
                "TEMPLATE"
            )?;
            for t in &page.items {
                let template = format!("{}.{}@{}", t.namespace, t.name, t.version);
                outln!(
                    "{:<36}  {:<22}  {:<40}  {}",
                    t.id,
                    status_label(t, &pauses),
                    template,
                    t.created_at.format("%Y-%m-%d %H:%M:%S%.3f")
                )?;
            }
            outln!(
                "{} of {} task(s)",
                page.items.len(),
                page.total.unwrap_or(0)
            )?;
        }
        TasksCommand::Pause { id, by } => {
            let t = store
                .task_pause(id, chrono::Utc::now(), by.as_deref())
                .await
                .with_context(|| format!("pause task {id}"))?;
            outln!("task {} paused ({})", t.id, t.status)?;
        }
        TasksCommand::Resume { id, by } => {
            let t = store
                .task_resume(id, chrono::Utc::now(), by.as_deref())
                .await
                .with_context(|| format!("resume task {id}"))?;
            outln!("task {} resumed ({})", t.id, t.status)?;
        }
        TasksCommand::Restart {
            id,
            step,
            reason,
            by,
        } => {
            // Through the service: the step name and reason rules are its.
            let tasker = tasker_engine::Tasker::builder(store.clone())
                .build()
                .context("cannot build the engine")?;
            let t = tasker
                .restart_task(id, &step, by.as_deref(), reason.as_deref())
                .await
                .with_context(|| format!("restart task {id} from step {step}"))?;
            outln!("task {} restarted from {step} ({})", t.id, t.status)?;
        }
        TasksCommand::Show { id, json } => {
            let task = store
                .task_get(id)
                .await
                .with_context(|| format!("task {id}"))?;
            let steps = store.step_list(id).await?;
            let counts = store.task_step_counts(id, chrono::Utc::now()).await?;
            let execution = ExecutionContext::from_counts(counts);
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"task": task, "execution": execution, "steps": steps})
                    )?
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!("task      {}", task.id)?;
            outln!(
                "template  {}.{}@{}",
                task.namespace,
                task.name,
                task.version
            )?;
            outln!(
                "status    {}  ({}, {}% complete, {})",
                task.status,
                api_name(&execution.execution_status),
                execution.completion_percentage,
                api_name(&execution.health_status)
            )?;
            if let Some(at) = &task.paused_at {
                outln!("paused    since {}", tasker_core::time::format(at))?;
            }
            let pauses = store.flow_pauses().await?;
            if let Some(p) = held_by(&task, &pauses) {
                outln!(
                    "held      by the pause of {} since {}{}{}",
                    p.scope.label(),
                    tasker_core::time::format(&p.paused_at),
                    p.paused_by
                        .as_deref()
                        .map(|b| format!(" by {b}"))
                        .unwrap_or_default(),
                    p.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )?;
            }
            outln!("context   {}", task.context)?;
            outln!("created   {}", tasker_core::time::format(&task.created_at))?;
            outln!()?;
            outln!(
                "{:<28}  {:<18}  {:>8}  RESULT / ERROR",
                "STEP",
                "STATUS",
                "ATTEMPTS"
            )?;
            for s in &steps {
                let detail = match (&s.results, &s.last_error) {
                    (Some(r), _) if s.status.is_done() => r.to_string(),
                    (_, Some(e)) => format!("error: {}", e.message),
                    _ => String::new(),
                };
                outln!(
                    "{:<28}  {:<18}  {:>3}/{:<4}  {}",
                    s.name,
                    if s.paused && s.status == tasker_core::StepState::Pending {
                        "pending (paused)"
                    } else {
                        s.status.as_str()
                    },
                    s.attempts,
                    s.max_attempts,
                    truncate(&detail, 80)
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The status column: the state, marked when the task is paused.
fn status_label(t: &tasker_store::TaskRow, pauses: &[tasker_store::FlowPauseRow]) -> String {
    match (t.paused_at, held_by(t, pauses)) {
        (Some(_), _) => format!("{} (paused)", t.status.as_str()),
        (None, Some(p)) => format!("{} (held: {})", t.status.as_str(), p.scope.label()),
        (None, None) => t.status.as_str().to_string(),
    }
}

/// The namespace or template pause holding an open task, if any.
fn held_by<'a>(
    t: &tasker_store::TaskRow,
    pauses: &'a [tasker_store::FlowPauseRow],
) -> Option<&'a tasker_store::FlowPauseRow> {
    if t.status.is_terminal() {
        return None;
    }
    tasker_store::flow_pause::covering(pauses, &t.namespace, &t.name)
}

/// The name the REST API uses for a value (its serde name: `all_complete`,
/// `healthy`), not the Rust variant (`AllComplete`).
fn api_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}
