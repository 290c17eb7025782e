//! Rules across keys and environments, checked after the types are right.
//!
//! Checks that need the outside world (database reachable and migrated,
//! template directories valid) run in the `tasker` binary, which can open
//! stores; see `tasker config check`.

use crate::database::DatabaseKind;
use crate::load::{ConfigError, Loaded};
use crate::rules;
use serde_json::Value;
use std::io::IsTerminal;

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

/// Every rule violation of a loaded configuration.
pub fn problems(loaded: &Loaded) -> Vec<ConfigError> {
    let c = &loaded.config;
    let mut out = Vec::new();
    let mut bad = |key: &str, value: Value, message: &str, fix: &str| {
        out.push(ConfigError {
            key: key.to_string(),
            source: loaded.source_of(key),
            value: Some(value.to_string()),
            message: message.to_string(),
            fix: fix.to_string(),
        });
    };

    if !["development", "test", "production"].contains(&c.environment.as_str()) {
        bad(
            "environment",
            Value::from(c.environment.clone()),
            "must be development, test or production",
            "pick one of the three",
        );
    }

    // database
    let url = &c.database.url;
    let kind = crate::database::database_kind(url);
    let is_pg = kind == Ok(DatabaseKind::Postgres);
    let is_sqlite = kind == Ok(DatabaseKind::Sqlite);
    if let Err(why) = &kind {
        bad(
            "database.url",
            Value::from(crate::load::redact_url(url)),
            why,
            crate::database::DATABASE_URL_FIX,
        );
    }
    if c.database.max_connections < 2 {
        bad(
            "database.max_connections",
            c.database.max_connections.into(),
            "must be at least 2 (one writer, one reader)",
            "set 10 or more",
        );
    }
    if c.database.min_connections > c.database.max_connections {
        bad(
            "database.min_connections",
            c.database.min_connections.into(),
            "is larger than database.max_connections",
            "lower it or raise max_connections",
        );
    }
    positive(
        &mut bad,
        "database.acquire_timeout_seconds",
        c.database.acquire_timeout_seconds,
    );
    if !["normal", "full"].contains(&c.database.sqlite_synchronous.as_str()) {
        bad(
            "database.sqlite_synchronous",
            Value::from(c.database.sqlite_synchronous.clone()),
            "must be normal or full",
            "use normal (fast) or full (fsync every commit)",
        );
    }

    // engine
    let e = &c.engine;
    let mut rule = |key: &str, value: Value, r: Result<(), String>, fix: &str| {
        if let Err(m) = r {
            bad(key, value, &m, fix);
        }
    };
    rule(
        "engine.max_concurrent_steps",
        e.max_concurrent_steps.into(),
        rules::at_least_one(e.max_concurrent_steps),
        "set the number of handlers to run at once, e.g. 64",
    );
    if let Some(n) = e.max_concurrent_steps_per_task {
        rule(
            "engine.max_concurrent_steps_per_task",
            n.into(),
            rules::at_least_one(n),
            "remove it (no limit) or set 1 or more",
        );
    }
    for (key, v) in [
        ("engine.claim_batch_size", e.claim_batch_size),
        ("engine.finish_batch_size", e.finish_batch_size),
    ] {
        rule(
            key,
            v.into(),
            rules::batch_size(v),
            "use the default unless measurements say otherwise",
        );
    }
    rule(
        "engine.finish_concurrency",
        e.finish_concurrency.into(),
        rules::finish_concurrency(e.finish_concurrency),
        "use 4",
    );
    for (key, v) in [
        ("engine.lease_seconds", e.lease_seconds),
        ("engine.heartbeat_seconds", e.effective_heartbeat_seconds()),
        ("engine.rescue_interval_seconds", e.rescue_interval_seconds),
        ("engine.poll_interval_seconds", e.poll_interval_seconds),
        (
            "engine.shutdown_timeout_seconds",
            e.shutdown_timeout_seconds,
        ),
        ("engine.identity_window_seconds", e.identity_window_seconds),
    ] {
        rule(
            key,
            v.into(),
            rules::positive_seconds(v),
            "use a value above 0",
        );
    }
    if let Some(t) = e.default_step_timeout_seconds {
        rule(
            "engine.default_step_timeout_seconds",
            t.into(),
            rules::positive_seconds(t),
            "use a value above 0, or null for none",
        );
    }
    rule(
        "engine.heartbeat_seconds",
        e.effective_heartbeat_seconds().into(),
        rules::heartbeat_within_lease(e.effective_heartbeat_seconds(), e.lease_seconds),
        "leave it unset (a third of lease_seconds)",
    );
    // The worker holds up to four connections at once (claimer, completer,
    // heartbeat, rescuer) plus one for the PostgreSQL listener; handlers hold
    // none, so the pool need not grow with max_concurrent_steps.
    if e.run_workers && is_pg && c.database.max_connections < 5 {
        bad(
            "database.max_connections",
            c.database.max_connections.into(),
            "is below what a worker needs (claimer, completer, heartbeat, rescuer, listener: 5)",
            "set at least 5, plus what the API server needs",
        );
    }

    // retention
    let r = &c.retention;
    positive(
        &mut bad,
        "retention.finished_task_days",
        r.finished_task_days,
    );
    for (ns, days) in &r.namespaces {
        positive(&mut bad, &format!("retention.namespaces.{ns}"), *days);
    }
    positive(&mut bad, "retention.interval_seconds", r.interval_seconds);
    if !(1..=10_000).contains(&r.batch_size) {
        bad(
            "retention.batch_size",
            r.batch_size.into(),
            "must be between 1 and 10000",
            "use 500",
        );
    }
    if !(r.pause_ratio.is_finite() && (0.0..=100.0).contains(&r.pause_ratio)) {
        bad(
            "retention.pause_ratio",
            Value::from(r.pause_ratio),
            "must be between 0 and 100",
            "use 3",
        );
    }
    if !(1..=120).contains(&r.partition_months_ahead) {
        bad(
            "retention.partition_months_ahead",
            r.partition_months_ahead.into(),
            "must be between 1 and 120",
            "use 3",
        );
    }
    if let Some(a) = &r.archive
        && r.archive_dir().is_none_or(str::is_empty)
    {
        bad(
            "retention.archive",
            Value::from(a.clone()),
            "must be jsonl:DIR",
            "e.g. \"jsonl:/var/lib/tasker/archive\", or null for no archive",
        );
    }

    // rate limits
    for (name, def) in &c.rate_limits {
        if !tasker_core::flow::valid_limit_name(name) {
            bad(
                &format!("rate_limits.{name}"),
                Value::from(name.clone()),
                "a rate limit name may hold letters, digits, `_`, `-` and `.`",
                "rename it, e.g. payments_api",
            );
        }
        for (field, message) in def.problems() {
            let value = match field {
                "burst" => def.burst.map_or(Value::Null, Value::from),
                _ => Value::from(def.per_second),
            };
            bad(
                &format!("rate_limits.{name}.{field}"),
                value,
                &message,
                "e.g. { per_second = 50, burst = 100 }",
            );
        }
    }

    if let Err(msg) = c.backoff.validate() {
        let key = format!(
            "backoff.{}",
            msg.split(':')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("")
        );
        bad(&key, Value::Null, &msg, "see docs/CONFIGURATION.md#backoff");
    }

    // dependency_graph: core owns these rules (the server applies them too)
    let tree = serde_json::to_value(c).unwrap_or(Value::Null);
    for p in c.dependency_graph.problems() {
        let (key, message) = p.split_once(": ").unwrap_or(("dependency_graph", &p));
        let value = key
            .split('.')
            .try_fold(&tree, |v, part| v.get(part))
            .cloned()
            .unwrap_or(Value::Null);
        bad(
            key,
            value,
            message,
            "see docs/CONFIGURATION.md#dependency_graph",
        );
    }

    // logging
    if !["auto", "json", "text"].contains(&c.logging.format.as_str()) {
        bad(
            "logging.format",
            Value::from(c.logging.format.clone()),
            "must be auto, json or text",
            "use auto",
        );
    }
    if !LEVELS.contains(&c.logging.level.as_str()) {
        bad(
            "logging.level",
            Value::from(c.logging.level.clone()),
            "is not a level",
            "use error, warn, info, debug, trace or off",
        );
    }
    for (module, level) in &c.logging.modules {
        if !LEVELS.contains(&level.as_str()) {
            bad(
                &format!("logging.modules.{module}"),
                Value::from(level.clone()),
                "is not a level",
                "use error, warn, info, debug, trace or off",
            );
        }
    }

    // server and health
    if c.server.bind.parse::<std::net::SocketAddr>().is_err() {
        bad(
            "server.bind",
            Value::from(c.server.bind.clone()),
            "is not an address",
            "use HOST:PORT with an IP, e.g. 127.0.0.1:8080",
        );
    }
    if c.server.body_limit_bytes < 1024 {
        bad(
            "server.body_limit_bytes",
            c.server.body_limit_bytes.into(),
            "is too small for any real request",
            "use at least 1024 (default 1 MiB)",
        );
    }
    positive(
        &mut bad,
        "server.request_timeout_seconds",
        c.server.request_timeout_seconds,
    );
    if c.server.request_timeout_seconds > 0.0 && c.server.request_timeout_seconds <= 20.0 {
        bad(
            "server.request_timeout_seconds",
            c.server.request_timeout_seconds.into(),
            "must be longer than the longest claim wait of external workers (20 s), or their long polls time out",
            "use 30",
        );
    }
    if c.server.max_page_size == 0 || c.server.max_page_size > 1000 {
        bad(
            "server.max_page_size",
            c.server.max_page_size.into(),
            "must be between 1 and 1000",
            "use 100",
        );
    }
    if !matches!(c.server.request_log.as_str(), "info" | "debug" | "off") {
        bad(
            "server.request_log",
            Value::from(c.server.request_log.clone()),
            "is not a request log level",
            "use info (one line per request), debug (hidden at the default level) or off",
        );
    }
    if c.server.graphql_max_depth == 0 {
        bad(
            "server.graphql_max_depth",
            c.server.graphql_max_depth.into(),
            "must be at least 1",
            "use 15",
        );
    }
    if c.server.graphql_max_complexity == 0 {
        bad(
            "server.graphql_max_complexity",
            c.server.graphql_max_complexity.into(),
            "must be at least 1",
            "use 5000",
        );
    }
    if !matches!(
        c.server.graphql_persisted_queries.as_str(),
        "automatic" | "registered" | "off"
    ) {
        bad(
            "server.graphql_persisted_queries",
            Value::from(c.server.graphql_persisted_queries.clone()),
            "is not a persisted query mode",
            "use automatic (clients may register queries by hash), registered (only the manifest's operations run) or off",
        );
    }
    if c.server.graphql_persisted_cache_size == 0 {
        bad(
            "server.graphql_persisted_cache_size",
            c.server.graphql_persisted_cache_size.into(),
            "must be at least 1",
            "use 1000",
        );
    }
    if c.server.graphql_persisted_queries == "registered"
        && c.server.graphql_persisted_manifest.is_none()
    {
        bad(
            "server.graphql_persisted_manifest",
            Value::Null,
            "is needed when server.graphql_persisted_queries is `registered`",
            "give the path of an Apollo persisted query manifest (JSON)",
        );
    }
    if c.server.default_page_size == 0 || c.server.default_page_size > c.server.max_page_size {
        bad(
            "server.default_page_size",
            c.server.default_page_size.into(),
            "must be between 1 and server.max_page_size",
            "use 25",
        );
    }
    if !(c.health.ready_timeout_seconds > 0.0 && c.health.ready_timeout_seconds <= 10.0) {
        bad(
            "health.ready_timeout_seconds",
            c.health.ready_timeout_seconds.into(),
            "must be above 0 and at most 10",
            "use 0.08 (raise it if your probes allow a longer answer)",
        );
    }
    positive(
        &mut bad,
        "health.status_window_seconds",
        c.health.status_window_seconds,
    );
    if c.cache.analysis_capacity == 0 {
        bad(
            "cache.analysis_capacity",
            0.into(),
            "must be at least 1",
            "use 1000",
        );
    }
    positive(
        &mut bad,
        "cache.analysis_ttl_seconds",
        c.cache.analysis_ttl_seconds,
    );
    if let Some(url) = &c.telemetry.otlp_endpoint
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bad(
            "telemetry.otlp_endpoint",
            url.clone().into(),
            "must be an http:// or https:// URL",
            "use http://127.0.0.1:4318/v1/traces (an OTLP/HTTP collector)",
        );
    }
    if c.telemetry.service_name.trim().is_empty() {
        bad(
            "telemetry.service_name",
            c.telemetry.service_name.clone().into(),
            "must not be empty",
            "use tasker",
        );
    }
    positive(
        &mut bad,
        "telemetry.analytics_cache_seconds",
        c.telemetry.analytics_cache_seconds,
    );
    if !(1..=1_000_000).contains(&c.telemetry.analytics_max_tasks) {
        bad(
            "telemetry.analytics_max_tasks",
            c.telemetry.analytics_max_tasks.into(),
            "must be between 1 and 1000000",
            "use 10000",
        );
    }
    if c.telemetry.analytics_scan_limit < c.telemetry.analytics_max_tasks
        || c.telemetry.analytics_scan_limit > 10_000_000
    {
        bad(
            "telemetry.analytics_scan_limit",
            c.telemetry.analytics_scan_limit.into(),
            "must be at least telemetry.analytics_max_tasks and at most 10000000",
            "use 100000",
        );
    }
    positive(
        &mut bad,
        "http.default_timeout_seconds",
        c.http.default_timeout_seconds,
    );
    positive(
        &mut bad,
        "http.max_retry_after_seconds",
        c.http.max_retry_after_seconds,
    );
    if c.http.max_response_bytes == 0 {
        bad(
            "http.max_response_bytes",
            0.into(),
            "must be at least 1",
            "use 4194304 (4 MiB)",
        );
    }

    auth_problems(c, &mut bad);
    for (key, value, problem, fix) in c.events.problems() {
        bad(key, value, &problem, fix);
    }
    for (key, value, problem, fix) in crate::webhooks::problems(&c.webhooks) {
        bad(&key, value, &problem, fix);
    }
    if let Some(t) = c
        .webhooks
        .iter()
        .map(|h| h.timeout_seconds)
        .find(|t| *t >= c.events.webhook_lease_seconds)
    {
        bad(
            "events.webhook_lease_seconds",
            c.events.webhook_lease_seconds.into(),
            &format!("must be longer than every webhook's timeout_seconds (one has {t})"),
            "raise it, or lower the webhook's timeout_seconds",
        );
    }
    for (key, value, problem, fix) in c.scheduler.problems() {
        bad(key, value, &problem, fix);
    }

    // production refuses unsafe settings unless explicitly allowed
    if c.environment == "production" && !c.allow_unsafe_production {
        let fix = "change it, or set allow_unsafe_production = true to accept the risk";
        if url.contains(":memory:") {
            bad(
                "database.url",
                Value::from(url.clone()),
                "an in-memory database loses everything on exit (production)",
                fix,
            );
        }
        if is_sqlite && c.database.sqlite_synchronous != "full" {
            bad(
                "database.sqlite_synchronous",
                Value::from(c.database.sqlite_synchronous.clone()),
                "a power loss can drop committed transactions (production)",
                fix,
            );
        }
        if c.http.allow_internal {
            bad(
                "http.allow_internal",
                true.into(),
                "lets templates reach internal addresses (production)",
                fix,
            );
        }
        let terminal = std::io::stderr().is_terminal();
        if writes_text(&c.logging.format, terminal) {
            bad(
                "logging.format",
                Value::from(c.logging.format.clone()),
                if terminal {
                    "writes text logs here (stderr is a terminal), which log pipelines cannot parse (production)"
                } else {
                    "text logs cannot be parsed by log pipelines (production)"
                },
                fix,
            );
        }
        if c.auth.mode == "none" {
            bad(
                "auth.mode",
                Value::from("none"),
                "lets anyone who can reach the API start and change workflows (production)",
                fix,
            );
        }
        if e.lease_seconds < 5.0 {
            bad(
                "engine.lease_seconds",
                e.lease_seconds.into(),
                "leases this short expire under ordinary pauses (production)",
                fix,
            );
        }
    }
    out
}

