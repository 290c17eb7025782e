//! `/tasker/health`: liveness, readiness and a status page.
//!
//! Every answer carries `Cache-Control: no-cache, no-store, must-revalidate`,
//! `Pragma: no-cache` and `Expires: 0`, so no proxy serves a stale verdict.
//!
//! - **live** touches nothing (no database, no locks): 200 while the process
//!   can answer HTTP at all.
//! - **ready** checks, within [`ServerConfig::ready_timeout`](crate::ServerConfig),
//!   that the database answers a ping (or answered one in the last 10 s while
//!   the pool is busy, see [`crate::probe`]) and has every migration applied, and
//!   that the engine runs (when this process is meant to run it). 200 when
//!   all pass, else 503; the body is the per-check report either way. (The
//!   reference always answered 503 because its controller indexed a boolean
//!   as a hash, Q5.)
//! - **status** counts tasks and steps by state and reports pool usage; it
//!   is unhealthy (503) by the reference's rules (§8.6): pool utilisation
//!   above 90 %, more than half the tasks in `error`, or more than half the
//!   steps in `error`; and, here, when the engine should run but has stopped.
//!   The counts cover the tasks created in the last
//!   [`ServerConfig::status_window`](crate::ServerConfig) (one hour by
//!   default, as the reference's rates did) and their steps, read with one
//!   bounded index range and reused for [`STATUS_CACHE`](crate::state::STATUS_CACHE):
//!   old failures age out instead of keeping the page red forever.

use crate::probe::{DbVerdict, RECENT_SUCCESS};
use crate::state::{AppState, EngineState};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, EXPIRES, PRAGMA};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tasker_store::Backend;
use utoipa::ToSchema;

/// Headers that keep health answers out of every cache.
const NO_CACHE: [(axum::http::HeaderName, &str); 3] = [
    (CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
    (PRAGMA, "no-cache"),
    (EXPIRES, "0"),
];

fn respond<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, NO_CACHE, Json(body)).into_response()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `GET /tasker/health/live`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always true.
    pub alive: bool,
    /// Always `tasker`.
    pub service: String,
    /// Server version.
    pub version: String,
    /// Seconds since the server state was built.
    pub uptime_seconds: f64,
    /// Now.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub timestamp: DateTime<Utc>,
}

/// Answers 200 without touching the database.
#[utoipa::path(
    get,
    path = "/tasker/health/live",
    tag = "health",
    responses((status = 200, description = "The process answers.", body = Liveness))
)]
pub async fn health_live(State(st): State<AppState>) -> Response {
    respond(
        StatusCode::OK,
        Liveness {
            alive: true,
            service: "tasker".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: st.uptime().as_secs_f64(),
            timestamp: Utc::now(),
        },
    )
}

/// The outcome of one readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `healthy`, `unhealthy` or `disabled` (not required here).
    pub status: String,
    /// What was found.
    pub message: String,
    /// How long the check took.
    pub response_time_ms: Option<f64>,
}

impl Check {
    fn healthy(message: impl Into<String>, took: Option<Duration>) -> Self {
        Check {
            status: "healthy".into(),
            message: message.into(),
            response_time_ms: took.map(ms),
        }
    }

    fn unhealthy(message: impl Into<String>, took: Option<Duration>) -> Self {
        Check {
            status: "unhealthy".into(),
            message: message.into(),
            response_time_ms: took.map(ms),
        }
    }

    fn ok(&self) -> bool {
        self.status != "unhealthy"
    }
}

/// The readiness checks.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// The database answers a ping.
    pub database: Check,
    /// Every embedded migration is applied.
    pub migrations: Check,
    /// The step executor runs (or is disabled on purpose).
    pub engine: Check,
}

/// `GET /tasker/health/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// All checks passed.
    pub ready: bool,
    /// `System is ready` or `System is not ready`.
    pub message: String,
    /// Per-check detail.
    pub checks: ReadyChecks,
    /// Names of the failed checks.
    pub failed_checks: Vec<String>,
    /// Now.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub timestamp: DateTime<Utc>,
    /// Time spent checking.
    pub check_duration_ms: f64,
}

