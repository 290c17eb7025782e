//! `tasker config check` / `show` as docs/CONFIGURATION.md promises: its own
//! example of a shorter lease passes, `show` shows a broken configuration
//! before listing its problems, problems carry the `error:` prefix, and the
//! production rules look at the log format actually used.
#![allow(clippy::unwrap_used)]

mod common;

/// The binary with the shared setup, but the log format left to the configuration.
fn tasker(dir: &Path) -> Command {
    let mut c = common::tasker(dir);
    c.env_remove("TASKER_LOG_FORMAT");
    c
}
use common::text;

use std::path::Path;
use std::process::Command;

#[test]
fn the_documented_shorter_lease_is_accepted_and_the_heartbeat_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker(dir.path())
        .env("TASKER__ENGINE__LEASE_SECONDS", "10")
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // `--lease-seconds` alone is valid too, however short.
    let out = tasker(dir.path())
        .args(["config", "show"])
        .env("TASKER__ENGINE__LEASE_SECONDS", "3")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("engine.heartbeat_seconds = null  # default"),
        "{stdout}"
    );
}

#[test]
fn show_prints_the_effective_configuration_then_the_problems() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker(dir.path())
        .env("TASKER__ENGINE__HEARTBEAT_SECONDS", "40")
        .env("TASKER__LOGGING__LEVEL", "chatty")
        .args(["config", "show"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "engine.heartbeat_seconds = 40.0  # environment variable TASKER__ENGINE__HEARTBEAT_SECONDS  (see the problem below)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("database.url = "), "{stdout}");
    assert!(
        stderr.starts_with("error: 2 configuration problem(s):"),
        "{stderr}"
    );
    assert!(
        stderr.contains("must be shorter than engine.lease_seconds (30)"),
        "{stderr}"
    );
    assert!(stderr.contains("is not a level"), "{stderr}");
}

#[test]
fn check_with_a_bad_template_has_the_error_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("bad.yaml"), "name: [\n").unwrap();
    let out = tasker(dir.path())
        .env(
            "TASKER__ENGINE__TEMPLATE_DIRECTORIES",
            format!("[{:?}]", templates.display().to_string()),
        )
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.starts_with("error: 1 configuration problem(s):"),
        "{stderr}"
    );
}

#[test]
fn production_refuses_text_logs_asked_for_by_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker(dir.path())
        .env("TASKER__ENVIRONMENT", "production")
        .env("TASKER__AUTH__MODE", "api_key")
        .env("TASKER__DATABASE__SQLITE_SYNCHRONOUS", "full")
        .args(["--log-format", "text", "config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "logging.format = \"text\" (flag --log-format / TASKER_LOG_FORMAT): text logs cannot be parsed"
        ),
        "{stderr}"
    );
    // JSON (what `auto` writes when stderr is not a terminal, as here) passes.
    let out = tasker(dir.path())
        .env("TASKER__ENVIRONMENT", "production")
        .env("TASKER__AUTH__MODE", "api_key")
        .env("TASKER__DATABASE__SQLITE_SYNCHRONOUS", "full")
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
}

#[test]
fn check_runs_the_dependency_graph_rules() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker(dir.path())
        .env(
            "TASKER__DEPENDENCY_GRAPH__SEVERITY_THRESHOLDS__HIGH",
            "1000",
        )
        .env(
            "TASKER__DEPENDENCY_GRAPH__IMPACT_MULTIPLIERS__BLOCKED_WEIGHT",
            "-1",
        )
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("dependency_graph.severity_thresholds = {\"critical\":100.0,\"high\":1000.0,\"medium\":20.0} (environment variable TASKER__DEPENDENCY_GRAPH__SEVERITY_THRESHOLDS__HIGH): must satisfy critical > high > medium"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dependency_graph.impact_multipliers.blocked_weight = -1.0 (environment variable TASKER__DEPENDENCY_GRAPH__IMPACT_MULTIPLIERS__BLOCKED_WEIGHT): must be a finite number >= 0"),
        "{stderr}"
    );
}
