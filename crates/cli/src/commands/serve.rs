//! `tasker serve`: the REST API (`tasker-server`), executing steps in the
//! same process unless `--no-workers`.
//!
//! Shutdown on SIGINT / SIGTERM is in two stages: the listener stops
//! accepting and in-flight requests finish, then the engine stops claiming
//! and lets running handlers finish (up to `engine.shutdown_timeout_seconds`).

use super::EngineArgs;
use crate::logging::{self, Format};
use crate::settings::{self, Globals};
use crate::{connect, signal};
use anyhow::Context;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tasker_auth::jwt::KeyMaterial;
use tasker_auth::{Grant, Grants};
use tasker_config::TaskerConfig;
use tasker_engine::WorkerHandle;
use tasker_server::auth::{AuthSettings, JwtKeys};
use tasker_server::jwks::{JwksSource, JwtOptions};
use tasker_server::{AppState, EngineState, ServerConfig};

/// Arguments of `tasker serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on, e.g. `127.0.0.1:8080` or `0.0.0.0:80` (`server.bind`).
    #[arg(long)]
    pub bind: Option<String>,
    /// Serve the API only; steps are executed by `tasker worker` processes (`engine.run_workers = false`).
    #[arg(long)]
    pub no_workers: bool,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Serves until SIGINT / SIGTERM.
pub async fn run(
    globals: &Globals,
    format: Option<Format>,
    args: Args,
) -> anyhow::Result<ExitCode> {
    let mut flags = args.engine.flags();
    if let Some(bind) = &args.bind {
        flags.push(("server.bind", Value::from(bind.clone()), "--bind"));
    }
    if args.no_workers {
        flags.push(("engine.run_workers", Value::from(false), "--no-workers"));
    }
    let loaded = settings::load(globals, flags)?;
    logging::init_traced(
        format,
        Some(&loaded.config.logging),
        "info",
        Some(&loaded.config.telemetry),
    );
    let c = &loaded.config;
    let server = server_config(c).await?;
    let auth = auth_settings(c).await?;
    let tasker = settings::start(&loaded, &args.engine.templates).await?;
    // The event pruner and the webhook dispatcher run with or without workers.
    let services = settings::start_services(&tasker).await?;
    let listener = tokio::net::TcpListener::bind(server.bind)
        .await
        .with_context(|| format!("cannot listen on {}", server.bind))?;
    let local = listener.local_addr()?;

    // The handle lives behind a lock so the readiness probe can look at it
    // while this function keeps the right to shut it down.
    let worker: Arc<Mutex<Option<WorkerHandle>>> =
        Arc::new(Mutex::new(c.engine.run_workers.then(|| tasker.start())));
    let auth_mode = c.auth.mode.clone();
    let mut state = AppState::new(tasker.clone(), server).with_auth(auth);
    if c.engine.run_workers {
        let probe = worker.clone();
        state = state.with_engine_probe(move || match lock(&probe).as_ref() {
            Some(w) if w.is_running() => EngineState::Running,
            _ => EngineState::Stopped,
        });
    }
    tracing::info!(
        address = %local,
        database = %connect::redact(&c.database.url),
        workers = c.engine.run_workers,
        auth = %auth_mode,
        "tasker serve listening: http://{local}/tasker (API docs at /tasker/docs/, dashboard at /tasker/ui/)"
    );
    tasker_server::serve_with(
        listener,
        state,
        tasker_ui::routes(),
        signal::shutdown_signal(),
    )
    .await
    .context("the HTTP server failed")?;
    tracing::info!("HTTP server stopped; stopping the engine");
    let deadline = tokio::time::Instant::now() + tasker.config().shutdown_timeout;
    services.stop();
    let handle = lock(&worker).take();
    let code = match handle {
        Some(w) => super::worker::exit_code(w.shutdown().await),
        None => ExitCode::SUCCESS,
    };
    services.shutdown_by(deadline).await;
    Ok(code)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The server settings of a configuration, every problem named by its key
/// (also run by `tasker config check`).
pub(crate) async fn server_config(c: &TaskerConfig) -> Result<ServerConfig, settings::Problems> {
    let mut problems = Vec::new();
    let secs = |key: &str, v: f64, problems: &mut Vec<String>| match Duration::try_from_secs_f64(v)
    {
        Ok(d) if !d.is_zero() => d,
        _ => {
            problems.push(format!(
                "{key}: must be a positive number of seconds (got {v})"
            ));
            Duration::from_secs(1)
        }
    };
    let bind = match tokio::net::lookup_host(c.server.bind.as_str()).await {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => a,
            None => {
                problems.push(format!(
                    "server.bind: `{}` resolves to no address",
                    c.server.bind
                ));
                ServerConfig::default().bind
            }
        },
        Err(e) => {
            problems.push(format!(
                "server.bind: `{}` is not a HOST:PORT address: {e}",
                c.server.bind
            ));
            ServerConfig::default().bind
        }
    };
    let config = ServerConfig {
        bind,
        body_limit_bytes: usize::try_from(c.server.body_limit_bytes).unwrap_or(usize::MAX),
        request_timeout: secs(
            "server.request_timeout_seconds",
            c.server.request_timeout_seconds,
            &mut problems,
        ),
        max_page_size: c.server.max_page_size,
        default_page_size: c.server.default_page_size,
        graphql: tasker_server::graphql::GraphqlSettings {
            max_depth: c.server.graphql_max_depth as usize,
            max_complexity: c.server.graphql_max_complexity as usize,
            introspection: c.server.graphql_introspection,
            persisted_queries: tasker_server::graphql::persisted::PersistedMode::parse(
                &c.server.graphql_persisted_queries,
            )
            .unwrap_or_else(|| {
                problems.push(format!(
                    "server.graphql_persisted_queries: `{}` is not automatic, registered or off",
                    c.server.graphql_persisted_queries
                ));
                Default::default()
            }),
            persisted_cache_size: c.server.graphql_persisted_cache_size as usize,
            manifest: match &c.server.graphql_persisted_manifest {
                None => Default::default(),
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read it: {e}"))
                    .and_then(|text| tasker_server::graphql::persisted::Manifest::from_json(&text))
                    .unwrap_or_else(|e| {
                        problems.push(format!("server.graphql_persisted_manifest: `{path}`: {e}"));
                        Default::default()
                    }),
            },
        },
        ready_timeout: secs(
            "health.ready_timeout_seconds",
            c.health.ready_timeout_seconds,
            &mut problems,
        ),
        analysis_cache_capacity: c.cache.analysis_capacity,
        analysis_cache_ttl: secs(
            "cache.analysis_ttl_seconds",
            c.cache.analysis_ttl_seconds,
            &mut problems,
        ),
        dependency_graph: c.dependency_graph.clone(),
        status_window: secs(
            "health.status_window_seconds",
            c.health.status_window_seconds,
            &mut problems,
        ),
        request_log: c.server.request_log.parse().unwrap_or_else(|e| {
            problems.push(format!("server.request_log: {e}"));
            tasker_server::RequestLog::Info
        }),
        telemetry: tasker_server::TelemetrySettings {
            metrics_enabled: c.telemetry.metrics_enabled,
            analytics_cache_ttl: secs(
                "telemetry.analytics_cache_seconds",
                c.telemetry.analytics_cache_seconds,
                &mut problems,
            ),
            analytics_limits: tasker_engine::analytics::AnalyticsLimits {
                max_tasks: c.telemetry.analytics_max_tasks,
                scan_limit: c.telemetry.analytics_scan_limit,
            },
        },
    };
    problems.extend(config.problems());
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(settings::Problems(problems))
    }
}

