//! Log output: JSON lines or text, levels from the configuration or `RUST_LOG`.

use std::io::IsTerminal;
use tasker_config::LoggingConfig;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// The target sqlx logs server notices under.
const QUIET_NOTICES: &str = "sqlx::postgres::notice";

impl Format {
    /// The `logging.format` value this stands for.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

/// Keeps the background log writer alive until [`flush`]; dropping it
/// writes out what is queued.
static GUARD: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// Flushes queued log lines and waits until they are written: call before
/// exiting, on every path, or the last lines are lost with the process.
pub fn flush() {
    if let Ok(mut g) = GUARD.lock() {
        g.take();
    }
}

/// Installs the global subscriber, writing to stderr from a background
/// thread: formatting stays on the caller, but the write system call does
/// not block the engine's hot path (measured in docs/PERFORMANCE.md).
///
/// Precedence: `RUST_LOG` over `logging.level` / `logging.modules` over
/// `default_level`; `--log-format` over `logging.format` over "JSON unless
/// stderr is a terminal".
pub fn init(format: Option<Format>, config: Option<&LoggingConfig>, default_level: &str) {
    let mut directives = match config {
        Some(c) => {
            let mut d = vec![c.level.clone()];
            d.extend(c.modules.iter().map(|(m, l)| format!("{m}={l}")));
            d
        }
        None => vec![default_level.to_string()],
    };
    // sqlx logs PostgreSQL NOTICEs at info, e.g. `relation "_sqlx_migrations"
    // already exists, skipping` on every start: noise unless asked for.
    if !directives.iter().any(|d| d.starts_with(QUIET_NOTICES)) {
        directives.push(format!("{QUIET_NOTICES}=warn"));
    }
    let directives = directives.join(",");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(default_level))
    });
    let configured = config.and_then(|c| match c.format.as_str() {
        "json" => Some(Format::Json),
        "text" => Some(Format::Text),
        _ => None,
    });
    let format = format
        .or(configured)
        .unwrap_or(if std::io::stderr().is_terminal() {
            Format::Text
        } else {
            Format::Json
        });
    // Not lossy: when the queue (128k lines) is full the caller waits rather
    // than dropping lines; short of that, writes never block the caller.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("tasker-log")
        .finish(std::io::stderr());
    if let Ok(mut g) = GUARD.lock() {
        *g = Some(guard);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
