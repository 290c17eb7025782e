//! `tasker config check` / `tasker config show`

use crate::output::outln;
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
            let (loaded, errors) = settings::load_for_show(globals);
            if let Some(loaded) = loaded {
                for line in loaded.show().lines() {
                    let key = line.split(" = ").next().unwrap_or_default();
                    // A value of the wrong type is shown at its default: say so.
                    if errors.iter().any(|e| e.key == key) {
                        outln!("{line}  (see the problem below)")?;
                    } else {
                        outln!("{line}")?;
                    }
                }
            }
            if errors.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            let problems = settings::Problems(errors.iter().map(ToString::to_string).collect());
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
            if let Err(problems) = super::serve::auth_settings(&loaded.config).await {
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
