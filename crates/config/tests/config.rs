//! Layering, unknown keys, every validation rule, and the documentation of every key.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use tasker_config::{ConfigError, LoadOptions, Source, load};

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn errors(opts: LoadOptions) -> Vec<ConfigError> {
    load(&opts).expect_err("expected configuration errors")
}

/// The one error for `key`, printed.
fn error_for(errs: &[ConfigError], key: &str) -> String {
    let found: Vec<String> = errs
        .iter()
        .filter(|e| e.key == key)
        .map(|e| e.to_string())
        .collect();
    assert_eq!(found.len(), 1, "errors for {key}: {errs:#?}");
    found[0].clone()
}

#[test]
fn defaults_are_valid() {
    let loaded = load(&LoadOptions::default()).unwrap();
    assert_eq!(loaded.config.engine.max_concurrent_steps, 64);
    assert_eq!(
        loaded.source_of("engine.max_concurrent_steps"),
        Source::Default
    );
}

#[test]
fn precedence_default_then_file_then_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        &dir,
        "t.toml",
        "[engine]\nmax_concurrent_steps = 8\nclaim_batch_size = 16\n\n[logging]\nlevel = \"debug\"\n",
    );
    let opts = LoadOptions {
        file: Some(path.clone()),
        env: env(&[
            ("TASKER__ENGINE__CLAIM_BATCH_SIZE", "32"),
            ("TASKER__ENGINE__FINISH_BATCH_SIZE", "9"),
            ("UNRELATED", "x"),
        ]),
        flags: vec![],
    }
    .flag("engine.finish_batch_size", 7, "--finish-batch");
    let loaded = load(&opts).unwrap();
    assert_eq!(loaded.config.engine.max_concurrent_steps, 8); // file
    assert_eq!(loaded.config.engine.claim_batch_size, 32); // env beats file
    assert_eq!(loaded.config.engine.finish_batch_size, 7); // flag beats env
    assert_eq!(loaded.config.engine.heartbeat_seconds, None); // default: a third of the lease
    assert_eq!(loaded.config.engine.effective_heartbeat_seconds(), 10.0);
    assert_eq!(
        loaded.source_of("engine.finish_batch_size"),
        Source::Flag {
            name: "--finish-batch".into()
        }
    );
    assert_eq!(
        loaded.source_of("engine.max_concurrent_steps"),
        Source::File {
            path: path.display().to_string(),
            line: Some(2)
        }
    );
    assert_eq!(
        loaded.source_of("engine.claim_batch_size"),
        Source::Env {
            var: "TASKER__ENGINE__CLAIM_BATCH_SIZE".into()
        }
    );
    let shown = loaded.show();
    assert!(
        shown.contains(&format!(
            "engine.max_concurrent_steps = 8  # {}:2",
            path.display()
        )),
        "{shown}"
    );
    assert!(
        shown.contains(
            "engine.claim_batch_size = 32  # environment variable TASKER__ENGINE__CLAIM_BATCH_SIZE"
        ),
        "{shown}"
    );
}

#[test]
fn yaml_files_and_json_env_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        &dir,
        "t.yaml",
        "engine:\n  exclude_kinds: [a]\nbackoff:\n  default_backoff_seconds: [0.5, 1]\n",
    );
    let opts = LoadOptions {
        file: Some(path),
        env: env(&[("TASKER__ENGINE__EXCLUDE_KINDS", "[\"x\", \"y\"]")]),
        flags: vec![],
    };
    let loaded = load(&opts).unwrap();
    assert_eq!(loaded.config.engine.exclude_kinds, ["x", "y"]);
    assert_eq!(loaded.config.backoff.default_backoff_seconds, [0.5, 1.0]);
}

#[test]
fn unknown_keys_are_all_reported_with_source_and_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        &dir,
        "t.toml",
        "[engine]\nmax_concurent_steps = 8\n\n[nosuch]\nx = 1\n",
    );
    let errs = errors(LoadOptions {
        file: Some(path.clone()),
        env: env(&[("TASKER__SERVER__BINDD", "1")]),
        flags: vec![],
    });
    let p = path.display();
    assert_eq!(
        error_for(&errs, "engine.max_concurent_steps"),
        format!(
            "engine.max_concurent_steps = 8 ({p}:2): unknown key. Fix: did you mean `engine.max_concurrent_steps`? (see docs/CONFIGURATION.md)"
        )
    );
    assert!(error_for(&errs, "nosuch").contains(&format!("({p}:4): unknown key")));
    assert!(error_for(&errs, "server.bindd").contains("(environment variable TASKER__SERVER__BINDD): unknown key. Fix: did you mean `server.bind`?"));
}

