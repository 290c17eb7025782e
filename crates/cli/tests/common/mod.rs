//! Helpers the CLI's test files share: the real `tasker` binary with a clean
//! environment, output as text, free ports, the repository root.
#![allow(dead_code, clippy::unwrap_used)]

pub mod receiver;
pub mod shared_work;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The `tasker` binary run in `dir`, with no database or configuration
/// inherited from the environment of the test run.
pub fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tasker"));
    c.env_remove("TASKER_DATABASE_URL")
        .env_remove("TASKER_CONFIG")
        .current_dir(dir);
    c
}

/// [`bin`] on a SQLite file `t.db` in `dir`, logging text at `warn`.
pub fn tasker(dir: &Path) -> Command {
    let mut c = bin(dir);
    c.env("TASKER_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .arg("--database")
        .arg(format!("sqlite://{}", dir.join("t.db").display()));
    c
}

/// (stdout, stderr) of a finished command, as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repository's root folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A spawned `tasker serve`, killed if the test fails before stopping it.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Waits (at most 30 s) for the JSON start-up line `tasker serve
    /// listening` on the server's stderr (spawned with `Stdio::piped()` and
    /// `--log-format json`) and returns it parsed.
    pub fn started(&mut self) -> serde_json::Value {
        use std::io::{BufRead, BufReader};
        let stderr = self.0.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the server did not log its address");
            if line.contains("tasker serve listening") {
                return serde_json::from_str(&line).unwrap();
            }
        }
    }
}

/// Waits up to `secs` for a spawned `tasker` process to exit and asserts it
/// succeeded (its stderr, when piped, is in the message); kills it and
/// fails the test when it runs longer.
pub fn wait_exit(mut child: Child, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(status.success(), "worker failed: {status}\n{err}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("worker did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
