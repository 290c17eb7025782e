//! The `tasker` binary end to end: validate, run, tasks, and crash-resume
//! (a process killed mid-step, started again, finishes the task).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tasker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tasker"));
    c.env_remove("TASKER_DATABASE_URL")
        .env("TASKER_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn db(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("t.db").display())
}

#[test]
fn validate_accepts_the_examples() {
    let out = tasker()
        .arg("validate")
        .arg(repo().join("examples/templates"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("ecommerce.order_fulfillment@1.0.0 (5 steps)"),
        "{stdout}"
    );
}

#[test]
fn validate_reports_every_problem_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: bad\nversion: one\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    depends_on_step: b\n  - name: b\n    depends_on_step: a\n    handler: {kind: noop}\n").unwrap();
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        "name: t\nstep_templates:\n  - name: a\n    handlr: {kind: noop}\n",
    )
    .unwrap();
    let out = tasker().arg("validate").arg(dir.path()).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    let b = bad.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{b}:2:10: version: `one` is not a semantic version"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{b}:4:11: step_templates[0]: dependency cycle: a -> b -> a"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:4:", typo.display())) && stderr.contains("handlr"),
        "{stderr}"
    );
    assert!(stderr.contains("3 problem(s) found"), "{stderr}");
}

#[test]
fn run_completes_the_example_and_prints_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker()
        .args(["--database", &db(dir.path()), "run"])
        .arg(repo().join("examples/templates/order_fulfillment.yaml"))
        .args([
            "--context",
            r#"{"order_id": 7, "items": ["book"], "amount_cents": 1299}"#,
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("charge_payment"),
        "progress lines: {stdout}"
    );
    assert!(stdout.contains("\"status\": \"complete\""), "{stdout}");
    assert!(stdout.contains("\"sent\": true"), "{stdout}");

    let list = tasker()
        .args(["--database", &db(dir.path()), "tasks", "list"])
        .output()
        .unwrap();
    let (stdout, _) = text(&list);
    assert!(
        stdout.contains("ecommerce.order_fulfillment@1.0.0") && stdout.contains("1 of 1 task(s)"),
        "{stdout}"
    );
}

#[test]
fn run_exits_non_zero_when_the_task_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker()
        .args(["--database", &db(dir.path()), "run"])
        .arg(repo().join("examples/templates/order_fulfillment.yaml"))
        .args([
            "--context",
            r#"{"order_id": 7, "items": [], "amount_cents": 1299}"#,
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    // items: [] passes the schema? No: minItems 1. The context is rejected before anything runs.
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("/items"), "{stderr}");

    let yaml = dir.path().join("fail.yaml");
    std::fs::write(&yaml, "name: f\nstep_templates:\n  - name: boom\n    handler: { kind: command, config: { program: sh, args: [-c, 'echo nope >&2; exit 4'], permanent_exit_codes: [4] } }\n").unwrap();
    let out = tasker()
        .args(["--database", &db(dir.path()), "run"])
        .arg(&yaml)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("\"status\": \"error\""), "{stdout}");
    assert!(stderr.contains("`sh` exited with code 4: nope"), "{stderr}");
}

