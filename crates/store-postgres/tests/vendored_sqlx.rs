//! The build uses our patched `sqlx-core` (vendor/README.md): the one that
//! sets `TCP_NODELAY` on every connection. Without it, a message sent in
//! more than one segment waits about 40 ms for the server's delayed ACK
//! (measured with `strace`, docs/PERFORMANCE.md, "Nagle's algorithm").
//! The option itself cannot be read back here (the workspace forbids the
//! `unsafe` a raw `getsockopt` needs), so this guards the two things that
//! would silently undo the fix: the lock file resolving `sqlx-core` from
//! crates.io again, and the patch line going missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn sqlx_core_resolves_to_the_vendored_copy() {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap();
    let entry = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"sqlx-core\"\n"))
        .expect("sqlx-core in Cargo.lock");
    // A path dependency has no `source` in the lock file.
    assert!(
        !entry.contains("source ="),
        "sqlx-core comes from a registry, not vendor/sqlx-core:\n{entry}"
    );
}

#[test]
fn the_vendored_copy_disables_nagle() {
    let socket =
        std::fs::read_to_string(workspace().join("vendor/sqlx-core/src/net/socket/mod.rs"))
            .unwrap();
    assert!(socket.contains("stream.set_nodelay(true)?;"));
}
