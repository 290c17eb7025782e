//! `GET /tasker/analytics/performance` and `GET /tasker/analytics/bottlenecks`
//! (the reference's endpoints, §8.7): figures computed by the engine
//! (`tasker_engine::analytics`) from one bounded read of recent history,
//! reused for `telemetry.analytics_cache_seconds` per period and scope, so
//! a dashboard refreshing every few seconds costs one read per period.

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tasker_engine::analytics::{BottleneckReport, PerformanceReport, Scope};
use utoipa::{IntoParams, ToSchema};

/// Reports by cache key, each kept for the configured time.
#[derive(Clone)]
pub struct ReportCache {
    cache: moka::future::Cache<String, Arc<Value>>,
}

impl ReportCache {
    /// A cache keeping reports for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        ReportCache {
            cache: moka::future::Cache::builder()
                .max_capacity(256)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The report under `key`, computed by `compute` when absent (concurrent
    /// callers of one key share one computation); true when it was cached.
    async fn get(
        &self,
        key: String,
        compute: impl Future<Output = Result<Value, ApiError>>,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let computed = AtomicBool::new(false);
        let value = self
            .cache
            .try_get_with(key, async {
                computed.store(true, Ordering::Relaxed);
                compute.await.map(Arc::new)
            })
            .await
            .map_err(|e: Arc<ApiError>| (*e).clone())?;
        Ok((value, !computed.load(Ordering::Relaxed)))
    }
}

/// Whether an answer came from the cache.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheInfo {
    /// True when this report was computed by an earlier request.
    pub cached: bool,
    /// The report's key: kind, scope and period.
    pub cache_key: String,
    /// How long a report is reused.
    pub ttl_seconds: f64,
}

/// `GET /tasker/analytics/performance`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PerformanceAnswer {
    /// The report.
    #[serde(flatten)]
    pub report: PerformanceReport,
    /// Cache use.
    pub cache_info: CacheInfo,
}

/// `GET /tasker/analytics/bottlenecks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BottleneckAnswer {
    /// The report.
    #[serde(flatten)]
    pub report: BottleneckReport,
    /// Cache use.
    pub cache_info: CacheInfo,
}

/// Query parameters of `GET /tasker/analytics/performance`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PerformanceQuery {
    /// Hours back from now (tasks created since then); default 1, at most 2160 (90 days).
    #[param(exclusive_minimum = 0, maximum = 2160)]
    pub period_hours: Option<f64>,
}

/// Query parameters of `GET /tasker/analytics/bottlenecks`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BottlenecksQuery {
    /// Only tasks of this template namespace.
    pub namespace: Option<String>,
    /// Only tasks of this template name.
    pub name: Option<String>,
    /// Only tasks of this template version.
    pub version: Option<String>,
    /// Hours back from now (tasks created since then); default 24, at most 2160 (90 days).
    #[param(exclusive_minimum = 0, maximum = 2160)]
    pub period_hours: Option<f64>,
}

fn cache_info(st: &AppState, key: String, cached: bool) -> CacheInfo {
    CacheInfo {
        cached,
        cache_key: key,
        ttl_seconds: st.config().telemetry.analytics_cache_ttl.as_secs_f64(),
    }
}

fn to_value<T: Serialize>(report: &T) -> Result<Value, ApiError> {
    serde_json::to_value(report).map_err(|e| ApiError::internal(format!("report: {e}")))
}

/// An answer: the cached report with `cache_info` added.
fn answer(report: &Value, info: CacheInfo) -> Result<Json<Value>, ApiError> {
    let mut out = report.clone();
    if let Some(obj) = out.as_object_mut() {
        obj.insert("cache_info".into(), to_value(&info)?);
    }
    Ok(Json(out))
}

/// Throughput, completion and error rates, task durations and step
/// duration percentiles by handler kind, over the tasks created in the
/// last `period_hours`.
#[utoipa::path(
    get,
    path = "/tasker/analytics/performance",
    tag = "observability",
    params(PerformanceQuery),
    responses(
        (status = 200, description = "The performance report.", body = PerformanceAnswer),
        (status = 400, description = "Unknown or malformed parameter, or `period_hours` out of range (`details.field` names it).", body = ErrorBody),
    )
)]
pub async fn analytics_performance(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<PerformanceQuery>,
) -> Result<Json<Value>, ApiError> {
    let period = q.period_hours.unwrap_or(1.0);
    let key = format!("performance:{period}h");
    let limits = st.config().telemetry.analytics_limits;
    let tasker = st.tasker().clone();
    let (report, cached) = st
        .reports()
        .get(key.clone(), async move {
            to_value(&tasker.analytics_performance(period, limits).await?)
        })
        .await?;
    answer(&report, cache_info(&st, key, cached))
}

/// Where the tasks of a template (or all) spend their time: per step name
/// and handler, p50/p95/p99 durations, error rates and retries; the
/// slowest, most retried and most failing steps.
#[utoipa::path(
    get,
    path = "/tasker/analytics/bottlenecks",
    tag = "observability",
    params(BottlenecksQuery),
    responses(
        (status = 200, description = "The bottleneck report.", body = BottleneckAnswer),
        (status = 400, description = "Unknown or malformed parameter, or `period_hours` out of range (`details.field` names it).", body = ErrorBody),
    )
)]
pub async fn analytics_bottlenecks(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<BottlenecksQuery>,
) -> Result<Json<Value>, ApiError> {
    let period = q.period_hours.unwrap_or(24.0);
    let scope = Scope {
        namespace: q.namespace.filter(|s| !s.is_empty()),
        name: q.name.filter(|s| !s.is_empty()),
        version: q.version.filter(|s| !s.is_empty()),
    };
    let part = |v: &Option<String>| v.clone().unwrap_or_else(|| "*".into());
    // Debug-quoted parts: a value holding `:` cannot collide with another scope.
    let key = format!(
        "bottlenecks:{:?}:{:?}:{:?}:{period}h",
        part(&scope.namespace),
        part(&scope.name),
        part(&scope.version)
    );
    let limits = st.config().telemetry.analytics_limits;
    let tasker = st.tasker().clone();
    let (report, cached) = st
        .reports()
        .get(key.clone(), async move {
            to_value(&tasker.analytics_bottlenecks(scope, period, limits).await?)
        })
        .await?;
    answer(&report, cache_info(&st, key, cached))
}
