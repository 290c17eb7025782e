//! One file per subcommand.

pub mod bench;
pub mod bench_events;
pub mod bench_webhooks;
pub mod config;
pub mod events;
pub mod flow;
pub mod graphql;
pub mod keys;
pub mod maintenance;
pub mod migrate;
pub mod prune;
pub mod run;
pub mod schedules;
pub mod serve;
pub mod tasks;
pub mod validate;
pub mod worker;

use serde_json::Value;
use std::path::PathBuf;

/// Engine flags shared by `run`, `worker` and `serve`. Each one, when given,
/// overrides the configuration key named in its help.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Template files or directories to register, besides `engine.template_directories` (repeatable).
    #[arg(long = "templates", value_delimiter = ',')]
    pub templates: Vec<PathBuf>,
    /// Handlers running at once in this process (`engine.max_concurrent_steps`).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Lease duration in seconds (`engine.lease_seconds`; the heartbeat follows at a third unless `engine.heartbeat_seconds` is set).
    #[arg(long)]
    pub lease_seconds: Option<f64>,
    /// Environment: selects template overrides and production checks (`environment`).
    #[arg(long, env = "TASKER_ENV")]
    pub environment: Option<String>,
}

impl EngineArgs {
    /// The configuration overrides these flags stand for.
    pub fn flags(&self) -> Vec<(&'static str, Value, &'static str)> {
        let mut out = Vec::new();
        if let Some(n) = self.concurrency {
            out.push((
                "engine.max_concurrent_steps",
                Value::from(n),
                "--concurrency",
            ));
        }
        if let Some(s) = self.lease_seconds {
            // The heartbeat follows the lease unless configured.
            out.push(("engine.lease_seconds", Value::from(s), "--lease-seconds"));
            out.push((
                "engine.rescue_interval_seconds",
                Value::from((s / 2.0).min(5.0)),
                "--lease-seconds",
            ));
        }
        if let Some(env) = &self.environment {
            out.push((
                "environment",
                Value::from(env.clone()),
                "--environment / TASKER_ENV",
            ));
        }
        out
    }
}
