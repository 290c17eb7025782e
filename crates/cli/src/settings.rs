//! From configuration to a running service: load the layered configuration
//! (defaults, file, environment, flags), run the start-up checks, open the
//! store and build the engine. Every subcommand that runs work goes through
//! here, so `tasker config check` checks exactly what a start would.

use crate::connect;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tasker_config::{ConfigError, LoadOptions, Loaded, TaskerConfig};
use tasker_engine::handlers::{Http, HttpPolicy};
use tasker_engine::{EngineConfig, Tasker};
use tasker_store::Store;

/// Options every subcommand shares.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `--config` / `TASKER_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--database` / `TASKER_DATABASE_URL`.
    pub database: Option<String>,
    /// `--log-format` / `TASKER_LOG_FORMAT` (`text` or `json`).
    pub log_format: Option<&'static str>,
}

impl Globals {
    /// The load options of these globals: the file, the process
    /// environment, and the global flags as the last layer.
    fn options(&self) -> LoadOptions {
        let mut options = LoadOptions::from_process(self.config.clone());
        if let Some(url) = &self.database {
            options = options.flag(
                "database.url",
                url.clone(),
                "--database / TASKER_DATABASE_URL",
            );
        }
        if let Some(format) = self.log_format {
            options = options.flag("logging.format", format, "--log-format / TASKER_LOG_FORMAT");
        }
        options
    }
}

/// Start-up failed: every problem, printed one per line.
#[derive(Debug)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Loads the configuration with `flags` as the last layer.
pub fn load(globals: &Globals, flags: Vec<(&str, Value, &str)>) -> Result<Loaded, Problems> {
    let mut options = globals.options();
    for (key, value, name) in flags {
        options = options.flag(key, value, name);
    }
    tasker_config::load(&options)
        .map_err(|errors| Problems(errors.iter().map(ConfigError::to_string).collect()))
}

/// Loads as far as possible for `tasker config show`: the effective
/// configuration and every problem (empty when valid).
pub fn load_for_show(globals: &Globals) -> (Option<Loaded>, Vec<ConfigError>) {
    tasker_config::load_with_problems(&globals.options())
}

/// Opens the configured store (migrating it), within the acquire timeout.
pub async fn open_store(c: &TaskerConfig) -> anyhow::Result<Arc<dyn Store>> {
    let timeout = Duration::try_from_secs_f64(c.database.acquire_timeout_seconds)
        .unwrap_or(Duration::from_secs(5));
    let opened = tokio::time::timeout(timeout * 2, connect::open_with(c)).await;
    match opened {
        Ok(r) => r,
        Err(_) => anyhow::bail!(
            "database {} did not answer within {:?}",
            connect::redact(&c.database.url),
            timeout * 2
        ),
    }
}

/// The `http` handler's policy from `[http]`.
pub fn http_policy(c: &TaskerConfig) -> HttpPolicy {
    let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
    let mut p = HttpPolicy::default()
        .max_response_bytes(usize::try_from(c.http.max_response_bytes).unwrap_or(usize::MAX))
        .default_timeout(secs(c.http.default_timeout_seconds))
        .max_retry_after(secs(c.http.max_retry_after_seconds));
    for host in &c.http.allowed_hosts {
        p = p.allow_host(host.clone());
    }
    if c.http.allow_internal {
        p = p.allow_internal();
    }
    p
}

/// Runs every start-up check that needs the outside world, then builds the
/// service: the database answers and is migrated, every template directory
/// loads. All problems are reported together.
pub async fn start(loaded: &Loaded, extra_templates: &[PathBuf]) -> Result<Tasker, Problems> {
    let c = &loaded.config;
    let mut problems = Vec::new();
    let store = match open_store(c).await {
        Ok(s) => match s.migrations_applied().await {
            Ok(true) => Some(s),
            Ok(false) => {
                problems.push(format!(
                    "database.url ({}): migrations are not applied; run `tasker migrate`",
                    loaded.source_of("database.url")
                ));
                None
            }
            Err(e) => {
                problems.push(format!(
                    "database.url ({}): cannot read the migration state: {e}",
                    loaded.source_of("database.url")
                ));
                None
            }
        },
        Err(e) => {
            problems.push(format!(
                "database.url ({}): {e:#}",
                loaded.source_of("database.url")
            ));
            None
        }
    };
    let mut paths: Vec<PathBuf> = c
        .engine
        .template_directories
        .iter()
        .map(PathBuf::from)
        .collect();
    paths.extend(extra_templates.iter().cloned());
    let templates = match tasker_engine::templates::load_paths(&paths, Some(&c.environment)) {
        Ok(t) => t,
        Err(errors) => {
            problems.extend(errors.0.iter().map(|e| {
                format!(
                    "engine.template_directories ({}): {e}",
                    loaded.source_of("engine.template_directories")
                )
            }));
            Vec::new()
        }
    };
    let Some(store) = store.filter(|_| problems.is_empty()) else {
        return Err(Problems(problems));
    };
    // Upkeep problems slow the engine without stopping it: say so once.
    match store.storage_health().await {
        Ok(h) => {
            for w in h.warnings {
                tracing::warn!(warning = %w, "database upkeep");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the database upkeep state"),
    }
    let mut builder = Tasker::builder(store)
        .config(EngineConfig::from_config(c))
        .handler("http", Http::new(http_policy(c)))
        .webhook_policy(http_policy(c));
    for t in templates {
        builder = builder.template(t);
    }
    builder.build().map_err(|e| Problems(vec![e.to_string()]))
}

/// Registers `[[webhooks]]` in the database (a bad entry is named by its
/// key) and starts the loops every process runs with or without workers:
/// the event pruner and the webhook dispatcher.
pub async fn start_services(tasker: &Tasker) -> Result<tasker_engine::ServicesHandle, Problems> {
    tasker
        .sync_config_webhooks()
        .await
        .map_err(|e| Problems(vec![e.to_string()]))?;
    Ok(tasker.start_services())
}
