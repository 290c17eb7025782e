//! Template values that used to pass validation and fail (or panic) later:
//! retry limits out of range, absurd timeouts, built-in handler configs no
//! handler could run; files that are not UTF-8 or too large for the YAML
//! budget. Each is refused when the template is loaded, with file:line, and
//! a large valid template still loads.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};
use tasker_core::template::parse_template;
use tasker_engine::templates::load_file;

fn write(dir: &Path, name: &str, text: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Every error of loading `yaml` from a file, one per line.
fn errors(yaml: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "t.yaml", yaml.as_bytes());
    let e = load_file(&p, None).unwrap_err();
    (p.display().to_string(), e.to_string())
}

fn step(extra: &str) -> String {
    format!("name: t\nstep_templates:\n  - name: a\n    handler: {{kind: noop}}\n{extra}")
}

#[test]
fn retry_limits_outside_1_to_1000_are_refused_with_their_line() {
    for bad in ["0", "1001", "2147483648", "4294967295"] {
        let (file, e) = errors(&step(&format!("    default_retry_limit: {bad}\n")));
        assert!(
            e.contains(&format!(
                "{file}:5:26: step_templates[0].default_retry_limit: must be between 1 and 1000"
            )),
            "{bad}: {e}"
        );
    }
    let ok = step("    default_retry_limit: 1000\n");
    assert_eq!(
        parse_template("<t>", &ok, None).unwrap().steps[0].max_attempts(),
        1000
    );
}

#[test]
fn an_environment_override_is_bounded_too() {
    let yaml = format!(
        "{}environments:\n  prod:\n    step_templates:\n      - name: a\n        default_retry_limit: 0\n",
        step("")
    );
    let e = parse_template("<t>", &yaml, Some("prod")).unwrap_err();
    assert!(
        e.to_string()
            .contains("<t>:9:30: step_templates[0].default_retry_limit"),
        "{e}"
    );
}

#[test]
fn timeouts_beyond_a_year_are_refused() {
    let (file, e) = errors(&step("    timeout_seconds: 1e300\n"));
    assert!(
        e.contains(&format!("{file}:5:22: step_templates[0].timeout_seconds: must be a positive number of seconds, at most")),
        "{e}"
    );
}

#[test]
fn built_in_handler_configs_are_checked_at_load_with_file_and_line() {
    let cases = [
        (
            "{kind: sleep, config: {seconds: 1e20}}",
            "longer than the limit",
        ),
        (
            "{kind: sleep, config: {secnds: 1}}",
            "unknown config key `secnds`",
        ),
        (
            "{kind: command, config: {args: [x]}}",
            "missing field `program`",
        ),
        (
            "{kind: command, config: {program: ''}}",
            "`program` must not be empty",
        ),
        (
            "{kind: http, config: {url: 'http://x/', metod: POST}}",
            "unknown field `metod`",
        ),
    ];
    for (handler, expect) in cases {
        let yaml = format!("name: t\nstep_templates:\n  - name: a\n    handler: {handler}\n");
        let (file, e) = errors(&yaml);
        assert!(
            e.contains(&format!("{file}:4:14: step_templates[0].handler.config: "))
                && e.contains(expect),
            "{handler}: {e}"
        );
    }
}

#[tokio::test]
async fn registration_checks_handler_configs_too() {
    // Parsed without the built-in checks (as a library user might), then
    // registered: the registered `sleep` handler refuses it.
    let t = common::template(
        "name: t\nstep_templates:\n  - name: a\n    handler: {kind: sleep, config: {seconds: 1e20}}\n",
    );
    let (store, _dir) = common::sqlite().await;
    let tasker = common::builder(store).build().unwrap();
    let e = tasker.register_templates(vec![t], false).unwrap_err();
    assert!(
        e.to_string()
            .contains("default.t@0.1.0 step `a` handler.config: sleep:"),
        "{e}"
    );
}

#[test]
fn invalid_utf8_is_reported_by_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.yaml",
        b"name: t\nstep_templates:\n  - name: caf\xe9\n    handler: {kind: noop}\n",
    );
    let e = load_file(&p, None).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "{}:3:14: not valid UTF-8: invalid byte 0xe9 at byte offset 37",
            p.display()
        )),
        "{e}"
    );
}

#[test]
fn the_yaml_budget_is_explained_in_words() {
    // Over two million nodes in one flow sequence.
    let mut yaml = String::from(
        "name: t\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    inputs: {xs: [",
    );
    yaml.push_str(&"0,".repeat(2_100_000));
    yaml.push_str("0]}\n");
    let (_, e) = errors(&yaml);
    assert!(
        e.contains("the template is too large or too deeply nested to load safely (more than 2000000 YAML nodes")
            && e.contains("docs/TEMPLATES.md"),
        "{}",
        &e[..e.len().min(400)]
    );
    assert!(!e.contains("budget breached"), "{}", &e[..e.len().min(400)]);
}

#[test]
fn five_thousand_steps_in_fully_connected_layers_of_fifty_load() {
    let (layers, width) = (100, 50);
    let mut yaml = String::from("name: big\nstep_templates:\n");
    for l in 0..layers {
        for w in 0..width {
            yaml.push_str(&format!(
                "  - name: s{l}_{w}\n    handler: {{kind: noop}}\n"
            ));
            if l > 0 {
                let deps: Vec<String> = (0..width).map(|p| format!("s{}_{p}", l - 1)).collect();
                yaml.push_str(&format!("    depends_on_steps: [{}]\n", deps.join(", ")));
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "big.yaml", yaml.as_bytes());
    let started = Instant::now();
    let t = load_file(&p, None).unwrap();
    assert_eq!(t.steps.len(), layers * width);
    assert_eq!(t.steps[width].depends_on.len(), width);
    // Generous for a debug build on a busy machine; it is linear work.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
