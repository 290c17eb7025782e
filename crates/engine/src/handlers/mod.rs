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

use crate::handler::StepHandler;
use serde_json::Value;

/// Checks the `config` of a built-in kind (`noop`, `sleep`, `command`,
/// `http`); other kinds are accepted here and checked by their handler when
/// registered. Used by template validation, which runs without an engine.
pub fn check_builtin_config(kind: &str, config: &Value) -> Result<(), String> {
    match kind {
        "sleep" => Sleep.check_config(config),
        "command" => Command.check_config(config),
        "http" => http::check_config(config),
        _ => Ok(()),
    }
}
