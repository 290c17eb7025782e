//! Log output: JSON lines or text, levels from the configuration or `RUST_LOG`.

use std::io::IsTerminal;
use tasker_config::{LoggingConfig, TelemetryConfig};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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

/// The log line layer for `format`, over any subscriber.
fn fmt_layer<S>(
    format: Format,
    writer: tracing_appender::non_blocking::NonBlocking,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        Format::Text => fmt.boxed(),
        Format::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
}

/// The trace exporter, when `telemetry.otlp_endpoint` is set: shut down by
/// [`flush`] so the last batch of spans is sent.
static TRACES: std::sync::Mutex<Option<opentelemetry_sdk::trace::SdkTracerProvider>> =
    std::sync::Mutex::new(None);

/// Flushes queued log lines and waits until they are written: call before
/// exiting, on every path, or the last lines are lost with the process.
/// Sends the last spans too.
pub fn flush() {
    if let Ok(mut t) = TRACES.lock()
        && let Some(provider) = t.take()
        && let Err(e) = provider.shutdown()
    {
        eprintln!("warning: traces: the last spans may not have been exported: {e}");
    }
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
    init_traced(format, config, default_level, None);
}

/// [`init`], plus span export to `telemetry.otlp_endpoint` when set (call
/// inside the runtime: the exporter batches on it). A bad endpoint is a
/// warning, not a refusal to start: logs and metrics still work.
pub fn init_traced(
    format: Option<Format>,
    config: Option<&LoggingConfig>,
    default_level: &str,
    telemetry: Option<&TelemetryConfig>,
) {
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
    let mut problem = None;
    let otel = telemetry
        .and_then(|t| {
            t.otlp_endpoint
                .as_deref()
                .map(|e| (e, t.service_name.as_str()))
        })
        .and_then(|(endpoint, service)| {
            match tasker_engine::telemetry::otlp::provider(endpoint, service) {
                Ok(provider) => {
                    use opentelemetry::trace::TracerProvider as _;
                    let layer =
                        tracing_opentelemetry::layer().with_tracer(provider.tracer("tasker"));
                    if let Ok(mut t) = TRACES.lock() {
                        *t = Some(provider);
                    }
                    Some(layer)
                }
                Err(e) => {
                    problem = Some(e);
                    None
                }
            }
        });
    let _ = match otel {
        // Traces have their own filter: Tasker's spans at `info`, whatever
        // the log level (a quiet `warn` log must not empty the traces).
        Some(otel) => {
            let spans = tracing_subscriber::filter::Targets::new()
                .with_target("tasker_engine", tracing::Level::INFO)
                .with_target("tasker_server", tracing::Level::INFO);
            tracing_subscriber::registry()
                .with(fmt_layer(format, writer).with_filter(filter))
                .with(otel.with_filter(spans))
                .try_init()
        }
        // Without traces, one global filter: disabled levels cost nothing.
        None => tracing_subscriber::registry()
            .with(filter)
            .with(fmt_layer(format, writer))
            .try_init(),
    };
    if let Some(e) = problem {
        tracing::warn!(error = %e, "traces are off");
    }
}
