//! The configuration tree: one struct per group, defaults in one place.
//!
//! Every struct denies unknown keys. Durations are plain numbers of seconds
//! (fractions allowed) in keys ending in `_seconds`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tasker_core::BackoffPolicy;
use tasker_core::analysis::DependencyGraphWeights;
use tasker_core::identity::IdentityStrategy;

/// Everything Tasker can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskerConfig {
    /// `development`, `test` or `production`. Production refuses unsafe settings.
    pub environment: String,
    /// Run in production even with settings the checks call unsafe.
    pub allow_unsafe_production: bool,
    /// Where state lives.
    pub database: DatabaseConfig,
    /// How steps are claimed and run.
    pub engine: EngineSection,
    /// Retry delays.
    pub backoff: BackoffPolicy,
    /// Weights of the runtime dependency analysis.
    pub dependency_graph: DependencyGraphWeights,
    /// Health endpoints.
    pub health: HealthConfig,
    /// Log output and masking.
    pub logging: LoggingConfig,
    /// The REST API server.
    pub server: ServerSection,
    /// In-process caches.
    pub cache: CacheConfig,
    /// The built-in `http` handler's safety policy.
    pub http: HttpSection,
    /// Who may call the API, and what they may do.
    pub auth: AuthSection,
    /// Metrics and analytics.
    pub telemetry: TelemetryConfig,
    /// How long finished tasks are kept, and where pruned ones go.
    pub retention: RetentionSection,
    /// The lifecycle event outbox (docs/EVENTS.md).
    pub events: crate::events::EventsConfig,
    /// Webhook subscribers (`[[webhooks]]`, docs/EVENTS.md).
    pub webhooks: Vec<crate::webhooks::WebhookConfig>,
    /// Named token buckets steps draw from (`rate_limit:` in templates,
    /// docs/FLOW_CONTROL.md): `payments_api = { per_second = 50, burst = 100 }`.
    pub rate_limits: BTreeMap<String, tasker_core::flow::RateLimitDef>,
    /// The schedule loop (docs/FLOW_CONTROL.md).
    pub scheduler: crate::scheduler::SchedulerConfig,
}

impl Default for TaskerConfig {
    fn default() -> Self {
        TaskerConfig {
            environment: "development".into(),
            allow_unsafe_production: false,
            database: DatabaseConfig::default(),
            engine: EngineSection::default(),
            backoff: BackoffPolicy::default(),
            dependency_graph: DependencyGraphWeights::default(),
            health: HealthConfig::default(),
            logging: LoggingConfig::default(),
            server: ServerSection::default(),
            cache: CacheConfig::default(),
            http: HttpSection::default(),
            auth: AuthSection::default(),
            telemetry: TelemetryConfig::default(),
            retention: RetentionSection::default(),
            events: crate::events::EventsConfig::default(),
            webhooks: Vec::new(),
            rate_limits: BTreeMap::new(),
            scheduler: crate::scheduler::SchedulerConfig::default(),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://user[:password]@host[:port]/db`.
    pub url: String,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// Connections kept open when idle (PostgreSQL).
    pub min_connections: u32,
    /// How long to wait for a free connection before failing.
    pub acquire_timeout_seconds: f64,
    /// SQLite: `normal` (fast; a power loss may drop the last commits) or `full` (fsync every commit).
    pub sqlite_synchronous: String,
    /// PostgreSQL: announce every task change to other processes (GraphQL
    /// subscriptions across processes), not only finished tasks.
    pub announce_changes: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://tasker.db".into(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_seconds: 5.0,
            sqlite_synchronous: "normal".into(),
            announce_changes: false,
        }
    }
}

