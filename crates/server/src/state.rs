//! Shared state of the HTTP layer: the application service, the server's
//! settings, the analysis cache, and probes the embedding program supplies
//! (is the engine running? how busy is the connection pool?).

use crate::cache::AnalysisCache;
use crate::probe::DbProbe;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasker_core::analysis::DependencyGraphWeights;
use tasker_engine::Tasker;
use tasker_store::{PoolStats, StoreStats};

/// Longest readiness budget accepted.
pub const MAX_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest `wait_seconds` of a claim (a long poll); the request timeout must
/// exceed it.
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(20);

/// Settings of the HTTP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address to listen on (used by the CLI; [`crate::serve`] takes a bound listener).
    pub bind: SocketAddr,
    /// Largest request body accepted; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// A request that takes longer gets 503 with code `timeout`.
    pub request_timeout: Duration,
    /// Largest `limit` a list accepts (larger is a 400, not silently clamped).
    pub max_page_size: u32,
    /// `limit` when the request gives none.
    pub default_page_size: u32,
    /// How long the readiness check waits for the database (default 80 ms,
    /// at most 10 s). A probe whose wait runs out still reports the database
    /// ready while a ping succeeded in the last
    /// [`RECENT_SUCCESS`](crate::probe::RECENT_SUCCESS) (see [`crate::probe`]).
    pub ready_timeout: Duration,
    /// Tasks whose dependency analysis is kept in memory.
    pub analysis_cache_capacity: u64,
    /// Longest time an analysis stays cached (it is also invalidated by store
    /// events and validated against the steps it was computed from).
    pub analysis_cache_ttl: Duration,
    /// Weights of the dependency analysis (reference §10.6 defaults).
    pub dependency_graph: DependencyGraphWeights,
    /// The level of the one log line written per request.
    pub request_log: RequestLog,
    /// `/health/status` counts the tasks created this long ago or later
    /// (and their steps), so old failures age out (default one hour).
    pub status_window: Duration,
    /// Metrics and analytics.
    pub telemetry: TelemetrySettings,
    /// Limits of the GraphQL endpoint.
    pub graphql: crate::graphql::GraphqlSettings,
}

/// Settings of `/tasker/metrics` and `/tasker/analytics/*`.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// Serve Prometheus metrics (installing the process-wide recorder).
    pub metrics_enabled: bool,
    /// How long an analytics report is reused.
    pub analytics_cache_ttl: Duration,
    /// Caps on the history an analytics report reads.
    pub analytics_limits: tasker_engine::analytics::AnalyticsLimits,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            metrics_enabled: true,
            analytics_cache_ttl: Duration::from_secs(30),
            analytics_limits: Default::default(),
        }
    }
}

/// How long `/health/status` reuses its counts: probes in a burst cost one
/// query, and the page is never older than this.
pub const STATUS_CACHE: Duration = Duration::from_secs(2);

/// At which level each request is logged (one line: method, route template,
/// status, latency, request and correlation ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestLog {
    /// At `info`, seen at the default log level (the default).
    #[default]
    Info,
    /// At `debug`: hidden at the default level, e.g. for busy health probes.
    Debug,
    /// Not at all.
    Off,
}

impl std::str::FromStr for RequestLog {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Ok(RequestLog::Info),
            "debug" => Ok(RequestLog::Debug),
            "off" => Ok(RequestLog::Off),
            other => Err(format!(
                "`{other}` is not a request log level (use info, debug or off)"
            )),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_page_size: 100,
            default_page_size: 25,
            ready_timeout: Duration::from_millis(80),
            analysis_cache_capacity: 1_000,
            analysis_cache_ttl: Duration::from_secs(300),
            dependency_graph: DependencyGraphWeights::default(),
            request_log: RequestLog::Info,
            status_window: Duration::from_secs(3600),
            telemetry: TelemetrySettings::default(),
            graphql: crate::graphql::GraphqlSettings::default(),
        }
    }
}

