//! `tasker tasks list` / `show` as a person reads them: columns line up under
//! their headers, and states use the API's names (`all_complete`, `healthy`).
#![allow(clippy::unwrap_used)]

mod common;
use common::tasker;

use std::process::Command;

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Byte offset where each whitespace-separated column of `line` starts.
fn column_starts(line: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if !c.is_whitespace() && prev_space {
            starts.push(i);
        }
        prev_space = c.is_whitespace();
    }
    starts
}

#[test]
fn list_columns_line_up_and_show_uses_api_names() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("two.yaml");
    std::fs::write(
        &t,
        "name: two\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n  - name: b\n    depends_on_step: a\n    handler: {kind: noop}\n",
    )
    .unwrap();
    let run = stdout(tasker(dir.path()).args(["run", "-q"]).arg(&t));
    let result: serde_json::Value = serde_json::from_str(&run).unwrap();
    let id = result["task_id"].as_str().unwrap().to_string();

    let list = stdout(tasker(dir.path()).args(["tasks", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    let header = column_starts(lines[0]);
    let row = column_starts(lines[1]);
    // ID, STATUS, TEMPLATE start where their headers start (CREATED holds a
    // date and a time, two words).
    assert_eq!(header[..3], row[..3], "\n{list}");
    assert_eq!(header[3], row[3], "\n{list}");
    assert!(lines[1].starts_with(&id), "\n{list}");

    let show = stdout(tasker(dir.path()).args(["tasks", "show", &id]));
    assert!(
        show.contains("complete  (all_complete, 100% complete, healthy)"),
        "\n{show}"
    );
    assert!(
        !show.contains("AllComplete") && !show.contains("Healthy"),
        "\n{show}"
    );
    let steps: Vec<&str> = show
        .lines()
        .skip_while(|l| !l.starts_with("STEP"))
        .collect();
    let header = column_starts(steps[0]);
    assert_eq!(steps.len(), 3, "\n{show}");
    for row in &steps[1..] {
        let row = column_starts(row);
        // STEP, STATUS; ATTEMPTS is right-aligned; RESULT starts under its header.
        assert_eq!(row[..2], header[..2], "\n{show}");
        assert_eq!(row[3], header[3], "\n{show}");
    }
}

#[test]
fn run_says_when_a_step_waits_for_an_external_worker() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("ext.yaml");
    std::fs::write(
        &t,
        "name: ext\nnamespace: polyglot\nstep_templates:\n  - name: square\n    handler: {kind: external, config: {op: square}}\n",
    )
    .unwrap();
    let out = tasker(dir.path())
        .args(["run", "--timeout", "0.2"])
        .arg(&t)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "step square waits for an external worker (kind external, namespace polyglot)"
        ) && stderr.contains("docs/HANDLERS.md"),
        "{stderr}"
    );
}

/// `tasks pause` / `resume`: the list marks a paused task, pausing twice is
/// refused with a message naming why, resuming clears the mark.
#[test]
fn pause_and_resume_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("ext.yaml");
    std::fs::write(
        &t,
        "name: ext\nnamespace: polyglot\nstep_templates:\n  - name: square\n    handler: {kind: external, config: {op: square}}\n",
    )
    .unwrap();
    // The step waits for an external worker, so the task stays open.
    let _ = tasker(dir.path())
        .args(["run", "--timeout", "0.2"])
        .arg(&t)
        .output()
        .unwrap();
    let list = stdout(tasker(dir.path()).args(["tasks", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = list["tasks"][0]["id"].as_str().unwrap().to_string();

    let out = stdout(tasker(dir.path()).args(["tasks", "pause", &id, "--by", "ops"]));
    assert!(out.contains("paused"), "{out}");
    let list = stdout(tasker(dir.path()).args(["tasks", "list"]));
    assert!(list.contains("pending (paused)"), "\n{list}");
    let show = stdout(tasker(dir.path()).args(["tasks", "show", &id]));
    assert!(show.contains("paused    since "), "\n{show}");

    let again = tasker(dir.path())
        .args(["tasks", "pause", &id])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already paused"), "{stderr}");

    stdout(tasker(dir.path()).args(["tasks", "resume", &id]));
    let list = stdout(tasker(dir.path()).args(["tasks", "list"]));
    assert!(!list.contains("(paused)"), "\n{list}");
}

#[test]
fn schedules_flow_pause_and_restart_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("ext.yaml");
    std::fs::write(
        &t,
        "name: ext\nnamespace: polyglot\nstep_templates:\n  - name: square\n    handler: {kind: external, config: {op: square}}\nschedules:\n  - name: hourly\n    cron: \"0 * * * *\"\n    timezone: Europe/Paris\n",
    )
    .unwrap();
    let tpl = t.to_str().unwrap();
    let list = stdout(tasker(dir.path()).args(["schedules", "list", "--templates", tpl]));
    assert!(
        list.contains("hourly") && list.contains("cron 0 * * * * Europe/Paris"),
        "\n{list}"
    );
    let out = stdout(tasker(dir.path()).args(["schedules", "pause", "hourly"]));
    assert!(out.contains("paused"), "{out}");
    let list = stdout(tasker(dir.path()).args(["schedules", "list"]));
    assert!(list.contains("paused"), "\n{list}");
    let out =
        stdout(tasker(dir.path()).args(["schedules", "trigger", "hourly", "--templates", tpl]));
    assert!(out.contains("triggered: task"), "{out}");
    let again = tasker(dir.path())
        .args(["schedules", "pause", "hourly"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    stdout(tasker(dir.path()).args(["schedules", "resume", "hourly"]));

    let out = stdout(tasker(dir.path()).args([
        "flow", "pause", "polyglot", "--reason", "incident", "--by", "ops",
    ]));
    assert!(out.contains("namespace polyglot paused"), "{out}");
    let list = stdout(tasker(dir.path()).args(["tasks", "list"]));
    assert!(list.contains("(held: namespace polyglot)"), "\n{list}");
    let pauses = stdout(tasker(dir.path()).args(["flow", "list"]));
    assert!(
        pauses.contains("incident") && pauses.contains("ops"),
        "\n{pauses}"
    );
    let list = stdout(tasker(dir.path()).args(["tasks", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = list["tasks"][0]["id"].as_str().unwrap().to_string();
    let show = stdout(tasker(dir.path()).args(["tasks", "show", &id]));
    assert!(
        show.contains("held      by the pause of namespace polyglot"),
        "\n{show}"
    );
    stdout(tasker(dir.path()).args(["flow", "resume", "polyglot"]));

    let running = tasker(dir.path())
        .args(["tasks", "restart", &id, "--step", "square"])
        .output()
        .unwrap();
    assert!(!running.status.success());
    let stderr = String::from_utf8_lossy(&running.stderr);
    assert!(stderr.contains("cannot be restarted"), "{stderr}");
    let unknown = tasker(dir.path())
        .args(["tasks", "restart", &id, "--step", "nope"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("has no step `nope`"), "{stderr}");
}