/// `[engine]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Template files or directories loaded at start.
    pub template_directories: Vec<String>,
    /// Runs steps in this process (false: serve the API only).
    pub run_workers: bool,
    /// Lease owner name (default: `<hostname>-<pid>-<random>`).
    pub worker_id: Option<String>,
    /// Handlers running at once in this process.
    pub max_concurrent_steps: u32,
    /// Steps of one task running at once across all processes (null = no limit).
    pub max_concurrent_steps_per_task: Option<u32>,
    /// Most steps claimed per statement.
    pub claim_batch_size: u32,
    /// Most outcomes written per transaction.
    pub finish_batch_size: u32,
    /// Outcome transactions in flight at once (PostgreSQL; SQLite always uses 1).
    pub finish_concurrency: u32,
    /// The transaction that writes outcomes also leases the children they
    /// made ready to this process, up to the slots the batch frees.
    pub claim_on_completion: bool,
    /// How long a claim holds a step.
    pub lease_seconds: f64,
    /// How often held leases are renewed (null = a third of `lease_seconds`,
    /// so shortening the lease alone stays valid).
    pub heartbeat_seconds: Option<f64>,
    /// How often expired leases are looked for.
    pub rescue_interval_seconds: f64,
    /// Fallback poll for work created by other processes.
    pub poll_interval_seconds: f64,
    /// How long running handlers may take to finish, and their outcomes to
    /// be written, at shutdown (in all).
    pub shutdown_timeout_seconds: f64,
    /// Timeout of steps that set none (null = none).
    pub default_step_timeout_seconds: Option<f64>,
    /// `none` or `hash`.
    pub identity_strategy: IdentityStrategy,
    /// With `hash`, identical requests within this window are duplicates.
    pub identity_window_seconds: f64,
    /// Handler kinds this process never runs (left to external workers).
    pub exclude_kinds: Vec<String>,
}

impl EngineSection {
    /// The heartbeat period in effect: `heartbeat_seconds`, or a third of
    /// `lease_seconds` when it is not set.
    pub fn effective_heartbeat_seconds(&self) -> f64 {
        self.heartbeat_seconds.unwrap_or(self.lease_seconds / 3.0)
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            template_directories: Vec::new(),
            run_workers: true,
            worker_id: None,
            max_concurrent_steps: 64,
            max_concurrent_steps_per_task: None,
            claim_batch_size: 64,
            finish_batch_size: 256,
            finish_concurrency: 4,
            claim_on_completion: true,
            lease_seconds: 30.0,
            heartbeat_seconds: None,
            rescue_interval_seconds: 5.0,
            poll_interval_seconds: 1.0,
            shutdown_timeout_seconds: 30.0,
            default_step_timeout_seconds: None,
            identity_strategy: IdentityStrategy::None,
            identity_window_seconds: 60.0,
            exclude_kinds: vec!["external".into()],
        }
    }
}

/// `[health]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Longest the readiness probe waits for the database.
    pub ready_timeout_seconds: f64,
    /// `/health/status` counts the tasks created in this many last seconds.
    pub status_window_seconds: f64,
    /// `/health/status` requires `tasker.health_status:index` (when auth is on).
    pub status_requires_auth: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ready_timeout_seconds: 0.08,
            status_window_seconds: 3600.0,
            status_requires_auth: true,
        }
    }
}

