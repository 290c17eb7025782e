//! `tasker`: run, validate, inspect and benchmark workflows.
//!
//! The binary is glue: it parses arguments, opens the store named by
//! `--database` (SQLite by default), and calls the engine's application
//! service. Each subcommand lives in its own file under `commands/`.

mod commands;
mod connect;
mod logging;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Workflow orchestration: YAML task templates, DAG execution with retries, durable state.
#[derive(Debug, Parser)]
#[command(name = "tasker", version, about)]
struct Cli {
    /// Database URL: `sqlite://PATH` (default `sqlite://tasker.db`) or `postgres://…`.
    #[arg(
        long,
        global = true,
        env = "TASKER_DATABASE_URL",
        default_value = "sqlite://tasker.db"
    )]
    database: String,

    /// Log format: `text` or `json` (default: text on a terminal, json otherwise).
    #[arg(long, global = true, env = "TASKER_LOG_FORMAT")]
    log_format: Option<logging::Format>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one task of a template to completion, showing progress.
    Run(commands::run::Args),
    /// Check template files (or directories of them).
    Validate(commands::validate::Args),
    /// Inspect tasks in the store.
    #[command(subcommand)]
    Tasks(commands::tasks::TasksCommand),
    /// Execute steps from the store until stopped (Ctrl-C / SIGTERM).
    Worker(commands::worker::Args),
    /// Apply database migrations and exit.
    Migrate,
    /// Measure throughput and latency with no-op steps.
    Bench(commands::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match dispatch(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        }
    })
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let quiet_default = matches!(
        cli.command,
        Command::Run(_) | Command::Validate(_) | Command::Tasks(_) | Command::Bench(_)
    );
    logging::init(cli.log_format, if quiet_default { "warn" } else { "info" });
    match cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Run(args) => commands::run::run(&cli.database, args).await,
        Command::Tasks(cmd) => commands::tasks::run(&cli.database, cmd).await,
        Command::Worker(args) => commands::worker::run(&cli.database, args).await,
        Command::Migrate => {
            connect::open(&cli.database).await?;
            println!("migrations applied to {}", connect::redact(&cli.database));
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => commands::bench::run(&cli.database, args).await,
    }
}
