//! The documents run as written.
//!
//! Conventions (what a document author needs to know):
//!
//! - A fenced block whose info string is exactly `sh` is a command walk-through
//!   and is run; ```` ```sh no-run ```` shows commands that must not run here
//!   (`cargo test --workspace` itself, a release build, a server on a fixed
//!   port or a database that is not there). Other languages are not run.
//! - All `sh` blocks of one document run in order in **one** `bash` session
//!   (`set -euo pipefail`, so any failing command fails the test), from the
//!   repository root, with the `tasker` binary under test first on the `PATH`
//!   and `PORT` set to a free port (`TASKER_URL` to `http://127.0.0.1:$PORT`).
//!   Blocks therefore capture ids (`ID=$(… | jq -r .task.task_id)`), wait for
//!   readiness and for tasks instead of sleeping, use `${PORT:-8080}`, keep
//!   their files in a `mktemp -d` directory, and stop what they start and
//!   remove that directory at the end, so a second run gives the same result.
//!   The session is a process group of its own; whatever it leaves running is
//!   killed when it ends, and it fails after [`DEADLINE`].
//! - docs/CONFIGURATION.md: every `toml` / `yaml` block is loaded by
//!   `tasker_config` as a configuration file and must have no problem; every
//!   inline `` `TASKER__SECTION__KEY=value` `` example is applied as an
//!   environment variable and must be accepted.
//! - docs/TEMPLATES.md: every `yaml` block that is a whole template (it has a
//!   top-level `step_templates:`) must pass `tasker validate`.
//!
//! Requires `bash`, `curl`, `jq` and `python3` (the walk-throughs use them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{free_port, repo};

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one document's session may take.
const DEADLINE: Duration = Duration::from_secs(240);

/// A fenced block: its info string (`sh`, `sh no-run`, `toml`…), its first
/// line number (1-based), and its text.
#[derive(Debug)]
struct Block {
    info: String,
    line: usize,
    text: String,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in doc.lines().enumerate() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => {
                current = Some(Block {
                    info: info.trim().to_string(),
                    line: i + 2,
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "unclosed code block");
    out
}

fn read(doc: &str) -> String {
    std::fs::read_to_string(repo().join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

/// Runs the `sh` blocks of `doc` as one bash session; panics with the
/// session's output when a command fails or the deadline passes.
fn run_walkthrough(doc: &str) {
    use std::os::unix::process::CommandExt;

    let text = read(doc);
    let runnable: Vec<Block> = blocks(&text)
        .into_iter()
        .filter(|b| b.info == "sh")
        .collect();
    assert!(!runnable.is_empty(), "{doc}: no runnable sh block");
    let mut script = String::from("set -euo pipefail\n");
    for b in &runnable {
        script.push_str(&format!("# ---- {doc}:{}\n{}", b.line, b.text));
    }

    let out = tempfile::tempdir().unwrap();
    let script_path = out.path().join("walkthrough.sh");
    std::fs::write(&script_path, &script).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_tasker"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port();
    // Output goes to files, not pipes: a server left running in the
    // background would hold a pipe open and hang the reader.
    let stdout = std::fs::File::create(out.path().join("stdout")).unwrap();
    let stderr = std::fs::File::create(out.path().join("stderr")).unwrap();
    let mut child = Command::new("bash")
        .arg(&script_path)
        .current_dir(repo())
        .env("PATH", path)
        .env("PORT", port.to_string())
        .env("TASKER_URL", format!("http://127.0.0.1:{port}"))
        .env_remove("TASKER_DATABASE_URL")
        .env_remove("TASKER_CONFIG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .expect("bash");
    let group = child.id();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the session left behind (or all of it, past the deadline).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let log = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "{doc}: a command of its walk-through failed ({s}).\n--- stdout\n{}\n--- stderr\n{}\n--- script\n{script}",
            log("stdout"),
            log("stderr")
        ),
        None => panic!(
            "{doc}: walk-through still running after {DEADLINE:?}.\n--- stdout\n{}\n--- stderr\n{}",
            log("stdout"),
            log("stderr")
        ),
    }
}

#[test]
fn readme_walkthrough_runs() {
    run_walkthrough("README.md");
}

#[test]
fn api_walkthrough_runs() {
    run_walkthrough("docs/API.md");
}

#[test]
fn graphql_walkthrough_runs() {
    run_walkthrough("docs/GRAPHQL.md");
}

#[test]
fn security_walkthrough_runs() {
    run_walkthrough("docs/SECURITY.md");
}

#[test]
fn external_worker_walkthrough_runs() {
    run_walkthrough("docs/HANDLERS.md");
}

/// A configuration loaded from `file` plus `env`; every problem, rendered.
fn config_problems(file: Option<PathBuf>, env: Vec<(String, String)>) -> Vec<String> {
    let options = tasker_config::LoadOptions {
        file,
        env,
        flags: Vec::new(),
    };
    match tasker_config::load(&options) {
        Ok(loaded) => tasker_config::validate::problems(&loaded)
            .iter()
            .map(|p| p.to_string())
            .collect(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn configuration_examples_are_valid() {
    let doc = "docs/CONFIGURATION.md";
    let text = read(doc);
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for b in blocks(&text) {
        let ext = match b.info.as_str() {
            "toml" => "toml",
            "yaml" | "yml" => "yaml",
            _ => continue,
        };
        let file = dir.path().join(format!("example-{}.{ext}", b.line));
        std::fs::write(&file, &b.text).unwrap();
        let problems = config_problems(Some(file), Vec::new());
        assert!(
            problems.is_empty(),
            "{doc}:{}: the example configuration is refused:\n{}",
            b.line,
            problems.join("\n")
        );
        checked += 1;
    }
    assert!(checked > 0, "{doc}: no configuration example found");

    // Inline environment examples: `TASKER__SECTION__KEY=value`.
    let mut env_checked = 0;
    for (n, line) in text.lines().enumerate() {
        for chunk in line.split('`').skip(1).step_by(2) {
            let Some((key, value)) = chunk.split_once('=') else {
                continue;
            };
            if !key.starts_with("TASKER__") || key.contains(' ') || value.is_empty() {
                continue;
            }
            let problems = config_problems(None, vec![(key.to_string(), value.to_string())]);
            assert!(
                problems.is_empty(),
                "{doc}:{}: the example `{chunk}` is refused:\n{}",
                n + 1,
                problems.join("\n")
            );
            env_checked += 1;
        }
    }
    assert!(env_checked > 0, "{doc}: no environment example found");
}

#[test]
fn template_examples_validate() {
    let doc = "docs/TEMPLATES.md";
    let text = read(doc);
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for b in blocks(&text) {
        if b.info != "yaml" || !b.text.lines().any(|l| l.starts_with("step_templates:")) {
            continue;
        }
        let file = dir.path().join(format!("example-{}.yaml", b.line));
        std::fs::write(&file, &b.text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tasker"))
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{doc}:{}: the example template does not validate:\n{}{}",
            b.line,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked > 0, "{doc}: no whole template found");
}