/// `[logging]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `auto` (JSON unless stderr is a terminal), `json` or `text`.
    pub format: String,
    /// Default level: `error`, `warn`, `info`, `debug` or `trace`. `RUST_LOG` overrides.
    pub level: String,
    /// Levels per module, e.g. `{ tasker_engine = "debug" }`.
    pub modules: BTreeMap<String, String>,
    /// Keys whose values are masked in logs and error output (case-insensitive, substring match).
    pub sensitive_keys: Vec<String>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: "auto".into(),
            level: "info".into(),
            modules: BTreeMap::new(),
            sensitive_keys: tasker_core::mask::DEFAULT_SENSITIVE_KEYS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Address the REST API listens on.
    pub bind: String,
    /// Largest request body; larger gets 413.
    pub body_limit_bytes: u64,
    /// Requests taking longer get 503.
    pub request_timeout_seconds: f64,
    /// Largest page a list returns.
    pub max_page_size: u32,
    /// Page size when none is asked for.
    pub default_page_size: u32,
    /// Level of the one log line per request: `info`, `debug` or `off`.
    pub request_log: String,
    /// GraphQL: deepest selection nesting accepted.
    pub graphql_max_depth: u32,
    /// GraphQL: highest query complexity accepted (fields, times page sizes).
    pub graphql_max_complexity: u32,
    /// GraphQL: answer introspection (`__schema`, `__type`).
    pub graphql_introspection: bool,
    /// GraphQL persisted queries: `automatic`, `registered` or `off`.
    pub graphql_persisted_queries: String,
    /// GraphQL: most client-sent documents kept by hash (automatic mode).
    pub graphql_persisted_cache_size: u32,
    /// GraphQL: path of the persisted query manifest (registered operations).
    pub graphql_persisted_manifest: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            bind: "127.0.0.1:8080".into(),
            body_limit_bytes: 1024 * 1024,
            request_timeout_seconds: 30.0,
            max_page_size: 100,
            default_page_size: 25,
            request_log: "info".into(),
            graphql_max_depth: 15,
            graphql_max_complexity: 5000,
            graphql_introspection: true,
            graphql_persisted_queries: "automatic".into(),
            graphql_persisted_cache_size: 1000,
            graphql_persisted_manifest: None,
        }
    }
}

/// `[telemetry]`: metrics and analytics (docs/OBSERVABILITY.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Serve `GET /tasker/metrics` (Prometheus text); off answers 503.
    pub metrics_enabled: bool,
    /// How long an analytics report is reused.
    pub analytics_cache_seconds: f64,
    /// Tasks (with their steps) an analytics report reads, at most.
    pub analytics_max_tasks: u32,
    /// Newest tasks of the period examined for a template filter, at most.
    pub analytics_scan_limit: u32,
    /// OTLP/HTTP traces URL of a collector (e.g. `http://127.0.0.1:4318/v1/traces`); traces are off without it.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            metrics_enabled: true,
            analytics_cache_seconds: 30.0,
            analytics_max_tasks: 10_000,
            analytics_scan_limit: 100_000,
            otlp_endpoint: None,
            service_name: "tasker".into(),
        }
    }
}

/// `[cache]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Tasks whose dependency analysis is kept in memory.
    pub analysis_capacity: u64,
    /// Longest an analysis stays cached.
    pub analysis_ttl_seconds: f64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            analysis_capacity: 1000,
            analysis_ttl_seconds: 300.0,
        }
    }
}

/// `[http]`: what `http` steps may reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// If non-empty, only these hosts (exact, or `*.example.com`).
    pub allowed_hosts: Vec<String>,
    /// Allow loopback, private and link-local addresses (unsafe in production).
    pub allow_internal: bool,
    /// Largest response body read.
    pub max_response_bytes: u64,
    /// Timeout of a request that sets none.
    pub default_timeout_seconds: f64,
    /// Cap on a server's Retry-After.
    pub max_retry_after_seconds: f64,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            allowed_hosts: Vec::new(),
            allow_internal: false,
            max_response_bytes: 4 * 1024 * 1024,
            default_timeout_seconds: 30.0,
            max_retry_after_seconds: 300.0,
        }
    }
}

/// The authentication modes of `auth.mode`.
pub const AUTH_MODES: &[&str] = &["none", "jwt", "api_key", "jwt+api_key"];

/// `[auth]`: who may call the API (see docs/SECURITY.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// `none` (everyone may do everything), `jwt`, `api_key` or `jwt+api_key`.
    pub mode: String,
    /// How long a looked-up API key (or its revocation) is remembered.
    pub key_cache_seconds: f64,
    /// The OpenAPI document and Swagger UI need an authenticated caller.
    pub docs_require_auth: bool,
    /// Bearer JWT verification.
    pub jwt: JwtSection,
    /// Role name → permissions, for the roles claim of a JWT.
    pub roles: BTreeMap<String, Vec<String>>,
}