impl ServerConfig {
    /// Every problem with the settings, each naming its key (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.body_limit_bytes == 0 {
            out.push("body_limit_bytes: must be at least 1".to_string());
        }
        if self.request_timeout.is_zero() {
            out.push("request_timeout: must be positive".to_string());
        }
        if self.ready_timeout.is_zero() || self.ready_timeout > MAX_READY_TIMEOUT {
            out.push(format!(
                "ready_timeout: must be positive and at most {} s",
                MAX_READY_TIMEOUT.as_secs()
            ));
        }
        if self.request_timeout <= MAX_CLAIM_WAIT {
            out.push(format!(
                "request_timeout: must be longer than the longest claim wait ({} s), or long polls would time out",
                MAX_CLAIM_WAIT.as_secs()
            ));
        }
        if self.telemetry.analytics_cache_ttl.is_zero() {
            out.push("telemetry.analytics_cache_ttl: must be positive".to_string());
        }
        if self.status_window.is_zero() {
            out.push("status_window: must be positive".to_string());
        }
        if self.max_page_size == 0 {
            out.push("max_page_size: must be at least 1".to_string());
        }
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            out.push(format!(
                "default_page_size: must be between 1 and max_page_size ({})",
                self.max_page_size
            ));
        }
        out.extend(self.dependency_graph.problems());
        out.extend(self.graphql.problems());
        out
    }
}

/// What the readiness check reports about the step executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// This process executes steps and the worker is alive.
    Running,
    /// This process should execute steps, but the worker has stopped.
    Stopped,
    /// This process serves the API only (`--no-workers`): not a failure.
    Disabled,
}

/// Counts of `/health/status` and when (engine clock) they were read.
type CachedStats = (chrono::DateTime<chrono::Utc>, StoreStats);
type EngineProbe = Arc<dyn Fn() -> EngineState + Send + Sync>;
type PoolProbe = Arc<dyn Fn() -> Option<PoolStats> + Send + Sync>;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    tasker: Tasker,
    config: ServerConfig,
    cache: AnalysisCache,
    engine: EngineProbe,
    pool: PoolProbe,
    started: Instant,
    /// Shared with the background checks, and kept by the builders
    /// ([`AppState::with_engine_probe`] …), so what the start-up check
    /// learnt is never lost.
    probe: Arc<DbProbe>,
    /// The last counts of `/health/status` and when they were read; the
    /// lock also makes concurrent status calls share one query.
    status_cache: Arc<tokio::sync::Mutex<Option<CachedStats>>>,
    /// Who may call (default: authentication off).
    auth: Arc<crate::auth::Authenticator>,
    /// Analytics reports, reused for `telemetry.analytics_cache_ttl`.
    reports: crate::routes::analytics::ReportCache,
    /// The GraphQL schema, built once with the configured limits.
    graphql: crate::graphql::TaskerSchema,
}

impl AppState {
    /// State over `tasker` with `config`. The engine is reported as
    /// [`EngineState::Disabled`] until [`AppState::with_engine_probe`] says otherwise.
    ///
    /// Call inside a tokio runtime: the analysis cache subscribes to the
    /// store's events here (without a runtime, analyses are never cached).
    pub fn new(tasker: Tasker, config: ServerConfig) -> Self {
        let cache = AnalysisCache::new(
            tasker.store().as_ref(),
            config.analysis_cache_capacity,
            config.analysis_cache_ttl,
        );
        let store = tasker.store().clone();
        if config.telemetry.metrics_enabled {
            tasker_engine::metrics::install();
        }
        let reports =
            crate::routes::analytics::ReportCache::new(config.telemetry.analytics_cache_ttl);
        let graphql = crate::graphql::build_schema(&config.graphql);
        let state = AppState {
            inner: Arc::new(Inner {
                tasker,
                config,
                cache,
                engine: Arc::new(|| EngineState::Disabled),
                pool: Arc::new(move || store.pool_stats()),
                started: Instant::now(),
                probe: DbProbe::new(),
                status_cache: Arc::default(),
                auth: Arc::new(crate::auth::Authenticator::new(
                    crate::auth::AuthSettings::none(),
                )),
                reports,
                graphql,
            }),
        };
        // Off the request path: the first query on a fresh pool can take
        // longer than the readiness budget (PostgreSQL: ~90 ms for the first
        // `migrations_applied`).
        state
            .inner
            .probe
            .warm_up(state.inner.tasker.store().clone());
        state
    }

