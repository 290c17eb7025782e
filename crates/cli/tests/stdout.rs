//! The binary when nobody reads its stdout (`| true`, `| head -1`) or the
//! disk is full (`>/dev/full`): a closed pipe ends quietly with exit 0, a full
//! disk is an error message with exit 2; never a panic (exit 101).
#![allow(clippy::unwrap_used)]

mod common;
use common::tasker;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// A template of `n` independent no-op steps, so `run` prints many lines.
fn template(dir: &Path, n: usize) -> std::path::PathBuf {
    let mut yaml = String::from("name: many\nstep_templates:\n");
    for i in 0..n {
        yaml.push_str(&format!("  - name: s{i}\n    handler: {{kind: noop}}\n"));
    }
    let path = dir.join("many.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn migrate(dir: &Path) {
    let out = tasker(dir).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Runs with stdout a pipe whose reader is closed before anything is read.
fn closed_stdout(cmd: &mut Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn full_stdout(cmd: &mut Command) -> (Option<i32>, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = cmd.stdout(full).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    migrate(dir.path());
    for args in [
        &["tasks", "list", "--json"][..],
        &["tasks", "list"],
        &["config", "show"],
        &["migrate"],
    ] {
        let (code, stderr) = closed_stdout(tasker(dir.path()).args(args));
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_full_disk_is_an_error_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    migrate(dir.path());
    let t = template(dir.path(), 2);
    for args in [
        vec!["tasks", "list", "--json"],
        vec!["config", "show"],
        vec!["run", "-q", t.to_str().unwrap()],
    ] {
        let (code, stderr) = full_stdout(tasker(dir.path()).args(&args));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error: cannot write to standard output: No space left on device"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn run_piped_to_head_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    migrate(dir.path());
    let t = template(dir.path(), 200);
    let mut child = tasker(dir.path())
        .arg("run")
        .arg(&t)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: read one line, then go away.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("task "), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
