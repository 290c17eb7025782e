//! Log output of the binary: JSON lines parse without duplicate keys (a
//! parser keeps only one of them), and the lines queued in the non-blocking
//! writer are written before the process exits.
#![allow(clippy::unwrap_used)]

mod common;

/// The binary on a SQLite file in `dir`, logging JSON at info.
fn tasker(dir: &Path) -> Command {
    let mut c = common::bin(dir);
    c.env("RUST_LOG", "info")
        .args(["--log-format", "json", "--database"])
        .arg(format!("sqlite://{}", dir.join("t.db").display()));
    c
}

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::process::Command;

/// Any JSON value; deserializing fails on an object with a repeated key.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value::<Strict>()?;
        }
        Ok(Strict)
    }
}

#[test]
fn json_log_lines_have_no_duplicate_keys() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("failing.yaml");
    std::fs::write(
        &t,
        "name: failing\nstep_templates:\n  - name: boom\n    default_retry_limit: 1\n    handler:\n      kind: command\n      config: {program: sh, args: [-c, 'exit 3']}\n",
    )
    .unwrap();
    let out = tasker(dir.path())
        .args(["run", "-q"])
        .arg(&t)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    for line in &lines {
        if let Err(e) = serde_json::from_str::<Strict>(line) {
            panic!("{e}: {line}");
        }
    }
    // The step's span names the template under its own key.
    let failed = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["message"] == "step failed")
        .unwrap_or_else(|| panic!("no `step failed` line in {stderr}"));
    assert_eq!(failed["span"]["template"], "failing", "{failed}");
    assert_eq!(failed["span"]["name"], "step", "{failed}");
}

#[test]
fn the_last_log_line_before_exit_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let out = tasker(dir.path())
            .args(["worker", "--exit-when-idle"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.contains("\"tasker worker exiting\""), "{stderr}");
        assert!(stderr.contains("\"worker stopped\""), "{stderr}");
    }
}

#[test]
fn log_lines_before_an_error_exit_are_written_before_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("ext.yaml");
    std::fs::write(
        &t,
        "name: ext\nstep_templates:\n  - name: a\n    handler: {kind: external}\n",
    )
    .unwrap();
    // Nobody runs the external step: the wait times out, an error exit.
    let out = tasker(dir.path())
        .args(["run", "-q", "--timeout", "0.2"])
        .arg(&t)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let stopped = lines
        .iter()
        .position(|l| l.contains("\"worker stopped\""))
        .unwrap_or_else(|| panic!("no `worker stopped` line: {stderr}"));
    let error = lines
        .iter()
        .position(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(stopped < error, "{stderr}");
    assert_eq!(error, lines.len() - 1, "{stderr}");
}
