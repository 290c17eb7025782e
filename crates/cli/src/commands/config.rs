//! `tasker config check` / `tasker config show`

use crate::output::{out, outln};
use crate::settings::{self, Globals};
use std::process::ExitCode;

/// Subcommands of `tasker config`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Run every start-up check (keys, values, database, templates) without starting.
    Check,
    /// Print the effective configuration with the source of each value (secrets redacted).
    Show,
}

/// Runs the subcommand. Exit 0 when valid, 2 with every problem listed otherwise.
pub async fn run(globals: &Globals, cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    let loaded = settings::load(globals, Vec::new())?;
    match cmd {
        ConfigCommand::Show => {
            out!("{}", loaded.show())?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check => match settings::start(&loaded, &[]).await {
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
        },
    }
}
