//! A real browser for end-to-end tests: Debian's `chromium`, headless,
//! driven over WebDriver through `chromedriver` (`fantoccini`).
//!
//! - [`Driver::start`] runs chromedriver on a free port (killed on drop);
//!   [`Driver::session`] opens a headless Chromium through it.
//! - [`until`] waits in the page itself: a `MutationObserver` re-checks a
//!   condition on every change of the document, so a wait ends on the
//!   change (no sleeps, no polling from the test).
//! - [`save_screenshot`] writes PNGs to `$CARGO_TARGET_DIR/ui-screenshots/`
//!   (else the `target/` the test binary runs from) for a person to look at.
//!
//! `CHROMEDRIVER` and `CHROMIUM` override the programs. Missing programs
//! fail the test with what to install (`apt-get install chromium
//! chromium-driver`); nothing here skips.

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free port; killed (and reaped) on drop.
pub struct Driver {
    child: Child,
    /// Its WebDriver port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    /// Starts chromedriver and waits (at most 30 s) for its "started
    /// successfully" line; its output is drained afterwards so it never
    /// blocks on a full pipe.
    ///
    /// # Panics
    /// When chromedriver cannot start or does not become ready.
    pub fn start() -> Driver {
        let port = free_port();
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let mut child = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{program}` ({e}): the browser tests need Debian's `chromium` \
                     and `chromium-driver` packages (apt-get install chromium chromium-driver), \
                     or CHROMEDRIVER set to a chromedriver"
                )
            });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Dropped (killed) if it never gets ready.
        let driver = Driver { child, port };
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("started successfully") => return driver,
                Ok(_) => continue,
                Err(e) => panic!("`{program}` did not report that it started within 30 s ({e})"),
            }
        }
    }

    /// A headless Chromium session with a `width` × `height` window and
    /// `extra_args` (e.g. `--host-resolver-rules=...`); scripts may run
    /// for 60 s (the longest [`until`]).
    ///
    /// # Panics
    /// When the browser does not start.
    pub async fn session(&self, width: u32, height: u32, extra_args: &[&str]) -> Client {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--window-size={width},{height}"));
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": binary, "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| {
                panic!("Chromium ({binary}) did not start through chromedriver: {e}")
            });
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(0)),
            ))
            .await
            .unwrap();
        client
    }
}

/// Waits in the browser, re-checking on every DOM change, until the
/// JavaScript expression `cond` is truthy; returns its value when it is a
/// string or a number, else `true`.
///
/// A navigation (a submitted form, a followed link) ends the document the
/// wait runs in, and chromedriver then fails the script (as a script
/// timeout, or an unloaded document); the wait starts again in the new
/// document with the time left, so a condition about the page a click
/// leads to holds whether the navigation ends before or after the wait
/// begins.
///
/// # Panics
/// After `secs` seconds, naming `what`.
pub async fn until(c: &Client, cond: &str, secs: u64, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1);
        let script = format!(
            r#"const done = arguments[arguments.length - 1];
            const probe = () => {{ try {{ return ({cond}); }} catch (e) {{ return null; }} }};
            const answer = (v) => (typeof v === 'string' || typeof v === 'number') ? v : true;
            const first = probe();
            if (first) {{ done(answer(first)); return; }}
            const timer = setTimeout(() => {{ obs.disconnect(); done(null); }}, {ms});
            const obs = new MutationObserver(() => {{
                const v = probe();
                if (v) {{ clearTimeout(timer); obs.disconnect(); done(answer(v)); }}
            }});
            obs.observe(document, {{ subtree: true, childList: true, attributes: true, characterData: true }});"#
        );
        match c.execute_async(&script, vec![]).await {
            Ok(r) => {
                assert!(!r.is_null(), "timed out after {secs} s waiting for {what}");
                return r;
            }
            Err(e) if ended_by_navigation(&e.to_string()) && Instant::now() < deadline => {}
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Whether a failed script was cut short by its document going away.
fn ended_by_navigation(error: &str) -> bool {
    [
        "script timeout",
        "unloaded",
        "detached",
        "execution context",
    ]
    .iter()
    .any(|sign| error.contains(sign))
}

/// The value of the JavaScript expression `expr` in the page.
pub async fn js(c: &Client, expr: &str) -> Value {
    c.execute(&format!("return ({expr});"), vec![])
        .await
        .unwrap_or_else(|e| panic!("script `{expr}` failed: {e}"))
}

/// Where screenshots go: `$CARGO_TARGET_DIR/ui-screenshots`, else the
/// `target/` folder this test binary runs from (`target/debug/deps/..`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_path_buf()
        });
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves `png` as `name.png` in [`screenshot_dir`] and returns the path.
pub fn save_png(name: &str, png: &[u8]) -> PathBuf {
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

/// A screenshot of the whole window, saved as `name.png` ([`save_png`]).
pub async fn save_screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    save_png(name, &png)
}
