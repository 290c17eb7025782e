//! A `command` step's processes live and die together, and never outlive
//! their attempt or the worker that started them.
//!
//! * Each attempt runs in its own process group (the program is the group
//!   leader), so everything it starts can be signalled at once.
//! * [`GroupGuard`] SIGKILLs the whole group when the attempt ends: on
//!   timeout, abort or cancellation (the handler's future is dropped) and
//!   after the program exits (stragglers it left in the background).
//! * If the worker dies without running any destructor (SIGKILL, OOM kill),
//!   a watcher in the group does it: it waits for the worker's pid to
//!   disappear (GNU `tail --pid`, which polls with `kill(pid, 0)` every
//!   0.1 s without forking; a `kill -0` loop where `tail` lacks `--pid`)
//!   and then kills its own group. Linux's `PR_SET_PDEATHSIG` would reach
//!   only the direct child, needs `unsafe` between fork and exec, and fires
//!   when the forking *thread* exits; an inherited pipe cannot be named by
//!   a POSIX `sh` above fd 9. The watcher needs neither.
//!
//! The program is started as `sh -c SCRIPT tasker-command PID PROGRAM ARGS…`:
//! the script starts the watcher in the background, then `exec`s the
//! program in place, so the program keeps the shell's pid (the group id),
//! its stdin/stdout/stderr and its exit status.

use rustix::process::{Pid, Signal, kill_process_group};

/// Starts the watcher (`$1` is the worker's pid), then becomes the program.
/// The watcher's own stdio is /dev/null so it never holds the step's
/// output pipes open.
const SCRIPT: &str = r#"p=$1; shift
( tail --pid="$p" -s 0.1 -f /dev/null 2>/dev/null || while kill -0 "$p" 2>/dev/null; do sleep 0.2; done
  kill -KILL 0 ) </dev/null >/dev/null 2>&1 &
exec "$@""#;

/// A command that runs `program args` as the leader of a new process group,
/// with the worker-death watcher.
pub(crate) fn command(program: &str, args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("tasker-command")
        .arg(std::process::id().to_string())
        .arg(program)
        .args(args)
        .process_group(0);
    cmd
}

/// SIGKILLs a process group when dropped.
#[derive(Debug)]
pub(crate) struct GroupGuard(Option<Pid>);

impl GroupGuard {
    /// Guards the group led by `pid` (the spawned child's id).
    pub(crate) fn new(pid: Option<u32>) -> GroupGuard {
        GroupGuard(
            pid.and_then(|p| i32::try_from(p).ok())
                .and_then(Pid::from_raw),
        )
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // ESRCH (the group is already gone) is the usual, fine answer.
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }
}