#[test]
fn type_errors_are_all_reported() {
    let errs = errors(LoadOptions {
        file: None,
        env: env(&[
            ("TASKER__ENGINE__LEASE_SECONDS", "soon"),
            ("TASKER__SERVER__MAX_PAGE_SIZE", "-1"),
        ]),
        flags: vec![],
    });
    assert_eq!(
        error_for(&errs, "engine.lease_seconds"),
        "engine.lease_seconds = \"soon\" (environment variable TASKER__ENGINE__LEASE_SECONDS): invalid type: string \"soon\", expected f64. Fix: use a value like the default, 30.0"
    );
    assert!(error_for(&errs, "server.max_page_size").contains("invalid value: integer `-1`"));
}

#[test]
fn bad_files_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir, "t.toml", "[engine]\nlease_seconds = = 3\n");
    let errs = errors(LoadOptions {
        file: Some(path.clone()),
        env: vec![],
        flags: vec![],
    });
    assert!(
        errs[0]
            .to_string()
            .starts_with(&format!("{}:2: invalid TOML", path.display())),
        "{}",
        errs[0]
    );
    let other = file(&dir, "t.ini", "x");
    assert!(
        errors(LoadOptions {
            file: Some(other),
            env: vec![],
            flags: vec![]
        })[0]
            .to_string()
            .contains("unknown configuration format")
    );
}

/// One failing case per rule, with its message.
#[test]
fn every_validation_rule() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "TASKER__ENVIRONMENT",
            "staging",
            "environment = \"staging\" (environment variable TASKER__ENVIRONMENT): must be development, test or production",
        ),
        (
            "TASKER__DATABASE__URL",
            "mysql://x",
            "database.url = \"mysql://x\" (environment variable TASKER__DATABASE__URL): has the unsupported scheme `mysql://`",
        ),
        (
            "TASKER__DATABASE__MAX_CONNECTIONS",
            "1",
            "must be at least 2 (one writer, one reader)",
        ),
        (
            "TASKER__DATABASE__MIN_CONNECTIONS",
            "50",
            "is larger than database.max_connections",
        ),
        (
            "TASKER__DATABASE__ACQUIRE_TIMEOUT_SECONDS",
            "0",
            "database.acquire_timeout_seconds = 0.0 (environment variable TASKER__DATABASE__ACQUIRE_TIMEOUT_SECONDS): must be a positive number of seconds",
        ),
        (
            "TASKER__DATABASE__SQLITE_SYNCHRONOUS",
            "off",
            "must be normal or full",
        ),
        (
            "TASKER__ENGINE__MAX_CONCURRENT_STEPS",
            "0",
            "engine.max_concurrent_steps = 0 (environment variable TASKER__ENGINE__MAX_CONCURRENT_STEPS): must be at least 1",
        ),
        (
            "TASKER__ENGINE__MAX_CONCURRENT_STEPS_PER_TASK",
            "0",
            "engine.max_concurrent_steps_per_task = 0",
        ),
        (
            "TASKER__ENGINE__CLAIM_BATCH_SIZE",
            "20000",
            "must be between 1 and 10000",
        ),
        (
            "TASKER__ENGINE__FINISH_BATCH_SIZE",
            "0",
            "engine.finish_batch_size = 0",
        ),
        (
            "TASKER__ENGINE__FINISH_CONCURRENCY",
            "0",
            "engine.finish_concurrency = 0",
        ),
        (
            "TASKER__ENGINE__POLL_INTERVAL_SECONDS",
            "-1",
            "engine.poll_interval_seconds = -1.0",
        ),
        (
            "TASKER__ENGINE__HEARTBEAT_SECONDS",
            "40",
            "must be shorter than engine.lease_seconds (30)",
        ),
        (
            "TASKER__ENGINE__DEFAULT_STEP_TIMEOUT_SECONDS",
            "0",
            "engine.default_step_timeout_seconds = 0.0",
        ),
        (
            "TASKER__BACKOFF__JITTER_MAX_PERCENTAGE",
            "3",
            "jitter_max_percentage must be between 0 and 1",
        ),
        (
            "TASKER__LOGGING__FORMAT",
            "xml",
            "must be auto, json or text",
        ),
        (
            "TASKER__LOGGING__LEVEL",
            "loud",
            "logging.level = \"loud\" (environment variable TASKER__LOGGING__LEVEL): is not a level",
        ),
        (
            "TASKER__LOGGING__MODULES",
            "{\"sqlx\": \"chatty\"}",
            "logging.modules.sqlx = \"chatty\"",
        ),
        ("TASKER__SERVER__BIND", "localhost", "is not an address"),
        ("TASKER__SERVER__BODY_LIMIT_BYTES", "10", "is too small"),
        (
            "TASKER__SERVER__REQUEST_TIMEOUT_SECONDS",
            "0",
            "server.request_timeout_seconds = 0.0",
        ),
        (
            "TASKER__SERVER__MAX_PAGE_SIZE",
            "5000",
            "must be between 1 and 1000",
        ),
        (
            "TASKER__SERVER__DEFAULT_PAGE_SIZE",
            "500",
            "must be between 1 and server.max_page_size",
        ),
        (
            "TASKER__HEALTH__READY_TIMEOUT_SECONDS",
            "11",
            "must be above 0 and at most 10",
        ),
        (
            "TASKER__SERVER__REQUEST_TIMEOUT_SECONDS",
            "20",
            "longer than the longest claim wait",
        ),
        (
            "TASKER__CACHE__ANALYSIS_CAPACITY",
            "0",
            "cache.analysis_capacity = 0",
        ),
        (
            "TASKER__CACHE__ANALYSIS_TTL_SECONDS",
            "0",
            "cache.analysis_ttl_seconds = 0.0",
        ),
        (
            "TASKER__HTTP__DEFAULT_TIMEOUT_SECONDS",
            "0",
            "http.default_timeout_seconds = 0.0",
        ),
        (
            "TASKER__HTTP__MAX_RETRY_AFTER_SECONDS",
            "0",
            "http.max_retry_after_seconds = 0.0",
        ),
        (
            "TASKER__HTTP__MAX_RESPONSE_BYTES",
            "0",
            "http.max_response_bytes = 0",
        ),
    ];
    for (var, value, expected) in cases {
        let errs = errors(LoadOptions {
            file: None,
            env: env(&[(var, value)]),
            flags: vec![],
        });
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t.contains(expected)),
            "{var}={value}: expected `{expected}` in {text:#?}"
        );
    }
}

