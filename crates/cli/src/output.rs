//! Everything the binary prints on stdout goes through here.
//!
//! `println!` panics when stdout is closed (`tasker tasks list | true`) or
//! full (`>/dev/full`). These functions return the failure instead, typed as
//! [`StdoutError`] so `main` can tell it from every other error: a closed
//! pipe ends the program quietly with exit 0, as `cat` or `ls` end when the
//! reader goes away; any other write failure (a full disk) is an error
//! message with exit 2.

use std::fmt;
use std::io::{self, Write};

/// Writing to stdout failed.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl StdoutError {
    /// The reader went away (`| head -1`): not an error worth reporting.
    pub fn is_closed(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

// No `source()`: the message already carries the I/O error.
impl std::error::Error for StdoutError {}

/// Writes `args` and flushes, so a failure surfaces here and not at exit.
pub fn write(args: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Finds a [`StdoutError`] anywhere in an error chain.
pub fn stdout_error(e: &anyhow::Error) -> Option<&StdoutError> {
    e.chain().find_map(|c| c.downcast_ref::<StdoutError>())
}

/// `println!` that returns [`StdoutError`] instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use outln;
