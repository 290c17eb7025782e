//! The `command` handler: runs a program for each attempt.
//!
//! The step's input goes to the program's stdin as one JSON document:
//! `{task_id, step_id, step_name, attempt, max_attempts, idempotency_key,
//! correlation_id, context, inputs, parent_results}`. Whatever the program
//! prints on stdout becomes the step's results (parsed as JSON; other text is
//! kept as `{"stdout": "…"}`). The exit code decides the outcome: a code in
//! `success_exit_codes` (default `[0]`) succeeds, one in
//! `permanent_exit_codes` (default `[]`) fails for good, any other fails and
//! is retried. A step timeout kills the process.
//!
//! Each attempt runs in its own process group, killed as a whole when the
//! attempt ends (timeout, abort, cancellation, or the program exiting with
//! children left behind) and when the worker process dies, even by SIGKILL
//! (see `process_group`).

use crate::handler::{StepContext, StepError, StepHandler};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Most bytes of stdout kept; a larger output fails the attempt.
const MAX_STDOUT: usize = 4 * 1024 * 1024;
/// Bytes of stderr kept for the error message (the tail).
const STDERR_TAIL: usize = 2048;

/// `handler.config` of a `command` step.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Program to run (looked up on `PATH` if not a path).
    pub program: String,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Exit codes that mean success.
    #[serde(default = "default_success")]
    pub success_exit_codes: Vec<i32>,
    /// Exit codes that mean "do not retry".
    #[serde(default)]
    pub permanent_exit_codes: Vec<i32>,
}

fn default_success() -> Vec<i32> {
    vec![0]
}

impl CommandConfig {
    /// Parses a step's handler config, with an error message naming the field.
    pub fn from_value(config: &Value) -> Result<Self, String> {
        serde_json::from_value(config.clone()).map_err(|e| format!("command handler config: {e}"))
    }
}

/// Runs a program; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Command;

#[async_trait]
impl StepHandler for Command {
    fn check_config(&self, config: &Value) -> Result<(), String> {
        let cfg = CommandConfig::from_value(config)?;
        if cfg.program.trim().is_empty() {
            return Err("command handler config: `program` must not be empty".into());
        }
        Ok(())
    }

    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        let cfg = CommandConfig::from_value(&step.config).map_err(StepError::permanent)?;
        let program = resolve(&cfg.program, cfg.env.get("PATH")).ok_or_else(|| {
            StepError::permanent(format!(
                "cannot start `{}`: no such executable file",
                cfg.program
            ))
        })?;
        let mut cmd = super::process_group::command(&program, &cfg.args);
        cmd.envs(&cfg.env)
            .env("TASKER_TASK_ID", step.task_id.to_string())
            .env("TASKER_STEP_ID", step.step_id.to_string())
            .env("TASKER_STEP_NAME", &step.step_name)
            .env("TASKER_ATTEMPT", step.attempt.to_string())
            .env("TASKER_IDEMPOTENCY_KEY", &step.idempotency_key)
            .env("TASKER_CORRELATION_ID", &step.correlation_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The engine enforces timeouts by dropping this future: the child
            // must die with it, not linger as an orphan.
            .kill_on_drop(true);
        if let Some(dir) = &cfg.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| StepError::permanent(format!("cannot start `{}`: {e}", cfg.program)))?;
        // Declared after `child`, so dropped before it: the whole group dies
        // whichever way this attempt ends.
        let _group = super::process_group::GroupGuard::new(child.id());

        let input = json!({
            "task_id": step.task_id,
            "step_id": step.step_id,
            "step_name": step.step_name,
            "attempt": step.attempt,
            "max_attempts": step.max_attempts,
            "idempotency_key": step.idempotency_key,
            "correlation_id": step.correlation_id,
            "context": step.context,
            "inputs": step.inputs,
            "parent_results": step.parent_results,
        });
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let write = async {
            if let Some(mut w) = stdin.take() {
                // A program that does not read stdin closes the pipe: not an error.
                let _ = w.write_all(input.to_string().as_bytes()).await;
            }
        };
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(r) = stdout.as_mut() {
                let mut limited = r.take(MAX_STDOUT as u64 + 1);
                limited.read_to_end(&mut buf).await.map(|_| buf)
            } else {
                Ok(buf)
            }
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(r) = stderr.as_mut() {
                let _ = r.read_to_end(&mut buf).await;
            }
            buf
        };
        let ((), out, err, status) = tokio::join!(write, read_out, read_err, child.wait());
        let status = status
            .map_err(|e| StepError::retryable(format!("waiting for `{}`: {e}", cfg.program)))?;
        let out = out.map_err(|e| {
            StepError::retryable(format!("reading stdout of `{}`: {e}", cfg.program))
        })?;
        if out.len() > MAX_STDOUT {
            return Err(StepError::permanent(format!(
                "`{}` printed more than {MAX_STDOUT} bytes on stdout",
                cfg.program
            )));
        }
        let code = status.code();
        let success = code.is_some_and(|c| cfg.success_exit_codes.contains(&c));
        if success {
            return Ok(parse_stdout(&out));
        }
        let tail = stderr_tail(&err);
        let what = match code {
            Some(c) => format!("`{}` exited with code {c}", cfg.program),
            None => format!("`{}` was killed by a signal", cfg.program),
        };
        let message = if tail.is_empty() {
            what
        } else {
            format!("{what}: {tail}")
        };
        let error = if code.is_some_and(|c| cfg.permanent_exit_codes.contains(&c)) {
            StepError::permanent(message)
        } else {
            StepError::retryable(message)
        };
        Err(match code {
            Some(c) => error.with_code(format!("EXIT_{c}")),
            None => error.with_code("SIGNAL"),
        })
    }
}