impl AuthSection {
    /// Whether bearer JWTs are accepted.
    pub fn accepts_jwt(&self) -> bool {
        matches!(self.mode.as_str(), "jwt" | "jwt+api_key")
    }

    /// Whether API keys are accepted.
    pub fn accepts_api_keys(&self) -> bool {
        matches!(self.mode.as_str(), "api_key" | "jwt+api_key")
    }
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mode: "none".into(),
            key_cache_seconds: 5.0,
            docs_require_auth: false,
            jwt: JwtSection::default(),
            roles: BTreeMap::new(),
        }
    }
}

/// `[auth.jwt]`: exactly one of `secret`, `public_key_file`, `jwks_file`, `jwks_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSection {
    /// HMAC secret (HS256/384/512), at least 32 bytes.
    pub secret: Option<String>,
    /// PEM public key file (RS*, PS*, ES256/384, EdDSA; set `algorithm`).
    pub public_key_file: Option<String>,
    /// JSON Web Key Set file.
    pub jwks_file: Option<String>,
    /// JSON Web Key Set URL (fetched at start, again on an unknown `kid`).
    pub jwks_url: Option<String>,
    /// Algorithm of `secret` (default HS256) or `public_key_file` (required).
    pub algorithm: Option<String>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`.
    pub leeway_seconds: u64,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// Claim listing permissions (a space-separated `scope` is read too).
    pub permissions_claim: String,
    /// Claim listing role names (expanded through `[auth.roles]`).
    pub roles_claim: String,
}

impl Default for JwtSection {
    fn default() -> Self {
        JwtSection {
            secret: None,
            public_key_file: None,
            jwks_file: None,
            jwks_url: None,
            algorithm: None,
            leeway_seconds: 30,
            issuer: None,
            audience: None,
            permissions_claim: "permissions".into(),
            roles_claim: "roles".into(),
        }
    }
}

/// `[retention]`: finished tasks (complete, cancelled, error, resolved)
/// older than the window are deleted, with their steps, edges and
/// transitions, by a background pruner in every worker process (one at a
/// time across processes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    /// Runs the background pruner (false: keep everything, or prune with
    /// `tasker prune` only).
    pub enabled: bool,
    /// Finished tasks are kept this many days after they finished.
    pub finished_task_days: f64,
    /// Per-namespace windows in days, overriding `finished_task_days`,
    /// e.g. `{ billing = 365 }`.
    pub namespaces: BTreeMap<String, f64>,
    /// `jsonl:DIR`: each pruned task is first written as one JSON line to a
    /// gzip file in DIR (null = not archived).
    pub archive: Option<String>,
    /// How often the pruner looks for expired tasks.
    pub interval_seconds: f64,
    /// Tasks deleted per transaction (one statement each on PostgreSQL;
    /// the rows are finished tasks the hot path never locks).
    pub batch_size: u32,
    /// PostgreSQL: months of history partitions kept created ahead of now
    /// by every pruner pass and `tasker maintenance`.
    pub partition_months_ahead: u32,
    /// After each batch that is followed by another, the pruner rests this
    /// many times as long as the batch took (0: back to back), so that a
    /// backlog (a month of history, `tasker prune`) leaves the machine to
    /// the hot path most of the time.
    pub pause_ratio: f64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            enabled: true,
            finished_task_days: 30.0,
            namespaces: BTreeMap::new(),
            archive: None,
            interval_seconds: 300.0,
            batch_size: 10_000,
            partition_months_ahead: 3,
            pause_ratio: 3.0,
        }
    }
}

impl RetentionSection {
    /// The archive directory of `archive` (`jsonl:DIR`), if any.
    pub fn archive_dir(&self) -> Option<&str> {
        self.archive
            .as_deref()
            .and_then(|a| a.strip_prefix("jsonl:"))
    }
}
