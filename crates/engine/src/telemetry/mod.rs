//! OpenTelemetry traces: one trace per task, a span per step attempt, in
//! every process and external worker that touches the task.
//!
//! ## One trace per task, without storing a trace context
//! A task's trace id *is* its id (a UUID v7 is 16 bytes, like a trace id),
//! and its root span id is derived from it ([`task_span_id`]). So any
//! process can put a step attempt into the task's trace knowing only the
//! task id, with no column to write and no read on the hot path: the
//! executor parents its `step` span on [`task_context`]. The root span
//! itself (`task`) is emitted once, when the task is created, with those
//! ids ([`record_task_created`]; the ids are forced through
//! [`TaskIdGenerator`], installed by [`otlp::provider`]).
//!
//! ## The caller's trace
//! A `traceparent` sent with `POST /tasker/tasks` is honoured twice: the
//! request's own span is its child (the server's middleware), and the
//! task's root span carries a *link* to it: the caller's trace shows the
//! request, the task's trace starts from the request, as OpenTelemetry's
//! messaging conventions do for work that outlives the call.
//!
//! ## Propagation
//! `http` steps send the step attempt's `traceparent` (and external workers
//! get the task root's in their claim answer, [`traceparent_of_task`]), so
//! their own spans join the task's trace.
//!
//! Everything here is a no-op (no allocation, one relaxed load) until
//! [`otlp::provider`] (or [`enable`]) switched tracing on.

pub mod otlp;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Switches span emission and propagation on (done by [`otlp::provider`];
/// tests with their own provider call it themselves).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether traces are on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The trace id of a task: its id's 16 bytes.
pub fn task_trace_id(task_id: Uuid) -> TraceId {
    TraceId::from_bytes(*task_id.as_bytes())
}

/// The span id of a task's root span: the id's last 8 bytes (random bits
/// of a UUID v7), never the invalid all-zero id.
pub fn task_span_id(task_id: Uuid) -> SpanId {
    let b = task_id.as_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[8..16]);
    if id == [0u8; 8] {
        id[7] = 1;
    }
    SpanId::from_bytes(id)
}

/// The task's root span, as a remote parent: what a step attempt's span
/// (in this process or any other) hangs under.
pub fn task_span_context(task_id: Uuid) -> SpanContext {
    SpanContext::new(
        task_trace_id(task_id),
        task_span_id(task_id),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

/// [`task_span_context`] as a parent context.
pub fn task_context(task_id: Uuid) -> Context {
    Context::new().with_remote_span_context(task_span_context(task_id))
}

/// The W3C `traceparent` of a task's root span (for external workers).
pub fn traceparent_of_task(task_id: Uuid) -> String {
    format_traceparent(&task_span_context(task_id))
}

/// A span context as a W3C `traceparent` header value.
pub fn format_traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// Parses a W3C `traceparent` (version 00); None when malformed or invalid.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2
        || version == "ff"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let sc = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

thread_local! {
    /// Ids the next span built on this thread must take (see [`TaskIdGenerator`]).
    static FORCED: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Random ids, except while [`record_task_created`] builds a task's root
/// span on this thread: then the task's own ids.
#[derive(Debug, Default)]
pub struct TaskIdGenerator {
    random: opentelemetry_sdk::trace::RandomIdGenerator,
}

impl opentelemetry_sdk::trace::IdGenerator for TaskIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        FORCED
            .get()
            .map(|(t, _)| t)
            .unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        FORCED
            .get()
            .map(|(_, s)| s)
            .unwrap_or_else(|| self.random.new_span_id())
    }
}

/// Emits the root span of a new task (`task`, with the task's ids), linked
/// to the caller's span when the request carried a `traceparent`.
pub fn record_task_created(
    task_id: Uuid,
    namespace: &str,
    name: &str,
    version: &str,
    caller: Option<&SpanContext>,
) {
    if !enabled() {
        return;
    }
    use opentelemetry::trace::{Span as _, SpanKind};
    let tracer = opentelemetry::global::tracer("tasker");
    let mut builder = tracer
        .span_builder("task")
        .with_kind(SpanKind::Internal)
        .with_attributes([
            KeyValue::new("tasker.task_id", task_id.to_string()),
            KeyValue::new("tasker.namespace", namespace.to_string()),
            KeyValue::new("tasker.task_name", name.to_string()),
            KeyValue::new("tasker.version", version.to_string()),
        ]);
    if let Some(sc) = caller {
        builder = builder.with_links(vec![opentelemetry::trace::Link::with_context(sc.clone())]);
    }
    FORCED.set(Some((task_trace_id(task_id), task_span_id(task_id))));
    // No parent: a root, whose ids the generator takes from `FORCED`.
    let mut span = builder.start_with_context(&tracer, &Context::new());
    FORCED.set(None);
    span.end();
}

/// Puts a step attempt's `span` (the executor's `step` span) under its
/// task's root span.
pub fn parent_step_span(span: &tracing::Span, task_id: Uuid) {
    if !enabled() {
        return;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let _ = span.set_parent(task_context(task_id));
}

/// Makes an incoming request's `traceparent` (when valid) the parent of
/// its server `span`; invalid values are ignored, as W3C asks.
pub fn parent_on_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    if !enabled() {
        return;
    }
    if let Some(sc) = traceparent.and_then(parse_traceparent) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let _ = span.set_parent(Context::new().with_remote_span_context(sc));
    }
}

/// The `traceparent` of the current tracing span (a step attempt, when
/// called from a handler), for an outgoing request; None when traces are
/// off or the span is not traced.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| format_traceparent(sc))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn traceparents_round_trip_and_bad_ones_are_refused() {
        let task = Uuid::now_v7();
        let tp = traceparent_of_task(task);
        let sc = parse_traceparent(&tp).unwrap();
        assert_eq!(sc.trace_id(), task_trace_id(task));
        assert_eq!(sc.span_id(), task_span_id(task));
        assert!(sc.is_sampled());
        assert_eq!(task_trace_id(task).to_string(), task.simple().to_string());
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-xyz7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        assert!(
            parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_some()
        );
    }
}
