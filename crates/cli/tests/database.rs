//! `--database` as the binary reads it: URLs without a scheme are refused
//! unless they are clearly a file, an empty URL is refused, a refused
//! connection is named at once, and `migrate` says whether it changed anything
//! (quietly: no PostgreSQL NOTICE in the log).
#![allow(clippy::unwrap_used)]

mod common;

/// The binary with no database flag, logging JSON at the default level.
fn tasker(dir: &Path) -> Command {
    let mut c = common::bin(dir);
    c.env_remove("RUST_LOG").env("TASKER_LOG_FORMAT", "json");
    c
}
use common::text;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tasker_store_postgres::testing::TestDb;

#[test]
fn a_bare_word_or_an_empty_url_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (url, expect) in [
        ("localhost", "is neither a URL nor clearly a file path"),
        ("", "is empty"),
        ("mysql://u@h/db", "unsupported scheme `mysql://`"),
    ] {
        for args in [&["migrate"][..], &["tasks", "list"], &["config", "check"]] {
            let out = tasker(dir.path())
                .args(["--database", url])
                .args(args)
                .output()
                .unwrap();
            let (stdout, stderr) = text(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{url:?} {args:?}: {stdout}{stderr}"
            );
            assert!(stderr.contains(expect), "{url:?} {args:?}: {stderr}");
            assert!(stderr.starts_with("error: "), "{url:?} {args:?}: {stderr}");
            assert!(!stdout.contains("applied"), "{url:?} {args:?}: {stdout}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files were created: {left:?}");
}

#[test]
fn a_path_that_is_clearly_a_file_is_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker(dir.path())
        .args(["--database", "./state.db", "migrate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("state.db").exists());
}

#[test]
fn a_refused_connection_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/tasker");
    for args in [&["migrate"][..], &["config", "check"]] {
        let started = Instant::now();
        let out = tasker(dir.path())
            .args(["--database", &url])
            .args(args)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("connection refused"), "{args:?}: {stderr}");
        // The pool's acquire timeout is 5 s; a refused connection is known at once.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn migrate_says_up_to_date_when_nothing_was_pending_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let first = tasker(dir.path())
        .args(["--database", &url, "migrate"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "{stderr}");
    assert!(stdout.starts_with("applied "), "{stdout}");
    let again = tasker(dir.path())
        .args(["--database", &url, "migrate"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&again);
    assert!(again.status.success(), "{stderr}");
    assert!(stdout.contains("is up to date"), "{stdout}");
}

#[tokio::test]
async fn migrate_on_postgres_is_quiet_and_says_up_to_date() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = tasker(dir.path())
            .args(["--database", &db.url, "migrate"])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        (stdout, stderr)
    };
    let (stdout, _) = run();
    assert!(stdout.starts_with("applied "), "{stdout}");
    let (stdout, stderr) = run();
    assert!(stdout.contains("is up to date"), "{stdout}");
    // sqlx surfaces PostgreSQL's NOTICE for `CREATE TABLE IF NOT EXISTS
    // _sqlx_migrations` at info; it is noise on every start.
    assert!(!stderr.contains("already exists"), "{stderr}");
}