#[test]
fn postgres_pool_must_cover_the_worker() {
    let errs = errors(LoadOptions {
        file: None,
        env: env(&[
            ("TASKER__DATABASE__URL", "postgres://u@h/db"),
            ("TASKER__DATABASE__MAX_CONNECTIONS", "3"),
        ]),
        flags: vec![],
    });
    assert!(error_for(&errs, "database.max_connections").contains("below what a worker needs"));
}

#[test]
fn production_refuses_unsafe_settings_unless_allowed() {
    let unsafe_env = [
        ("TASKER__ENVIRONMENT", "production"),
        ("TASKER__DATABASE__URL", "sqlite::memory:"),
        ("TASKER__HTTP__ALLOW_INTERNAL", "true"),
        ("TASKER__LOGGING__FORMAT", "text"),
        ("TASKER__ENGINE__LEASE_SECONDS", "2"),
        ("TASKER__ENGINE__HEARTBEAT_SECONDS", "0.5"),
    ];
    let errs = errors(LoadOptions {
        file: None,
        env: env(&unsafe_env),
        flags: vec![],
    });
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "database.url",
            "database.sqlite_synchronous",
            "http.allow_internal",
            "logging.format",
            "auth.mode",
            "engine.lease_seconds"
        ]
    );
    assert!(errs[2].to_string().contains("lets templates reach internal addresses (production). Fix: change it, or set allow_unsafe_production = true"));
    let mut allowed = env(&unsafe_env);
    allowed.push(("TASKER__ALLOW_UNSAFE_PRODUCTION".into(), "true".into()));
    assert!(
        load(&LoadOptions {
            file: None,
            env: allowed,
            flags: vec![]
        })
        .is_ok()
    );
}

#[test]
fn secrets_are_redacted_in_show() {
    let loaded = load(&LoadOptions {
        file: None,
        env: env(&[("TASKER__DATABASE__URL", "postgres://app:hunter2@db/tasker")]),
        flags: vec![],
    })
    .unwrap();
    let shown = loaded.show();
    assert!(
        shown.contains("database.url = \"postgres://app:***@db/tasker\""),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"));
}

/// docs/CONFIGURATION.md documents exactly the keys the code has.
#[test]
fn every_key_is_documented_and_every_documented_key_exists() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/CONFIGURATION.md"
    ))
    .unwrap();
    let documented: std::collections::BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    let known: std::collections::BTreeSet<String> =
        tasker_config::load::known_keys().into_iter().collect();
    let missing: Vec<_> = known.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/CONFIGURATION.md: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "docs/CONFIGURATION.md documents keys the code does not have: {extra:?}"
    );
}

#[test]
fn auth_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        &dir,
        "tasker.toml",
        r#"
[auth]
mode = "jwt"
key_cache_seconds = 0

[auth.jwt]
secret = "too-short"
algorithm = "RS256"
leeway_seconds = 3600

