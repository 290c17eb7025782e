//! Built-in handler kinds usable from YAML without writing Rust.
//!
//! | kind | does |
//! |---|---|
//! | `noop` | succeeds at once; results = the step's `inputs` (or `{}`) |
//! | `sleep` | waits `config.seconds` (or `config.milliseconds`), then succeeds |
//! | `command` | runs a program; JSON on stdin, JSON results from stdout |
//! | `http` | one HTTP request per attempt; see [`http`] and [`HttpPolicy`] |

mod command;
pub mod http;
mod noop;
mod process_group;
mod sleep;

pub use command::{Command, CommandConfig};
pub use http::{Http, HttpConfig, HttpPolicy};
pub use noop::Noop;
pub use sleep::Sleep;