#[test]
fn bad_context_json_names_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker()
        .args(["--database", &db(dir.path()), "run"])
        .arg(repo().join("examples/templates/order_fulfillment.yaml"))
        .args(["--context", "{\"order_id\": }"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--context:1:14: invalid JSON"), "{stderr}");
}

/// Polls `f` until it yields, for at most `secs` seconds.
fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_process_killed_mid_step_is_resumed_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("first-attempt-pid");
    let yaml = dir.path().join("crash.yaml");
    // Attempt 1 records its pid and hangs; attempt 2 succeeds at once.
    std::fs::write(
        &yaml,
        format!(
            "name: crash\nstep_templates:\n  - name: slow\n    handler:\n      kind: command\n      config:\n        program: sh\n        args: [-c, 'if [ \"$TASKER_ATTEMPT\" = 1 ]; then echo $$ > {m}.tmp; mv {m}.tmp {m}; exec sleep 120; fi; echo \"{{\\\"attempt\\\": $TASKER_ATTEMPT}}\"']\n  - name: after\n    depends_on_step: slow\n    handler: {{ kind: noop }}\n",
            m = marker.display()
        ),
    )
    .unwrap();

    let mut first = tasker()
        .args([
            "--database",
            &db(dir.path()),
            "run",
            "--quiet",
            "--lease-seconds",
            "1",
        ])
        .arg(&yaml)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = wait_for(60, || std::fs::read_to_string(&marker).ok());
    first.kill().unwrap(); // SIGKILL: no cleanup, the lease stays behind
    first.wait().unwrap();
    let _ = Command::new("kill").args(["-9", pid.trim()]).status(); // the orphaned `sleep`

    let out = tasker()
        .args([
            "--database",
            &db(dir.path()),
            "worker",
            "--exit-when-idle",
            "--lease-seconds",
            "1",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");

    let show = tasker()
        .args(["--database", &db(dir.path()), "tasks", "list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let task = &list["tasks"][0];
    assert_eq!(task["status"], "complete", "{list}");
    let id = task["id"].as_str().unwrap();
    let show = tasker()
        .args(["--database", &db(dir.path()), "tasks", "show", id, "--json"])
        .output()
        .unwrap();
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let slow = &detail["steps"][0];
    assert_eq!(slow["attempts"], 2, "{detail}");
    assert_eq!(slow["results"], serde_json::json!({"attempt": 2}));
}

#[test]
fn config_check_lists_every_problem_and_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tasker.toml");
    std::fs::write(
        &cfg,
        "[engine]\nmax_concurent_steps = 8\nlease_seconds = 1\nheartbeat_seconds = 10\n\n[logging]\nlevel = \"chatty\"\n",
    )
    .unwrap();
    let c = cfg.display().to_string();
    let out = tasker()
        .args(["--config", &c, "config", "check"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("3 configuration problem(s)"), "{stderr}");
    assert!(stderr.contains(&format!("engine.max_concurent_steps = 8 ({c}:2): unknown key. Fix: did you mean `engine.max_concurrent_steps`?")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "logging.level = \"chatty\" ({c}:7): is not a level"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "engine.heartbeat_seconds = 10.0 ({c}:4): must be shorter than engine.lease_seconds (1)"
        )),
        "{stderr}"
    );
    // The same checks stop a worker from starting.
    let out = tasker().args(["--config", &c, "worker"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_check_reports_bad_templates_and_passes_a_good_setup() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("bad.yaml"), "name: x\nstep_templates: []\n").unwrap();
    let env_db = db(dir.path());
    let out = tasker()
        .args(["--database", &env_db, "config", "check"])
        .env(
            "TASKER__ENGINE__TEMPLATE_DIRECTORIES",
            format!("[\"{}\"]", templates.display()),
        )
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("engine.template_directories (environment variable TASKER__ENGINE__TEMPLATE_DIRECTORIES)"), "{stderr}");
    assert!(
        stderr.contains("step_templates: a template needs at least one step"),
        "{stderr}"
    );

    std::fs::remove_file(templates.join("bad.yaml")).unwrap();
    std::fs::copy(
        repo().join("examples/templates/order_fulfillment.yaml"),
        templates.join("ok.yaml"),
    )
    .unwrap();
    let out = tasker()
        .args(["--database", &env_db, "config", "check"])
        .env(
            "TASKER__ENGINE__TEMPLATE_DIRECTORIES",
            format!("[\"{}\"]", templates.display()),
        )
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 template(s) valid"), "{stdout}");
}

#[test]
fn config_show_prints_sources_and_redacts_secrets() {
    let out = tasker()
        .args([
            "--database",
            "postgres://app:hunter2@db.invalid/tasker",
            "config",
            "show",
        ])
        .env("TASKER__ENGINE__MAX_CONCURRENT_STEPS", "12")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("database.url = \"postgres://app:***@db.invalid/tasker\"  # flag --database / TASKER_DATABASE_URL"), "{stdout}");
    assert!(stdout.contains("engine.max_concurrent_steps = 12  # environment variable TASKER__ENGINE__MAX_CONCURRENT_STEPS"), "{stdout}");
    assert!(
        stdout.contains("engine.claim_batch_size = 64  # default"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"));
}

#[test]
fn an_unreachable_database_is_a_clear_start_up_error() {
    let out = tasker()
        .args([
            "--database",
            "postgres://nobody@127.0.0.1:1/none",
            "config",
            "check",
        ])
        .env("TASKER__DATABASE__ACQUIRE_TIMEOUT_SECONDS", "1")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("database.url (flag --database / TASKER_DATABASE_URL): cannot open PostgreSQL database postgres://nobody@127.0.0.1:1/none"), "{stderr}");
}

/// `tasker prune`: a dry run counts, a run deletes (archiving first), and
/// `tasker maintenance` reports its upkeep; a bad age is a clear error.
#[test]
fn prune_and_maintenance_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker()
        .args(["--database", &db(dir.path()), "run"])
        .arg(repo().join("examples/templates/order_fulfillment.yaml"))
        .args([
            "--context",
            r#"{"order_id": 7, "items": ["book"], "amount_cents": 1299}"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    // Inside the default 30-day window: nothing.
    let out = tasker()
        .args(["--database", &db(dir.path()), "prune", "--dry-run"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("0 finished task(s) would be pruned"),
        "{stdout}"
    );
    // The task finished under a second ago: wait until it is older than 1 s.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let archive = dir.path().join("archive");
    let out = tasker()
        .args([
            "--database",
            &db(dir.path()),
            "prune",
            "--older-than",
            "1s",
            "--json",
        ])
        .env(
            "TASKER__RETENTION__ARCHIVE",
            format!("jsonl:{}", archive.display()),
        )
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (v["tasks"].as_u64(), v["archived"].as_u64()),
        (Some(1), Some(1)),
        "{stdout}"
    );
    assert_eq!(std::fs::read_dir(&archive).unwrap().count(), 1);
    let list = tasker()
        .args(["--database", &db(dir.path()), "tasks", "list"])
        .output()
        .unwrap();
    assert!(
        text(&list).0.contains("0 of 0 task(s)"),
        "{:?}",
        text(&list)
    );

    let out = tasker()
        .args(["--database", &db(dir.path()), "maintenance"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("wal_checkpoint"), "{stdout}");

    let out = tasker()
        .args(["--database", &db(dir.path()), "prune", "--older-than", "3w"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("not an age"), "{:?}", text(&out));
}
