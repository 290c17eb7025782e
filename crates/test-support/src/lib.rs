//! # tasker-test-support
//!
//! Dev-only helpers shared by the test suites of several crates (never a
//! dependency of shipped code; `publish = false`):
//!
//! | module | what |
//! |---|---|
//! | [`db`] | a fresh store on a temporary SQLite file or a fresh PostgreSQL database |
//! | [`browser`] | chromedriver and a headless Chromium session, waiting on the page, screenshots |
//! | [`graphql_ws`] | a `graphql-transport-ws` client over a real socket |
//!
//! A failure here is a test failure: helpers panic with a message saying
//! what is missing (a browser that cannot start fails the test loudly, it
//! never skips).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;
pub mod db;
pub mod graphql_ws;

/// The WebDriver client, for tests that drive the browser.
pub use fantoccini;