/// The authentication of a configuration: reads the key file or JWKS (file
/// or URL) and builds the verifier, every problem named by its key (also
/// run by `tasker config check`).
pub(crate) async fn auth_settings(c: &TaskerConfig) -> Result<AuthSettings, settings::Problems> {
    let a = &c.auth;
    let mut problems = Vec::new();
    let mut roles = std::collections::BTreeMap::new();
    for (role, perms) in &a.roles {
        let mut grants = Vec::new();
        for p in perms {
            match Grant::parse(p) {
                Ok(g) => grants.push(g),
                Err(e) => problems.push(format!("auth.roles.{role}: {e}")),
            }
        }
        roles.insert(role.clone(), Grants::new(grants));
    }
    let j = &a.jwt;
    let options = JwtOptions {
        leeway_seconds: j.leeway_seconds,
        issuer: j.issuer.clone(),
        audience: j.audience.clone(),
        permissions_claim: j.permissions_claim.clone(),
        roles_claim: j.roles_claim.clone(),
        roles,
    };
    let read = |key: &str, path: &str, problems: &mut Vec<String>| match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            problems.push(format!("{key}: cannot read `{path}`: {e}"));
            None
        }
    };
    let mut jwt = None;
    if a.accepts_jwt() {
        let alg = j.algorithm.as_deref();
        let built = if let Some(secret) = &j.secret {
            Some(
                options
                    .verifier(KeyMaterial::Secret(secret.as_bytes()), alg)
                    .map_err(|e| ("auth.jwt.secret", e.to_string())),
            )
        } else if let Some(path) = &j.public_key_file {
            read("auth.jwt.public_key_file", path, &mut problems).map(|pem| {
                options
                    .verifier(KeyMaterial::Pem(&pem), alg)
                    .map_err(|e| ("auth.jwt.public_key_file", format!("`{path}`: {e}")))
            })
        } else if let Some(path) = &j.jwks_file {
            read("auth.jwt.jwks_file", path, &mut problems).map(|bytes| {
                serde_json::from_slice::<tasker_auth::jwt::JwkSet>(&bytes)
                    .map_err(|e| {
                        (
                            "auth.jwt.jwks_file",
                            format!("`{path}` is not a JSON Web Key Set: {e}"),
                        )
                    })
                    .and_then(|set| {
                        options
                            .verifier(KeyMaterial::Jwks(&set), None)
                            .map_err(|e| ("auth.jwt.jwks_file", format!("`{path}`: {e}")))
                    })
            })
        } else {
            None
        };
        match built {
            Some(Ok(v)) => jwt = Some(JwtKeys::Fixed(v)),
            Some(Err((key, e))) => problems.push(format!("{key}: {e}")),
            None => {}
        }
        if let Some(url) = &j.jwks_url {
            match JwksSource::connect(url, options.clone()).await {
                Ok(source) => jwt = Some(JwtKeys::Url(source)),
                Err(e) => problems.push(format!("auth.jwt.jwks_url: {e}")),
            }
        }
        if jwt.is_none() && problems.is_empty() {
            problems.push(
                "auth.jwt: no key source (secret, public_key_file, jwks_file or jwks_url)".into(),
            );
        }
    }
    let key_cache_ttl = match Duration::try_from_secs_f64(a.key_cache_seconds) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            problems.push(format!(
                "auth.key_cache_seconds: must be a positive number of seconds (got {})",
                a.key_cache_seconds
            ));
            Duration::from_secs(5)
        }
    };
    if !problems.is_empty() {
        return Err(settings::Problems(problems));
    }
    Ok(AuthSettings {
        jwt,
        api_keys: a.accepts_api_keys(),
        key_cache_ttl,
        status_requires_auth: c.health.status_requires_auth,
        docs_require_auth: a.docs_require_auth,
    })
}
