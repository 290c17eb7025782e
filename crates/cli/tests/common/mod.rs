//! Helpers the CLI's test files share: the real `tasker` binary with a clean
//! environment, output as text, free ports, the repository root.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
