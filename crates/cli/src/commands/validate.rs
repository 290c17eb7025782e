//! `tasker validate PATH...`

use crate::output::outln;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `tasker validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Template files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Also apply this environment's overrides.
    #[arg(long, env = "TASKER_ENV")]
    pub environment: Option<String>,
}

/// Prints each valid template, or every error with file:line; exit 1 on errors.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match tasker_engine::templates::load_paths(&args.paths, args.environment.as_deref()) {
        Ok(templates) => {
            for t in &templates {
                outln!(
                    "ok  {}  {} ({} steps)",
                    t.source,
                    t.full_name(),
                    t.steps.len()
                )?;
            }
            let mut registry = tasker_core::TemplateRegistry::new();
            if let Err(e) = registry.register_all(templates, false) {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} problem(s) found", errors.0.len());
            Ok(ExitCode::from(1))
        }
    }
}
