//! `tasker events tail`: the recorded events of a run, filtered, as text or
//! JSON; following new events written by another process; bad flags.
#![allow(clippy::unwrap_used)]

mod common;
use common::{tasker, text};

use std::process::Stdio;
use std::time::{Duration, Instant};

const TWO: &str = "name: two\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n  - name: b\n    depends_on_step: a\n    handler: {kind: noop}\n";

fn run_task(dir: &std::path::Path) -> String {
    let t = dir.join("two.yaml");
    std::fs::write(&t, TWO).unwrap();
    let out = tasker(dir).args(["run", "-q"]).arg(&t).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    result["task_id"].as_str().unwrap().to_string()
}

#[test]
fn tail_prints_the_recorded_events_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let id = run_task(dir.path());

    let out = tasker(dir.path())
        .args(["events", "tail", "--from-start", "--no-follow"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    // created, started, 2 × (step started, completed), completed.
    assert_eq!(lines.len(), 7, "{stdout}");
    assert!(
        lines[0].contains("task.created") && lines[0].contains(&id),
        "{stdout}"
    );
    assert!(lines[6].contains("task.completed"), "{stdout}");
    assert!(
        stdout.contains("step.completed") && stdout.contains("step=b"),
        "{stdout}"
    );

    let out = tasker(dir.path())
        .args([
            "events",
            "tail",
            "--from-start",
            "--no-follow",
            "--json",
            "--type",
            "task.*",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let types: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, ["task.created", "task.started", "task.completed"]);

    let out = tasker(dir.path())
        .args(["events", "tail", "--from-start", "--count", "2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out).0.lines().count(), 2);

    // Without --from-start or --after: only new events, so nothing here.
    let out = tasker(dir.path())
        .args(["events", "tail", "--no-follow"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out).0, "");
}

#[test]
fn tail_follows_events_of_another_process() {
    let dir = tempfile::tempdir().unwrap();
    run_task(dir.path()); // creates and migrates the database
    let mut child = tasker(dir.path())
        .args([
            "events",
            "tail",
            "--type",
            "task.completed",
            "--count",
            "1",
            "--interval",
            "0.1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let id = run_task(dir.path());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("tail did not see the task complete");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out).0;
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("task.completed") && stdout.contains(&id),
        "{stdout}"
    );
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--type", "task."], "--type `task.`"),
        (vec!["--interval", "0"], "--interval"),
        (vec!["--after=-5"], "--after"),
    ] {
        let out = tasker(dir.path())
            .args(["events", "tail", "--no-follow"])
            .args(&args)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
