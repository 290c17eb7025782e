//! One file per subcommand.

pub mod bench;
pub mod run;
pub mod tasks;
pub mod validate;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;
use tasker_engine::EngineConfig;

/// Engine settings shared by `run` and `worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Template files or directories to register (repeatable).
    #[arg(long = "templates", env = "TASKER_TEMPLATES", value_delimiter = ',')]
    pub templates: Vec<PathBuf>,
    /// Handlers running at once in this process.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u32,
    /// Lease duration in seconds (how soon another process may take over a step of a dead one).
    #[arg(long, default_value_t = 30.0)]
    pub lease_seconds: f64,
    /// Template environment overrides to apply (`environments.<name>`).
    #[arg(long, env = "TASKER_ENV")]
    pub environment: Option<String>,
}

impl EngineArgs {
    /// The engine configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<EngineConfig> {
        let lease = Duration::try_from_secs_f64(self.lease_seconds)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| anyhow::anyhow!("--lease-seconds must be a positive number"))?;
        Ok(EngineConfig {
            max_concurrent_steps: self.concurrency,
            lease_duration: lease,
            heartbeat_interval: lease / 3,
            rescue_interval: (lease / 2).min(Duration::from_secs(5)),
            environment: self.environment.clone(),
            ..EngineConfig::default()
        })
    }
}
