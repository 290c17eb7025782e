//! Engine settings in runtime types. Their names in files, their defaults
//! and the rules on their values are defined once, in `tasker-config`
//! (`EngineSection`, `rules`); [`EngineConfig::from_config`] is the one
//! mapping between the two.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tasker_core::BackoffPolicy;
use tasker_core::identity::IdentityStrategy;

/// How the engine claims, runs and retries steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Identifies this process in leases and logs (default: `<hostname>-<pid>-<random>`).
    pub worker_id: Option<String>,
    /// Handlers running at once in this process.
    pub max_concurrent_steps: u32,
    /// Steps of one task running at once, across all processes (None = no limit).
    pub max_concurrent_steps_per_task: Option<u32>,
    /// Most steps claimed in one statement.
    pub claim_batch_size: u32,
    /// Most outcomes written in one transaction.
    pub finish_batch_size: u32,
    /// Outcome transactions in flight at once (PostgreSQL overlaps their
    /// round trips; SQLite serialises writes anyway, so 1 suits it).
    pub finish_concurrency: u32,
    /// The transaction that writes a batch of outcomes also leases, to this
    /// worker, children the batch made ready (up to the slots it frees), so they
    /// start without a wake-up and claim round trip.
    pub claim_on_completion: bool,
    /// How long a claim holds a step before another process may take it over.
    #[serde(with = "secs")]
    pub lease_duration: Duration,
    /// How often held leases are renewed (well under `lease_duration`).
    #[serde(with = "secs")]
    pub heartbeat_interval: Duration,
    /// How often expired leases are looked for.
    #[serde(with = "secs")]
    pub rescue_interval: Duration,
    /// Fallback poll when no wake-up arrives (other processes' work on SQLite).
    #[serde(with = "secs")]
    pub poll_interval: Duration,
    /// On shutdown, how long running handlers may take to finish and their
    /// outcomes to be written, in all; then the rest is left to lease expiry.
    #[serde(with = "secs")]
    pub shutdown_timeout: Duration,
    /// Default per-attempt timeout for steps that set none (None = no limit).
    #[serde(with = "opt_secs")]
    pub default_step_timeout: Option<Duration>,
    /// Retry delays.
    pub backoff: BackoffPolicy,
    /// Duplicate task detection.
    pub identity_strategy: IdentityStrategy,
    /// With the hash strategy, identical requests within this window are duplicates.
    #[serde(with = "secs")]
    pub identity_window: Duration,
    /// Selects `environments.<name>` overrides in templates.
    pub environment: Option<String>,
    /// Handler kinds this engine never runs (left to external workers).
    pub exclude_kinds: Vec<String>,
    /// Keys whose values are masked in logs and error output.
    pub sensitive_keys: Vec<String>,
    /// How long finished tasks are kept (`[retention]`).
    pub retention: crate::retention::RetentionConfig,
    /// Events older than this are pruned (None keeps them forever).
    #[serde(with = "opt_secs")]
    pub event_retention: Option<Duration>,
    /// How often the worker's pruner looks for expired events.
    #[serde(with = "secs")]
    pub event_prune_interval: Duration,
    /// Events deleted per pruning statement.
    pub event_prune_batch: u32,
    /// The webhook dispatcher (`[events] webhook_*`) and the subscribers of
    /// the configuration (`[[webhooks]]`).
    pub webhooks: WebhookSettings,
    /// `[rate_limits]`: the token buckets steps may name (docs/FLOW_CONTROL.md).
    pub rate_limits: std::collections::BTreeMap<String, tasker_core::flow::RateLimitDef>,
    /// The schedule loop (`[scheduler]`).
    pub scheduler: crate::schedules::SchedulerConfig,
}

/// How the webhook dispatcher works (docs/EVENTS.md, "Webhooks").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Requests in flight at once in this process.
    pub concurrency: u32,
    /// Deliveries claimed per statement; events fanned out per subscriber per round.
    pub batch_size: u32,
    /// How long a claimed delivery is held before another process may send it again.
    #[serde(with = "secs")]
    pub lease: Duration,
    /// Fallback poll when no wake-up arrives.
    #[serde(with = "secs")]
    pub poll_interval: Duration,
    /// First retry delay (doubled per attempt, jittered).
    #[serde(with = "secs")]
    pub backoff_base: Duration,
    /// Longest retry delay, and the cap on `Retry-After`.
    #[serde(with = "secs")]
    pub backoff_max: Duration,
    /// `[[webhooks]]`: synced into the database at start.
    pub configured: Vec<tasker_config::WebhookConfig>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings::from_config(&tasker_config::TaskerConfig::default())
    }
}

impl WebhookSettings {
    /// The settings of a loaded configuration.
    pub fn from_config(c: &tasker_config::TaskerConfig) -> Self {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
        let e = &c.events;
        WebhookSettings {
            concurrency: e.webhook_concurrency,
            batch_size: e.webhook_batch_size,
            lease: secs(e.webhook_lease_seconds),
            poll_interval: secs(e.webhook_poll_interval_seconds),
            backoff_base: secs(e.webhook_backoff_base_seconds),
            backoff_max: secs(e.webhook_backoff_max_seconds),
            configured: c.webhooks.clone(),
        }
    }
}

/// The defaults are the configuration's (`tasker_config::EngineSection`
/// and friends), defined once there; a library user has no environment.
impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            environment: None,
            ..EngineConfig::from_config(&tasker_config::TaskerConfig::default())
        }
    }
}