    /// Tells the readiness check how to see whether the engine runs.
    pub fn with_engine_probe(
        self,
        probe: impl Fn() -> EngineState + Send + Sync + 'static,
    ) -> Self {
        self.map_inner(|i| i.engine = Arc::new(probe))
    }

    /// Replaces how the status page reads the connection pool's usage
    /// (by default, [`tasker_store::Store::pool_stats`]).
    pub fn with_pool_probe(
        self,
        probe: impl Fn() -> Option<PoolStats> + Send + Sync + 'static,
    ) -> Self {
        self.map_inner(|i| i.pool = Arc::new(probe))
    }

    /// Authenticates requests as `settings` say (by default nobody is asked
    /// for credentials).
    pub fn with_auth(self, settings: crate::auth::AuthSettings) -> Self {
        self.map_inner(|i| i.auth = Arc::new(crate::auth::Authenticator::new(settings)))
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &crate::auth::Authenticator {
        &self.inner.auth
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        // Builders run before the state is shared; if it already is, rebuild.
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                tasker: shared.tasker.clone(),
                config: shared.config.clone(),
                cache: shared.cache.clone(),
                engine: shared.engine.clone(),
                pool: shared.pool.clone(),
                started: shared.started,
                probe: shared.probe.clone(),
                status_cache: shared.status_cache.clone(),
                auth: shared.auth.clone(),
                reports: shared.reports.clone(),
                graphql: shared.graphql.clone(),
            },
        };
        f(&mut inner);
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// The application service.
    pub fn tasker(&self) -> &Tasker {
        &self.inner.tasker
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The dependency-analysis cache.
    pub fn cache(&self) -> &AnalysisCache {
        &self.inner.cache
    }

    /// The GraphQL schema.
    pub fn graphql(&self) -> &crate::graphql::TaskerSchema {
        &self.inner.graphql
    }

    pub(crate) fn engine_state(&self) -> EngineState {
        (self.inner.engine)()
    }

    pub(crate) fn pool_status(&self) -> Option<PoolStats> {
        (self.inner.pool)()
    }

    /// The analytics report cache.
    pub(crate) fn reports(&self) -> &crate::routes::analytics::ReportCache {
        &self.inner.reports
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// The counts of `/health/status` over the tasks created since
    /// `since`, reused for [`STATUS_CACHE`].
    pub(crate) async fn window_stats(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<StoreStats, tasker_store::StoreError> {
        // Aged by the engine's clock, like the window itself.
        let now = self.inner.tasker.now();
        let fresh = chrono::Duration::from_std(STATUS_CACHE).unwrap_or_default();
        let mut cache = self.inner.status_cache.lock().await;
        if let Some((at, stats)) = cache.as_ref()
            && now >= *at
            && now - *at < fresh
        {
            return Ok(stats.clone());
        }
        let stats = self.inner.tasker.store().stats_since(since).await?;
        *cache = Some((now, stats.clone()));
        Ok(stats)
    }

    /// The readiness probe's database state.
    pub(crate) fn probe(&self) -> &Arc<DbProbe> {
        &self.inner.probe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start-up migration check is not lost when the state is rebuilt
    /// by a builder right after it was made (as `tasker serve` does): the
    /// first probes find the answer instead of querying within their budget.
    #[tokio::test]
    async fn the_start_up_check_survives_the_builders() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = tasker_store_sqlite::SqliteStore::connect(&url)
            .await
            .unwrap();
        let tasker = Tasker::builder(Arc::new(store)).build().unwrap();
        let state = AppState::new(tasker, ServerConfig::default())
            .with_engine_probe(|| EngineState::Running)
            .with_pool_probe(|| None);
        tokio::time::timeout(Duration::from_secs(10), state.probe().migrations_seen())
            .await
            .expect("the background check never reached the rebuilt state");
        assert!(state.probe().migrations_known_ok());
    }
}
