//! `tasker flow list|pause|resume` (docs/FLOW_CONTROL.md): pause or resume
//! a whole namespace or one template of it, the incident switch.

use crate::connect;
use crate::output::outln;
use anyhow::Context;
use std::process::ExitCode;
use tasker_config::TaskerConfig;
use tasker_store::FlowScope;

/// Subcommands of `tasker flow`.
#[derive(Debug, clap::Subcommand)]
pub enum FlowCommand {
    /// List the paused namespaces and templates.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a namespace (or one template of it): no new step of it starts.
    Pause {
        /// Namespace.
        namespace: String,
        /// Only this template (all its versions).
        #[arg(long)]
        template: Option<String>,
        /// Why (shown in every read of the tasks it holds).
        #[arg(long)]
        reason: Option<String>,
        /// Who asks.
        #[arg(long)]
        by: Option<String>,
    },
    /// Resume a paused namespace (or template). Tasks paused by themselves stay paused.
    Resume {
        /// Namespace.
        namespace: String,
        /// Only this template.
        #[arg(long)]
        template: Option<String>,
    },
}

/// Runs a `tasker flow` subcommand.
pub async fn run(config: &TaskerConfig, cmd: FlowCommand) -> anyhow::Result<ExitCode> {
    let store = connect::open_with(config).await?;
    let tasker = tasker_engine::Tasker::builder(store)
        .build()
        .context("cannot build the engine")?;
    match cmd {
        FlowCommand::List { json } => {
            let all = tasker.flow_pauses().await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "pauses": all }))?
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!("{:<40}  {:<24}  {:<20}  REASON", "SCOPE", "SINCE", "BY")?;
            for p in &all {
                outln!(
                    "{:<40}  {:<24}  {:<20}  {}",
                    p.scope.label(),
                    p.paused_at.format("%Y-%m-%d %H:%M:%S"),
                    p.paused_by.as_deref().unwrap_or("-"),
                    p.reason.as_deref().unwrap_or("")
                )?;
            }
            outln!("{} pause(s)", all.len())?;
        }
        FlowCommand::Pause {
            namespace,
            template,
            reason,
            by,
        } => {
            let scope = FlowScope {
                namespace,
                name: template,
            };
            tasker
                .pause_scope(&scope, by.as_deref(), reason.as_deref())
                .await
                .with_context(|| format!("pause {}", scope.label()))?;
            outln!("{} paused", scope.label())?;
        }
        FlowCommand::Resume {
            namespace,
            template,
        } => {
            let scope = FlowScope {
                namespace,
                name: template,
            };
            tasker
                .resume_scope(&scope, None)
                .await
                .with_context(|| format!("resume {}", scope.label()))?;
            outln!("{} resumed", scope.label())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