[auth.roles]
operator = ["tasker.task:*", "tasker.tasks:create"]
"#,
    );
    let errs = errors(LoadOptions {
        file: Some(path),
        env: vec![],
        flags: vec![],
    });
    assert!(error_for(&errs, "auth.key_cache_seconds").contains("at most 300"));
    assert!(error_for(&errs, "auth.jwt.secret").contains("at least 32 bytes"));
    assert!(
        !error_for(&errs, "auth.jwt.secret").contains("too-short"),
        "the secret is not echoed"
    );
    assert!(error_for(&errs, "auth.jwt.algorithm").contains("HS256, HS384 or HS512"));
    assert!(error_for(&errs, "auth.jwt.leeway_seconds").contains("at most 600"));
    assert!(error_for(&errs, "auth.roles.operator").contains("unknown resource `tasker.tasks`"));

    // JWT mode without a key source, and an unknown mode.
    let errs = errors(LoadOptions {
        file: None,
        env: env(&[("TASKER__AUTH__MODE", "jwt")]),
        flags: vec![],
    });
    assert!(error_for(&errs, "auth.jwt").contains("exactly one of secret"));
    let errs = errors(LoadOptions {
        file: None,
        env: env(&[("TASKER__AUTH__MODE", "oauth")]),
        flags: vec![],
    });
    assert!(error_for(&errs, "auth.mode").contains("use none, jwt, api_key or jwt+api_key"));

    // A valid JWT setup, with its secret masked by `config show`.
    let loaded = load(&LoadOptions {
        file: None,
        env: env(&[
            ("TASKER__AUTH__MODE", "jwt+api_key"),
            (
                "TASKER__AUTH__JWT__SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            (
                "TASKER__AUTH__ROLES__READER",
                r#"["tasker.task:index", "tasker.task:show@billing"]"#,
            ),
        ]),
        flags: vec![],
    })
    .unwrap();
    assert!(loaded.config.auth.accepts_jwt() && loaded.config.auth.accepts_api_keys());
    assert_eq!(loaded.config.auth.roles["reader"].len(), 2);
    let shown = loaded.show();
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
}

#[test]
fn production_accepts_an_authenticated_api() {
    let loaded = load(&LoadOptions {
        file: None,
        env: env(&[
            ("TASKER__ENVIRONMENT", "production"),
            ("TASKER__DATABASE__SQLITE_SYNCHRONOUS", "full"),
            ("TASKER__LOGGING__FORMAT", "json"),
            ("TASKER__AUTH__MODE", "api_key"),
        ]),
        flags: vec![],
    });
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

#[test]
fn retention_rules_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        &dir,
        "r.toml",
        "[retention]\nfinished_task_days = 0\nbatch_size = 0\narchive = \"/tmp/x\"\ninterval_seconds = -1\nnamespaces = { billing = 365, audit = 0 }\npause_ratio = -1\n",
    );
    let errs = errors(LoadOptions {
        file: Some(path),
        env: vec![],
        flags: vec![],
    });
    for key in [
        "retention.finished_task_days",
        "retention.batch_size",
        "retention.archive",
        "retention.interval_seconds",
        "retention.namespaces.audit",
        "retention.pause_ratio",
    ] {
        error_for(&errs, key);
    }
    assert!(errs.iter().all(|e| e.key != "retention.namespaces.billing"));
    let ok = file(
        &dir,
        "ok.toml",
        "[retention]\nnamespaces = { billing = 365 }\narchive = \"jsonl:/var/lib/tasker/archive\"\n",
    );
    let loaded = load(&LoadOptions {
        file: Some(ok),
        env: vec![],
        flags: vec![],
    })
    .unwrap();
    assert_eq!(
        loaded.config.retention.archive_dir(),
        Some("/var/lib/tasker/archive")
    );
}

#[test]
fn webhooks_are_loaded_checked_and_their_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        &dir,
        "tasker.toml",
        "[[webhooks]]\nname = \"ops\"\nurl = \"https://hooks.example.com/x\"\nevents = [\"task.*\"]\nsecret = \"s3cr3t-value\"\n",
    );
    let loaded = load(&LoadOptions {
        file: Some(path),
        env: vec![],
        flags: vec![],
    })
    .unwrap();
    assert_eq!(loaded.config.webhooks.len(), 1);
    assert_eq!(loaded.config.webhooks[0].max_attempts, 10, "default");
    let shown = loaded.show();
    assert!(shown.contains("webhooks = "), "{shown}");
    assert!(!shown.contains("s3cr3t-value"), "{shown}");

    let bad = file(
        &dir,
        "bad.toml",
        "[events]\nwebhook_lease_seconds = 5\n\n[[webhooks]]\nname = \"ops\"\nurl = \"ftp://x\"\ntimeout_seconds = 10\n",
    );
    let errs = errors(LoadOptions {
        file: Some(bad),
        env: vec![],
        flags: vec![],
    });
    assert!(error_for(&errs, "webhooks[0].url").contains("http:// or https://"));
    assert!(
        error_for(&errs, "events.webhook_lease_seconds")
            .contains("longer than every webhook's timeout_seconds")
    );
}