/// The `[auth]` rules: a known mode, exactly one JWT key source when JWTs
/// are accepted, a secret long enough, an algorithm that fits the key, and
/// roles made of real permissions. (Reading the key files is left to start-up.)
fn auth_problems(c: &crate::TaskerConfig, bad: &mut impl FnMut(&str, Value, &str, &str)) {
    let a = &c.auth;
    if !crate::model::AUTH_MODES.contains(&a.mode.as_str()) {
        bad(
            "auth.mode",
            Value::from(a.mode.clone()),
            "is not an authentication mode",
            "use none, jwt, api_key or jwt+api_key",
        );
    }
    if !(a.key_cache_seconds.is_finite()
        && a.key_cache_seconds > 0.0
        && a.key_cache_seconds <= 300.0)
    {
        bad(
            "auth.key_cache_seconds",
            a.key_cache_seconds.into(),
            "must be above 0 and at most 300 (a revoked key works this long)",
            "use 5",
        );
    }
    for (role, perms) in &a.roles {
        for p in perms {
            if let Err(e) = tasker_auth::Grant::parse(p) {
                bad(
                    &format!("auth.roles.{role}"),
                    Value::from(p.clone()),
                    &e.why,
                    "see docs/SECURITY.md for the permissions",
                );
            }
        }
    }
    let j = &a.jwt;
    if let Some(alg) = &j.algorithm
        && !JWT_ALGORITHMS.contains(&alg.as_str())
    {
        bad(
            "auth.jwt.algorithm",
            Value::from(alg.clone()),
            "is not a supported JWT algorithm",
            "use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA",
        );
    }
    if j.leeway_seconds > 600 {
        bad(
            "auth.jwt.leeway_seconds",
            j.leeway_seconds.into(),
            "must be at most 600 (expired tokens would work this long)",
            "use 30",
        );
    }
    for (key, v) in [
        ("auth.jwt.permissions_claim", &j.permissions_claim),
        ("auth.jwt.roles_claim", &j.roles_claim),
    ] {
        if v.trim().is_empty() {
            bad(
                key,
                Value::from(v.clone()),
                "must not be empty",
                "use the default",
            );
        }
    }
    if !a.accepts_jwt() {
        return;
    }
    let sources = [
        ("auth.jwt.secret", j.secret.is_some()),
        ("auth.jwt.public_key_file", j.public_key_file.is_some()),
        ("auth.jwt.jwks_file", j.jwks_file.is_some()),
        ("auth.jwt.jwks_url", j.jwks_url.is_some()),
    ];
    let set: Vec<&str> = sources
        .iter()
        .filter(|(_, s)| *s)
        .map(|(k, _)| *k)
        .collect();
    if set.len() != 1 {
        bad(
            "auth.jwt",
            Value::from(set.join(", ")),
            &format!(
                "auth.mode = \"{}\" needs exactly one of secret, public_key_file, jwks_file, jwks_url",
                a.mode
            ),
            "set one (see docs/SECURITY.md)",
        );
    }
    let alg = j.algorithm.as_deref();
    if let Some(secret) = &j.secret {
        if secret.len() < 32 {
            bad(
                "auth.jwt.secret",
                Value::from(format!("({} bytes)", secret.len())),
                "must be at least 32 bytes",
                "generate one: openssl rand -base64 48",
            );
        }
        if alg.is_some_and(|a| !a.starts_with("HS")) {
            bad(
                "auth.jwt.algorithm",
                Value::from(alg.unwrap_or_default()),
                "a secret verifies HS256, HS384 or HS512 only",
                "use HS256, or a public_key_file for asymmetric algorithms",
            );
        }
    }
    if j.public_key_file.is_some() && alg.is_none_or(|a| a.starts_with("HS")) {
        bad(
            "auth.jwt.algorithm",
            Value::from(alg.unwrap_or_default()),
            "a public key needs its asymmetric algorithm",
            "set RS256, PS256, ES256, EdDSA, ...",
        );
    }
    if let Some(url) = &j.jwks_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        bad(
            "auth.jwt.jwks_url",
            Value::from(url.clone()),
            "is not an http(s) URL",
            "use https://issuer.example/.well-known/jwks.json",
        );
    }
}

/// The algorithms `auth.jwt.algorithm` accepts.
pub const JWT_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// Whether `logging.format` ends up writing text: `text`, or `auto` when
/// stderr is a terminal. Rules look at what the process will do, not at the
/// word `auto`.
pub fn writes_text(format: &str, stderr_is_terminal: bool) -> bool {
    format == "text" || (format == "auto" && stderr_is_terminal)
}

fn positive(bad: &mut impl FnMut(&str, Value, &str, &str), key: &str, v: f64) {
    if let Err(m) = rules::positive_seconds(v) {
        bad(key, v.into(), &m, "use a value above 0");
    }
}

#[cfg(test)]
mod tests {
    use super::writes_text;

    #[test]
    fn auto_is_resolved_before_the_text_logs_rule() {
        assert!(writes_text("text", false));
        assert!(writes_text("auto", true));
        assert!(!writes_text("auto", false));
        assert!(!writes_text("json", true));
    }
}