/// The executable `program` names: itself when it contains a `/`, else the
/// first match on `PATH` (the step's own `env.PATH` when it sets one). Done
/// here rather than by `exec` so that a missing program stays a permanent
/// "cannot start" error instead of a shell's exit code 127.
fn resolve(program: &str, path: Option<&String>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return runnable(std::path::Path::new(program)).then(|| program.to_string());
    }
    let path = path.cloned().or_else(|| std::env::var("PATH").ok())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| runnable(p))
        .map(|p| p.to_string_lossy().into_owned())
}

fn parse_stdout(out: &[u8]) -> Value {
    let text = String::from_utf8_lossy(out);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(trimmed).unwrap_or_else(|_| json!({ "stdout": trimmed }))
}

fn stderr_tail(err: &[u8]) -> String {
    let text = String::from_utf8_lossy(err);
    let trimmed = text.trim();
    let start = trimmed.len().saturating_sub(STDERR_TAIL);
    let start = (start..=trimmed.len())
        .find(|&i| trimmed.is_char_boundary(i))
        .unwrap_or(trimmed.len());
    trimmed[start..].to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use uuid::Uuid;

    fn ctx(config: Value) -> StepContext {
        StepContext {
            task_id: Uuid::nil(),
            step_id: Uuid::nil(),
            step_name: "s".into(),
            namespace: "n".into(),
            task_name: "t".into(),
            version: "1.0.0".into(),
            context: json!({"x": 21}),
            inputs: Value::Null,
            parent_results: Default::default(),
            config,
            attempt: 1,
            max_attempts: 3,
            idempotency_key: "k".into(),
            correlation_id: "c".into(),
            timeout: None,
            events: crate::events::EventEmitter::detached(),
        }
    }

    #[tokio::test]
    async fn stdin_json_in_stdout_json_out() {
        let cfg = json!({"program": "python3", "args": ["-c", "import json,sys; d=json.load(sys.stdin); print(json.dumps({'y': d['context']['x']*2, 'a': d['attempt']}))"]});
        assert_eq!(
            Command.call(&ctx(cfg)).await.unwrap(),
            json!({"y": 42, "a": 1})
        );
    }

    #[tokio::test]
    async fn text_output_is_kept() {
        let cfg = json!({"program": "echo", "args": ["hello"]});
        assert_eq!(
            Command.call(&ctx(cfg)).await.unwrap(),
            json!({"stdout": "hello"})
        );
    }

    #[tokio::test]
    async fn exit_codes_map_to_outcomes() {
        let cfg = json!({"program": "sh", "args": ["-c", "echo boom >&2; exit 3"]});
        let err = Command.call(&ctx(cfg)).await.unwrap_err();
        assert_eq!(err.kind(), "retryable");
        assert_eq!(err.to_string(), "`sh` exited with code 3: boom");
        let cfg = json!({"program": "sh", "args": ["-c", "exit 3"], "permanent_exit_codes": [3]});
        let err = Command.call(&ctx(cfg)).await.unwrap_err();
        assert_eq!(
            err,
            StepError::permanent("`sh` exited with code 3").with_code("EXIT_3")
        );
        let cfg = json!({"program": "sh", "args": ["-c", "exit 7"], "success_exit_codes": [0, 7]});
        assert!(Command.call(&ctx(cfg)).await.is_ok());
    }

    #[tokio::test]
    async fn bad_config_and_missing_program_are_permanent() {
        let err = Command.call(&ctx(json!({"args": []}))).await.unwrap_err();
        assert!(err.to_string().contains("missing field `program`"), "{err}");
        let err = Command
            .call(&ctx(json!({"program": "/nonexistent/prog"})))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "permanent");
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        let step = ctx(json!({"program": "sh", "args": ["-c", script]}));
        let running = tokio::spawn(async move { Command.call(&step).await });
        let pid = wait_for(|| {
            std::fs::read_to_string(&pidfile)
                .ok()
                .filter(|s| s.ends_with('\n'))
        })
        .await;
        running.abort();
        let _ = running.await;
        // Gone, or a zombie waiting to be reaped: either way no longer running.
        wait_for(|| {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
            (stat.is_empty() || stat.contains(") Z")).then_some(())
        })
        .await;
    }

    /// A program that exits leaving a background child behind: the child is
    /// killed with the attempt's process group.
    #[tokio::test]
    async fn background_children_die_with_the_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "sleep 30 >/dev/null 2>&1 </dev/null & echo $! > {}",
            pidfile.display()
        );
        let step = ctx(json!({"program": "sh", "args": ["-c", script]}));
        Command.call(&step).await.unwrap();
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        wait_for(|| {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
            (stat.is_empty() || stat.contains(") Z")).then_some(())
        })
        .await;
    }

    /// Polls `f` until it yields, failing the test after 10 s.
    async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
        for _ in 0..1000 {
            if let Some(v) = f() {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("condition not met within 10 s");
    }
}