impl EngineConfig {
    /// The engine settings of a loaded configuration: `[engine]`, `[backoff]`,
    /// `environment` and `logging.sensitive_keys`, converted to runtime types.
    /// The one place configuration keys are mapped onto the engine: a new
    /// `[engine]` key the engine reads is a field in
    /// [`tasker_config::EngineSection`] (name, default, doc) and one line here.
    pub fn from_config(c: &tasker_config::TaskerConfig) -> Self {
        let e = &c.engine;
        // The configuration checks refused non-positive or non-finite values.
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
        EngineConfig {
            worker_id: e.worker_id.clone(),
            max_concurrent_steps: e.max_concurrent_steps,
            max_concurrent_steps_per_task: e.max_concurrent_steps_per_task,
            claim_batch_size: e.claim_batch_size,
            finish_batch_size: e.finish_batch_size,
            finish_concurrency: e.finish_concurrency,
            claim_on_completion: e.claim_on_completion,
            lease_duration: secs(e.lease_seconds),
            heartbeat_interval: secs(e.effective_heartbeat_seconds()),
            rescue_interval: secs(e.rescue_interval_seconds),
            poll_interval: secs(e.poll_interval_seconds),
            shutdown_timeout: secs(e.shutdown_timeout_seconds),
            default_step_timeout: e.default_step_timeout_seconds.map(secs),
            backoff: c.backoff.clone(),
            identity_strategy: e.identity_strategy,
            identity_window: secs(e.identity_window_seconds),
            environment: Some(c.environment.clone()),
            exclude_kinds: e.exclude_kinds.clone(),
            sensitive_keys: c.logging.sensitive_keys.clone(),
            retention: crate::retention::RetentionConfig::from_config(&c.retention),
            event_retention: (c.events.retention_days > 0)
                .then(|| Duration::from_secs(u64::from(c.events.retention_days) * 86_400)),
            event_prune_interval: secs(c.events.prune_interval_seconds),
            event_prune_batch: c.events.prune_batch_size,
            webhooks: WebhookSettings::from_config(c),
            rate_limits: c.rate_limits.clone(),
            scheduler: crate::schedules::SchedulerConfig::from_config(&c.scheduler),
        }
    }

    /// Every problem with the settings, each naming its configuration key.
    /// The rules are [`tasker_config::rules`], the same functions the
    /// configuration checks apply to `[engine]`.
    pub fn problems(&self) -> Vec<String> {
        use tasker_config::rules;
        let secs = Duration::as_secs_f64;
        let mut checks = vec![
            (
                "engine.max_concurrent_steps",
                rules::at_least_one(self.max_concurrent_steps),
            ),
            (
                "engine.claim_batch_size",
                rules::batch_size(self.claim_batch_size),
            ),
            (
                "engine.finish_batch_size",
                rules::batch_size(self.finish_batch_size),
            ),
            (
                "engine.finish_concurrency",
                rules::finish_concurrency(self.finish_concurrency),
            ),
            (
                "engine.lease_seconds",
                rules::positive_seconds(secs(&self.lease_duration)),
            ),
            (
                "engine.heartbeat_seconds",
                rules::positive_seconds(secs(&self.heartbeat_interval)),
            ),
            (
                "engine.heartbeat_seconds",
                rules::heartbeat_within_lease(
                    secs(&self.heartbeat_interval),
                    secs(&self.lease_duration),
                ),
            ),
            (
                "engine.rescue_interval_seconds",
                rules::positive_seconds(secs(&self.rescue_interval)),
            ),
            (
                "engine.poll_interval_seconds",
                rules::positive_seconds(secs(&self.poll_interval)),
            ),
        ];
        if let Some(n) = self.max_concurrent_steps_per_task {
            checks.push((
                "engine.max_concurrent_steps_per_task",
                rules::at_least_one(n),
            ));
        }
        let mut out: Vec<String> = checks
            .into_iter()
            .filter_map(|(key, r)| r.err().map(|m| format!("{key}: {m}")))
            .collect();
        if let Err(e) = self.backoff.validate() {
            out.push(format!("backoff.{e}"));
        }
        out
    }
}

/// Durations as (fractional) seconds in config files.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v)
            .map_err(|_| serde::de::Error::custom(format!("{v} is not a valid number of seconds")))
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(v) => Duration::try_from_secs_f64(v).map(Some).map_err(|_| {
                serde::de::Error::custom(format!("{v} is not a valid number of seconds"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EngineConfig;
    use std::time::Duration;
    use tasker_config::TaskerConfig;

    #[test]
    fn defaults_come_from_the_configuration() {
        let d = EngineConfig::default();
        assert_eq!(d.lease_duration, Duration::from_secs(30));
        // Unset in the configuration: a third of the lease.
        assert_eq!(d.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(d.environment, None);
        assert_eq!(
            EngineConfig::from_config(&TaskerConfig::default())
                .environment
                .as_deref(),
            Some("development")
        );
        assert!(d.problems().is_empty(), "{:?}", d.problems());
    }

    #[test]
    fn rules_are_the_configuration_rules() {
        let c = EngineConfig {
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(40),
            claim_batch_size: 0,
            ..EngineConfig::default()
        };
        assert_eq!(
            c.problems(),
            vec![
                "engine.claim_batch_size: must be between 1 and 10000".to_string(),
                "engine.heartbeat_seconds: must be shorter than engine.lease_seconds (30), or leases expire between renewals".to_string(),
            ]
        );
    }
}