/// Checks the database, the migrations and the engine.
#[utoipa::path(
    get,
    path = "/tasker/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready: every check passed.", body = Readiness),
        (status = 503, description = "Not ready: `failed_checks` names the failures; same body shape.", body = Readiness),
    )
)]
pub async fn health_ready(State(st): State<AppState>) -> Response {
    let started = Instant::now();
    let limit = st.config().ready_timeout;
    // One budget for both database checks.
    let deadline = tokio::time::Instant::now() + limit;
    let store = st.tasker().store().clone();
    let too_slow = || format!("no answer within {} ms", limit.as_millis());
    let t = Instant::now();
    let database = match st.probe().check(store.clone(), deadline).await {
        DbVerdict::Answered(o) => match o.result {
            Ok(()) => Check::healthy("database answered a ping", Some(o.took)),
            Err(e) => Check::unhealthy(format!("ping failed: {e}"), Some(o.took)),
        },
        // A busy pool is not a down database: see `crate::probe`.
        DbVerdict::Slow(Some(o)) if o.result.is_ok() && o.at.elapsed() < RECENT_SUCCESS => {
            Check::healthy(
                format!(
                    "database busy: {}; it answered a ping {} ms ago",
                    too_slow(),
                    o.at.elapsed().as_millis()
                ),
                Some(t.elapsed()),
            )
        }
        DbVerdict::Slow(Some(o)) if o.result.is_err() => Check::unhealthy(
            format!("ping failed: {}", o.result.err().unwrap_or_default()),
            Some(t.elapsed()),
        ),
        DbVerdict::Slow(_) => Check::unhealthy(too_slow(), Some(t.elapsed())),
    };
    let migrations = if st.probe().migrations_known_ok() {
        Check::healthy("all migrations applied", None)
    } else if !database.ok() {
        Check::unhealthy("not checked: the database did not answer", None)
    } else {
        let t = Instant::now();
        match st.probe().migrations(store, deadline).await {
            Ok(Some(true)) => Check::healthy("all migrations applied", Some(t.elapsed())),
            Ok(Some(false)) => Check::unhealthy(
                "migrations are pending: run `tasker migrate`",
                Some(t.elapsed()),
            ),
            Ok(None) => Check::unhealthy(too_slow(), Some(t.elapsed())),
            Err(e) => Check::unhealthy(format!("cannot read migrations: {e}"), Some(t.elapsed())),
        }
    };
    let engine = match st.engine_state() {
        EngineState::Running => Check::healthy("executing steps", None),
        EngineState::Stopped => Check::unhealthy("the step executor has stopped", None),
        EngineState::Disabled => Check {
            status: "disabled".into(),
            message: "this process serves the API only (--no-workers)".into(),
            response_time_ms: None,
        },
    };
    let failed_checks: Vec<String> = [
        ("database", &database),
        ("migrations", &migrations),
        ("engine", &engine),
    ]
    .iter()
    .filter(|(_, c)| !c.ok())
    .map(|(n, _)| n.to_string())
    .collect();
    let ready = failed_checks.is_empty();
    respond(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Readiness {
            ready,
            message: if ready {
                "System is ready"
            } else {
                "System is not ready"
            }
            .to_string(),
            checks: ReadyChecks {
                database,
                migrations,
                engine,
            },
            failed_checks,
            timestamp: Utc::now(),
            check_duration_ms: ms(started.elapsed()),
        },
    )
}

/// Counts by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateCounts {
    /// All of them.
    pub total: i64,
    /// By state name (every state listed).
    pub by_state: BTreeMap<String, i64>,
}

/// Retry figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryCounts {
    /// Pending steps that failed before and will run again.
    pub retrying: i64,
    /// Steps in `error` (no automatic attempts left).
    pub exhausted: i64,
}

/// Task, step and retry counts over the tasks created in the last
/// `window_seconds` (`health.status_window_seconds`) and their steps.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusMetrics {
    /// The window counted, in seconds.
    pub window_seconds: f64,
    /// Tasks.
    pub tasks: StateCounts,
    /// Steps.
    pub steps: StateCounts,
    /// Retries.
    pub retries: RetryCounts,
    /// Tasks in `error` as a percentage of all tasks, two decimals.
    pub task_error_rate: f64,
    /// Steps in `error` as a percentage of all steps, two decimals.
    pub step_error_rate: f64,
}

/// Connection pool usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolView {
    /// Open connections.
    pub size: u32,
    /// Open and idle.
    pub idle: u32,
    /// In use.
    pub active: u32,
    /// Most the pool may open.
    pub max: u32,
    /// `active / max` as a percentage, two decimals.
    pub utilization_percent: f64,
}

/// The database.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseView {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Pool usage, when the backend exposes it.
    pub pool: Option<PoolView>,
    /// Upkeep problems (PostgreSQL autovacuum off, a bloated ready-steps
    /// index), each with what to do. Warnings do not make the status
    /// unhealthy: the engine still works, only slower.
    pub warnings: Vec<String>,
}

