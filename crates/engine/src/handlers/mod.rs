//! Built-in handler kinds usable from YAML without writing Rust.
//!
//! | kind | does |
//! |---|---|
//! | `noop` | succeeds at once; results = the step's `inputs` (or `{}`) |
//! | `sleep` | waits `config.seconds` (or `config.milliseconds`), then succeeds |
//! | `command` | runs a program; JSON on stdin, JSON results from stdout |

mod command;
mod noop;
mod sleep;

pub use command::{Command, CommandConfig};
pub use noop::Noop;
pub use sleep::Sleep;
