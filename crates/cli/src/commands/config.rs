//! `tasker config check` / `tasker config show`

use crate::output::{out, outln};
use crate::settings::{self, Globals};
use std::process::ExitCode;

/// Subcommands of `tasker config`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Run every start-up check (keys, values, database, templates) without starting.
    Check,
    /// Print the effective configuration with the source of each value (secrets redacted), then any problems.
    Show,
}

/// Runs the subcommand. Exit 0 when valid, 2 with every problem listed otherwise.
pub async fn run(globals: &Globals, cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Show => {
            // A broken configuration is when showing it helps most: show what
            // is in effect (bad values at their defaults), then the problems.
            let (loaded, problems) = settings::load_for_show(globals);
            if let Some(loaded) = loaded {
                out!("{}", loaded.show())?;
            }
            if problems.0.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            eprint!("error: {problems}");
            Ok(ExitCode::from(2))
        }
        ConfigCommand::Check => {
            let loaded = settings::load(globals, Vec::new())?;
            // What `serve` checks besides (the bind address resolves).
            if let Err(problems) = super::serve::server_config(&loaded.config).await {
                eprint!("error: {problems}");
                return Ok(ExitCode::from(2));
            }
            match settings::start(&loaded, &[]).await {
                Ok(tasker) => {
                    let templates = tasker.with_registry(|r| r.len());
                    outln!(
                        "configuration ok: database {} reachable and migrated, {templates} template(s) valid, environment {}",
                        crate::connect::redact(&loaded.config.database.url),
                        loaded.config.environment
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(problems) => {
                    eprint!("error: {problems}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