/// `GET /tasker/health/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemStatus {
    /// True unless a rule below failed.
    pub healthy: bool,
    /// `healthy`, `unhealthy`, or `error` when the counts could not be read.
    pub status: String,
    /// Why it is unhealthy (empty when healthy).
    pub reasons: Vec<String>,
    /// Counts (absent when they could not be read).
    pub metrics: Option<StatusMetrics>,
    /// The database.
    pub database: DatabaseView,
    /// `running`, `stopped` or `disabled`.
    pub engine: String,
    /// Seconds since the server state was built.
    pub uptime_seconds: f64,
    /// Now.
    #[serde(serialize_with = "tasker_core::time::micros")]
    pub timestamp: DateTime<Utc>,
    /// Time spent.
    pub generation_duration_ms: f64,
}

fn rate(part: i64, total: i64) -> f64 {
    if total <= 0 {
        0.0
    } else {
        (part as f64 / total as f64 * 10_000.0).round() / 100.0
    }
}

/// Counts tasks and steps by state; unhealthy by the reference's rules.
#[utoipa::path(
    get,
    path = "/tasker/health/status",
    tag = "health",
    responses(
        (status = 200, description = "Healthy.", body = SystemStatus),
        (status = 503, description = "Unhealthy (`reasons` says why) or the counts could not be read (`status: error`).", body = SystemStatus),
    )
)]
pub async fn health_status(State(st): State<AppState>) -> Response {
    let started = Instant::now();
    let store = st.tasker().store();
    let pool = st.pool_status().map(|p| {
        let active = p.size.saturating_sub(p.idle);
        PoolView {
            size: p.size,
            idle: p.idle,
            active,
            max: p.max,
            utilization_percent: rate(i64::from(active), i64::from(p.max)),
        }
    });
    let engine = match st.engine_state() {
        EngineState::Running => "running",
        EngineState::Stopped => "stopped",
        EngineState::Disabled => "disabled",
    };
    let mut reasons = Vec::new();
    if let Some(p) = &pool
        && p.utilization_percent > 90.0
    {
        reasons.push(format!(
            "connection pool {}% used (limit 90%)",
            p.utilization_percent
        ));
    }
    if engine == "stopped" {
        reasons.push("the step executor has stopped".to_string());
    }
    let window = st.config().status_window;
    let since = st.tasker().now()
        - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1));
    let (metrics, errored) = match st.window_stats(since).await {
        Ok(s) => {
            let total = |m: &BTreeMap<String, i64>| m.values().sum::<i64>();
            let (tasks_total, steps_total) = (total(&s.tasks_by_state), total(&s.steps_by_state));
            let task_errors = s.tasks_by_state.get("error").copied().unwrap_or(0);
            let step_errors = s.steps_by_state.get("error").copied().unwrap_or(0);
            let m = StatusMetrics {
                window_seconds: window.as_secs_f64(),
                task_error_rate: rate(task_errors, tasks_total),
                step_error_rate: rate(step_errors, steps_total),
                tasks: StateCounts {
                    total: tasks_total,
                    by_state: s.tasks_by_state,
                },
                steps: StateCounts {
                    total: steps_total,
                    by_state: s.steps_by_state,
                },
                retries: RetryCounts {
                    retrying: s.steps_retrying,
                    exhausted: step_errors,
                },
            };
            if m.task_error_rate > 50.0 {
                reasons.push(format!(
                    "{}% of tasks created in the last {} s are in error (limit 50%)",
                    m.task_error_rate, m.window_seconds
                ));
            }
            if m.step_error_rate > 50.0 {
                reasons.push(format!(
                    "{}% of the steps of tasks created in the last {} s are in error (limit 50%)",
                    m.step_error_rate, m.window_seconds
                ));
            }
            (Some(m), false)
        }
        Err(e) => {
            tracing::warn!(error = %e, "status check could not read the store");
            reasons.push(format!("status check failed: {e}"));
            (None, true)
        }
    };
    let warnings = match store.storage_health().await {
        Ok(h) => h.warnings,
        Err(e) => vec![format!("cannot read the database upkeep state: {e}")],
    };
    let healthy = reasons.is_empty();
    respond(
        if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        SystemStatus {
            healthy,
            status: if errored {
                "error"
            } else if healthy {
                "healthy"
            } else {
                "unhealthy"
            }
            .to_string(),
            reasons,
            metrics,
            database: DatabaseView {
                backend: match store.backend() {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres => "postgres",
                }
                .to_string(),
                pool,
                warnings,
            },
            engine: engine.to_string(),
            uptime_seconds: st.uptime().as_secs_f64(),
            timestamp: Utc::now(),
            generation_duration_ms: ms(started.elapsed()),
        },
    )
}
