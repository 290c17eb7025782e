//! Analytics over stored history: throughput, completion and error rates,
//! step duration percentiles by step and handler, slowest and most retried
//! steps (the reference's `/analytics/performance` and
//! `/analytics/bottlenecks`, §8.7).
//!
//! The figures come from one bounded read ([`Store::history_sample`]): the
//! newest tasks created in the period (at most
//! [`AnalyticsLimits::max_tasks`], among at most
//! [`AnalyticsLimits::scan_limit`] examined) with their steps. A step's
//! duration is its last attempt's: `completed_at - last_attempted_at` of a
//! `complete` step; a task's is `completed_at - created_at`. When a cap cut
//! the sample, the report says so (`sample.truncated`) and the figures are
//! those of the newest tasks.

mod compute;
mod report;

pub use report::*;

use crate::error::EngineError;
use crate::service::Tasker;
use chrono::Duration;
use tasker_store::HistoryQuery;

/// Caps on one analytics read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyticsLimits {
    /// Tasks (with all their steps) a report is computed from, at most.
    pub max_tasks: u32,
    /// Newest tasks of the period examined for a template filter, at most.
    pub scan_limit: u32,
}

impl Default for AnalyticsLimits {
    fn default() -> Self {
        AnalyticsLimits {
            max_tasks: 10_000,
            scan_limit: 100_000,
        }
    }
}

/// Which tasks a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Scope {
    /// Template namespace (all when absent).
    pub namespace: Option<String>,
    /// Template name (all when absent).
    pub name: Option<String>,
    /// Template version (all when absent).
    pub version: Option<String>,
}

impl Tasker {
    /// System performance over the last `period_hours`.
    pub async fn analytics_performance(
        &self,
        period_hours: f64,
        limits: AnalyticsLimits,
    ) -> Result<PerformanceReport, EngineError> {
        let (query, since) = self.history_query(&Scope::default(), period_hours, limits)?;
        let rows = self.store().history_sample(&query).await?;
        Ok(compute::performance(
            &rows,
            since,
            self.now(),
            period_hours,
            limits,
        ))
    }

    /// Where the tasks of `scope` spend their time and retries over the
    /// last `period_hours`.
    pub async fn analytics_bottlenecks(
        &self,
        scope: Scope,
        period_hours: f64,
        limits: AnalyticsLimits,
    ) -> Result<BottleneckReport, EngineError> {
        let (query, since) = self.history_query(&scope, period_hours, limits)?;
        let rows = self.store().history_sample(&query).await?;
        Ok(compute::bottlenecks(
            &rows,
            scope,
            since,
            self.now(),
            period_hours,
            limits,
        ))
    }

    fn history_query(
        &self,
        scope: &Scope,
        period_hours: f64,
        limits: AnalyticsLimits,
    ) -> Result<(HistoryQuery, chrono::DateTime<chrono::Utc>), EngineError> {
        if !(period_hours.is_finite() && period_hours > 0.0 && period_hours <= MAX_PERIOD_HOURS) {
            return Err(EngineError::InvalidField {
                field: "period_hours".into(),
                message: format!(
                    "must be a number of hours above 0 and at most {MAX_PERIOD_HOURS}"
                ),
            });
        }
        let period = Duration::milliseconds((period_hours * 3_600_000.0).round() as i64);
        let since = self.now() - period;
        Ok((
            HistoryQuery {
                since,
                namespace: scope.namespace.clone(),
                name: scope.name.clone(),
                version: scope.version.clone(),
                max_tasks: limits.max_tasks,
                scan_limit: limits.scan_limit,
            },
            since,
        ))
    }
}

/// The longest period a report may cover (90 days).
pub const MAX_PERIOD_HOURS: f64 = 24.0 * 90.0;
