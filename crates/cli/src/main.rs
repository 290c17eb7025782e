//! `tasker`: run, validate, inspect and benchmark workflows.
//!
//! The binary is glue: it parses arguments, loads the layered configuration
//! (`settings`), opens the store and calls the engine's application service.
//! Each subcommand lives in its own file under `commands/`.

mod commands;
mod connect;
mod logging;
mod output;
mod progress;
mod settings;
mod signal;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Workflow orchestration: YAML task templates, DAG execution with retries, durable state.
#[derive(Debug, Parser)]
#[command(name = "tasker", version, about)]
struct Cli {
    /// Configuration file (TOML or YAML); see docs/CONFIGURATION.md.
    #[arg(long, global = true, env = "TASKER_CONFIG")]
    config: Option<PathBuf>,

    /// Database URL: `sqlite://PATH` or `postgres://…` (overrides `database.url`; default `sqlite://tasker.db`).
    #[arg(long, global = true, env = "TASKER_DATABASE_URL")]
    database: Option<String>,

    /// Log format: `text` or `json` (overrides `logging.format`).
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
    /// Pause or resume a whole namespace or template (the incident switch).
    #[command(subcommand)]
    Flow(commands::flow::FlowCommand),
    /// List, pause, resume, trigger or delete schedules.
    Schedules(commands::schedules::Args),
    /// Execute steps from the store until stopped (Ctrl-C / SIGTERM).
    Worker(commands::worker::Args),
    /// Serve the REST API (and execute steps unless --no-workers) until stopped.
    Serve(commands::serve::Args),
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Create, list or revoke API keys.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Follow lifecycle events (`tasker events tail --type 'task.*'`).
    #[command(subcommand)]
    Events(commands::events::EventsCommand),
    /// Apply database migrations and exit.
    Migrate,
    /// Delete finished tasks older than their retention window (`[retention]`).
    Prune(commands::prune::Args),
    /// Run database upkeep (VACUUM ANALYZE on PostgreSQL) and show upkeep warnings.
    Maintenance(commands::maintenance::Args),
    /// Measure throughput and latency with no-op steps.
    Bench(commands::bench::Args),
    /// GraphQL tools: print the schema.
    #[command(subcommand)]
    Graphql(commands::graphql::GraphqlCommand),
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
    let result = runtime.block_on(dispatch(cli));
    // Queued log lines first, so the error below is the last thing printed.
    logging::flush();
    match result {
        Ok(code) => code,
        // The reader of stdout went away: end quietly, as `cat` would.
        Err(e) if output::stdout_error(&e).is_some_and(output::StdoutError::is_closed) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let globals = settings::Globals {
        config: cli.config.clone(),
        database: cli.database.clone(),
        log_format: cli.log_format.map(logging::Format::name),
    };
    let format = cli.log_format;
    // Commands that only need the database still honour the configuration's `[database]`.
    let database = || -> Result<tasker_config::TaskerConfig, ExitCode> {
        settings::load(&globals, Vec::new())
            .map(|l| l.config)
            .map_err(|problems| {
                eprint!("error: {problems}");
                ExitCode::from(2)
            })
    };
    match cli.command {
        Command::Validate(args) => {
            logging::init(format, None, "warn");
            commands::validate::run(args)
        }
        Command::Run(args) => commands::run::run(&globals, format, args).await,
        Command::Worker(args) => commands::worker::run(&globals, format, args).await,
        Command::Schedules(args) => commands::schedules::run(&globals, format, args).await,
        Command::Serve(args) => commands::serve::run(&globals, format, args).await,
        Command::Config(cmd) => {
            logging::init(format, None, "warn");
            commands::config::run(&globals, cmd).await
        }
        Command::Tasks(cmd) => {
            logging::init(format, None, "warn");
            match database() {
                Ok(c) => commands::tasks::run(&c, cmd).await,
                Err(code) => Ok(code),
            }
        }
        Command::Flow(cmd) => {
            logging::init(format, None, "warn");
            match database() {
                Ok(c) => commands::flow::run(&c, cmd).await,
                Err(code) => Ok(code),
            }
        }
        Command::Keys(cmd) => {
            logging::init(format, None, "warn");
            match database() {
                Ok(c) => commands::keys::run(&c, cmd).await,
                Err(code) => Ok(code),
            }
        }
        Command::Events(cmd) => {
            logging::init(format, None, "warn");
            match database() {
                Ok(c) => commands::events::run(&c, cmd).await,
                Err(code) => Ok(code),
            }
        }
        Command::Migrate => {
            logging::init(format, None, "info");
            match database() {
                Ok(c) => commands::migrate::run(&c).await,
                Err(code) => Ok(code),
            }
        }
        Command::Prune(args) => {
            logging::init(format, None, "warn");
            match database() {
                Ok(c) => commands::prune::run(&c, args).await,
                Err(code) => Ok(code),
            }
        }
        Command::Maintenance(args) => {
            logging::init(format, None, "warn");
            match database() {
                Ok(c) => commands::maintenance::run(&c, args).await,
                Err(code) => Ok(code),
            }
        }
        Command::Bench(args) => {
            let telemetry = tasker_config::TelemetryConfig {
                otlp_endpoint: args.otlp_endpoint.clone(),
                ..Default::default()
            };
            logging::init_traced(format, None, "warn", Some(&telemetry));
            commands::bench::run(args).await
        }
        Command::Graphql(cmd) => Ok(commands::graphql::run(cmd)),
    }
}
