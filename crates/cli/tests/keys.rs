//! `tasker keys create|list|revoke`, and `tasker serve` with `auth.mode =
//! api_key` accepting the key it made (issue 11).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, tasker, text};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn keys_are_printed_once_listed_without_the_secret_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker(dir.path())
        .args(["keys", "create", "--name", "billing-worker"])
        .args([
            "--permission",
            "tasker.worker:*@billing",
            "--permission",
            "tasker.task:index",
        ])
        .args(["--expires", "30d"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let key = stdout.trim().to_string();
    assert!(
        key.starts_with("tk_") && key.len() == 3 + 32 + 1 + 43,
        "{key}"
    );
    assert!(stderr.contains("shown once"), "{stderr}");
    let id = key[3..35].to_string();

    let out = tasker(dir.path()).args(["keys", "list"]).output().unwrap();
    let (stdout, _) = text(&out);
    let pretty = uuid::Uuid::try_parse(&id).unwrap().to_string();
    assert!(
        stdout.contains(&pretty) && stdout.contains("billing-worker"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tasker.worker:*@billing tasker.task:index"),
        "{stdout}"
    );
    assert!(!stdout.contains(&key[36..]), "the secret is never listed");

    let out = tasker(dir.path())
        .args(["keys", "list", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["keys"][0]["id"], pretty);
    assert!(
        listed["keys"][0].get("hash").is_none(),
        "the hash is not printed either"
    );

    let out = tasker(dir.path())
        .args(["keys", "revoke", &pretty])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let out = tasker(dir.path())
        .args(["keys", "list", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed["keys"][0]["revoked_at"].is_string());

    let out = tasker(dir.path())
        .args(["keys", "revoke", "00000000-0000-4000-8000-000000000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no key"), "{:?}", text(&out));
}

#[test]
fn bad_key_requests_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            vec!["--permission", "tasker.tasks:create"],
            "unknown resource `tasker.tasks`",
        ),
        (
            vec!["--permission", "*", "--expires", "soon"],
            "--expires `soon` is not a lifetime",
        ),
        (
            vec!["--permission", "*", "--expires", "0d"],
            "must be positive",
        ),
    ] {
        let out = tasker(dir.path())
            .args(["keys", "create", "--name", "x"])
            .args(&args)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
    assert!(!dir.path().join("t.db").exists(), "nothing was stored");
}

#[test]
fn config_check_reads_the_jwt_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker(dir.path())
        .env("TASKER__AUTH__MODE", "jwt")
        .env("TASKER__AUTH__JWT__PUBLIC_KEY_FILE", "/nonexistent/key.pem")
        .env("TASKER__AUTH__JWT__ALGORITHM", "RS256")
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("auth.jwt.public_key_file: cannot read `/nonexistent/key.pem`"),
        "{stderr}"
    );
}

fn http(addr: &str, path: &str, key: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = key
        .map(|k| format!("X-API-Key: {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out)
}

#[test]
fn serve_with_api_keys_accepts_the_key_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasker(dir.path())
        .args([
            "keys",
            "create",
            "--name",
            "reader",
            "--permission",
            "tasker.task:index",
        ])
        .output()
        .unwrap();
    let key = text(&out).0.trim().to_string();
    let child = tasker(dir.path())
        .env("RUST_LOG", "info")
        .env("TASKER__AUTH__MODE", "api_key")
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--no-workers",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let started = server.started();
    assert_eq!(started["auth"], "api_key", "{started}");
    let addr = started["address"].as_str().unwrap().to_string();
    let (status, _) = http(&addr, "/tasker/health/live", None);
    assert_eq!(status, 200);
    let (status, out) = http(&addr, "/tasker/tasks", None);
    assert_eq!(status, 401, "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{out}"
    );
    let (status, out) = http(&addr, "/tasker/tasks", Some(&key));
    assert_eq!(status, 200, "{out}");
    let (status, out) = http(&addr, "/tasker/handlers", Some(&key));
    assert_eq!(status, 403, "{out}");
    assert!(out.contains("tasker.handler:index"), "{out}");
}

#[test]
fn config_check_builds_the_jwt_verifier_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::repo().join("crates/auth/tests/keys");
    let check = |vars: &[(&str, String)]| {
        let mut c = tasker(dir.path());
        c.env("TASKER__AUTH__MODE", "jwt");
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.args(["config", "check"]).output().unwrap();
        (out.status.code(), text(&out))
    };
    let pem = keys.join("ed_public.pem").display().to_string();
    let (code, out) = check(&[
        ("TASKER__AUTH__JWT__PUBLIC_KEY_FILE", pem.clone()),
        ("TASKER__AUTH__JWT__ALGORITHM", "EdDSA".into()),
    ]);
    assert_eq!(code, Some(0), "{out:?}");
    // An Ed25519 key read as RSA is refused at start, naming the key.
    let (code, (_, stderr)) = check(&[
        ("TASKER__AUTH__JWT__PUBLIC_KEY_FILE", pem),
        ("TASKER__AUTH__JWT__ALGORITHM", "RS256".into()),
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("auth.jwt.public_key_file:"), "{stderr}");
    // A JWKS file that is not one.
    let bogus = dir.path().join("jwks.json");
    std::fs::write(&bogus, "{\"keys\": 5}").unwrap();
    let (code, (_, stderr)) =
        check(&[("TASKER__AUTH__JWT__JWKS_FILE", bogus.display().to_string())]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is not a JSON Web Key Set"), "{stderr}");
}
