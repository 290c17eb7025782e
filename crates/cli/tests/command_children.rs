//! A `command` step's processes die with the worker: SIGKILL a real
//! `tasker run` process while its step runs `sh` with a child of its own,
//! and the step's whole process group is gone within a second (instead of
//! finishing its side effects while the step is re-run elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True while any process is in group `pgid`.
fn group_alive(pgid: i32) -> bool {
    // `kill -0 -PGID` succeeds while the group has a member; zombies
    // (killed, not yet reaped by init) do not count as running.
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // pid (comm) state ppid pgrp …; comm may contain spaces.
            let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
}

#[test]
fn sigkilling_the_worker_kills_the_step_process_group_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pgid");
    let marker = dir.path().join("side-effect");
    // The program records its pid (= its process group id: it leads the
    // group), starts a child, and would leave a side effect after 3 s.
    let script = format!(
        "echo $$ > {pid}.tmp && mv {pid}.tmp {pid}; sleep 3 & wait; touch {marker}",
        pid = pidfile.display(),
        marker = marker.display()
    );
    let template = dir.path().join("t.yaml");
    std::fs::write(
        &template,
        format!(
            "name: long\nstep_templates:\n  - name: a\n    handler:\n      kind: command\n      config:\n        program: sh\n        args: [\"-c\", {script:?}]\n"
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_tasker"))
        .args(["--database", &db, "run", "-q"])
        .arg(&template)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let pgid: i32 = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(group_alive(pgid));

    worker.kill().unwrap(); // SIGKILL: no destructor runs in the worker
    let killed = Instant::now();
    let _ = worker.wait();
    while group_alive(pgid) {
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "process group {pgid} still alive 1 s after the worker was SIGKILLed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("process group gone {:?} after SIGKILL", killed.elapsed());
    // And its side effect never happens.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        !marker.exists(),
        "the killed step's command finished its work"
    );
}
