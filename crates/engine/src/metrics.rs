//! Every Prometheus metric Tasker exports, named and described in one place
//! (docs/OBSERVABILITY.md lists them with their labels).
//!
//! Call sites use the small functions below rather than the `metrics`
//! macros directly, so a name or a label set cannot drift between callers.
//! Until [`install`] succeeded every function returns at once (one atomic
//! load, no label built): libraries, benchmarks and servers with
//! `telemetry.metrics_enabled = false` pay nothing.
//!
//! Cardinality is bounded by construction: labels are template namespaces
//! and names (a registry's worth), handler kinds, states, route templates
//! (never raw paths) and status codes; never task or step ids.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// `tasker_tasks_created_total{namespace, name}`.
pub const TASKS_CREATED: &str = "tasker_tasks_created_total";
/// `tasker_tasks_finished_total{namespace, name, status}`.
pub const TASKS_FINISHED: &str = "tasker_tasks_finished_total";
/// `tasker_steps_finished_total{handler_kind, status}`.
pub const STEPS_FINISHED: &str = "tasker_steps_finished_total";
/// `tasker_step_duration_seconds{handler_kind, status}` (histogram).
pub const STEP_DURATION: &str = "tasker_step_duration_seconds";
/// `tasker_step_retries_total{handler_kind}`.
pub const STEP_RETRIES: &str = "tasker_step_retries_total";
/// `tasker_claims_total{source}`.
pub const CLAIMS: &str = "tasker_claims_total";
/// `tasker_claim_batch_size{source}` (histogram).
pub const CLAIM_BATCH: &str = "tasker_claim_batch_size";
/// `tasker_outcome_write_seconds` (histogram).
pub const OUTCOME_WRITE: &str = "tasker_outcome_write_seconds";
/// `tasker_outcome_batch_size` (histogram).
pub const OUTCOME_BATCH: &str = "tasker_outcome_batch_size";
/// `tasker_lease_rescues_total`.
pub const LEASE_RESCUES: &str = "tasker_lease_rescues_total";
/// `tasker_queue_ready_steps` (gauge, at scrape time).
pub const QUEUE_READY: &str = "tasker_queue_ready_steps";
/// `tasker_queue_oldest_ready_age_seconds` (gauge, at scrape time).
pub const QUEUE_OLDEST_AGE: &str = "tasker_queue_oldest_ready_age_seconds";
/// `tasker_http_requests_total{method, route, status}`.
pub const HTTP_REQUESTS: &str = "tasker_http_requests_total";
/// `tasker_http_request_duration_seconds{method, route}` (histogram).
pub const HTTP_DURATION: &str = "tasker_http_request_duration_seconds";
/// `tasker_db_pool_connections{state}` (gauge: `open`, `idle`, `max`).
pub const DB_POOL: &str = "tasker_db_pool_connections";
/// `tasker_webhook_deliveries_total{event, outcome}` (for the webhook dispatcher).
pub const WEBHOOK_DELIVERIES: &str = "tasker_webhook_deliveries_total";
/// `tasker_webhook_delivery_lag_seconds` (histogram, for the webhook dispatcher).
pub const WEBHOOK_LAG: &str = "tasker_webhook_delivery_lag_seconds";

/// Every metric name above (docs/OBSERVABILITY.md and the Grafana
/// dashboard in `examples/grafana/` are checked against it).
pub const ALL: &[&str] = &[
    TASKS_CREATED,
    TASKS_FINISHED,
    STEPS_FINISHED,
    STEP_DURATION,
    STEP_RETRIES,
    CLAIMS,
    CLAIM_BATCH,
    OUTCOME_WRITE,
    OUTCOME_BATCH,
    LEASE_RESCUES,
    QUEUE_READY,
    QUEUE_OLDEST_AGE,
    HTTP_REQUESTS,
    HTTP_DURATION,
    DB_POOL,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LAG,
];

/// Step durations: 1 ms to 10 min.
const STEP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];
/// HTTP latencies: 1 ms to 30 s (long polls reach the claim timeout).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Outcome writes (one database round trip when all goes well): 0.5 ms
/// to 10 s.
const WRITE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Batch sizes (steps per claim, outcomes per write): 1 to 1000.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
/// Webhook lag: 10 ms to 1 h.
const LAG_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle). None when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(STEP_DURATION.into()), STEP_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(CLAIM_BATCH.into()), BATCH_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(OUTCOME_WRITE.into()), WRITE_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(OUTCOME_BATCH.into()), BATCH_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WEBHOOK_LAG.into()), LAG_BUCKETS)
                });
            let handle = match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot install the Prometheus recorder");
                    return None;
                }
            };
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Whether metrics are recorded (the recorder is installed).
fn on() -> bool {
    handle().is_some()
}

/// Whether metrics are recorded: callers skip reads that only feed labels.
pub fn enabled() -> bool {
    on()
}

/// The installed recorder's handle, if [`install`] succeeded.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get().and_then(Option::as_ref)
}

fn describe() {
    describe_counter!(
        TASKS_CREATED,
        "Tasks created, by template namespace and name."
    );
    describe_counter!(
        TASKS_FINISHED,
        "Tasks that reached a final state, by template and final status."
    );
    describe_counter!(
        STEPS_FINISHED,
        "Step attempts finished by this process's engine, by handler kind and outcome (complete, retry, error)."
    );
    describe_histogram!(
        STEP_DURATION,
        metrics::Unit::Seconds,
        "Handler run time of a step attempt, by handler kind and outcome."
    );
    describe_counter!(
        STEP_RETRIES,
        "Failed step attempts that will be retried, by handler kind."
    );
    describe_counter!(
        CLAIMS,
        "Steps leased, by source (poll: the claim loop, completion: claim on completion, external: the worker API)."
    );
    describe_histogram!(CLAIM_BATCH, "Steps per non-empty claim, by source.");
    describe_histogram!(
        OUTCOME_WRITE,
        metrics::Unit::Seconds,
        "Time to write one batch of step outcomes (with the claim on completion), from the engine's call to the store's answer."
    );
    describe_histogram!(OUTCOME_BATCH, "Step outcomes per written batch.");
    describe_counter!(
        LEASE_RESCUES,
        "Steps whose lease expired and that the rescuer returned to the queue or failed."
    );
    describe_gauge!(
        QUEUE_READY,
        "Steps ready to run now (read at scrape time, capped at 100000)."
    );
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        metrics::Unit::Seconds,
        "How long the oldest ready step has waited (0 when none; read at scrape time)."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency, by method and route template."
    );
    describe_gauge!(
        DB_POOL,
        "Database pool connections, by state (open, idle, max)."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts, by event and outcome (delivered, failed, gave_up)."
    );
    describe_histogram!(
        WEBHOOK_LAG,
        metrics::Unit::Seconds,
        "Time from an event to its successful webhook delivery."
    );
}

/// A task was created from `namespace.name`.
pub fn task_created(namespace: &str, name: &str) {
    if !on() {
        return;
    }
    counter!(TASKS_CREATED, "namespace" => namespace.to_string(), "name" => name.to_string())
        .increment(1);
}

/// A task of `namespace.name` reached the final `status`.
pub fn task_finished(namespace: &str, name: &str, status: &str) {
    if !on() {
        return;
    }
    counter!(
        TASKS_FINISHED,
        "namespace" => namespace.to_string(),
        "name" => name.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// A step attempt of `handler_kind` ended with `status` (`complete`,
/// `retry` or `error`) after `seconds` of handler time.
pub fn step_finished(handler_kind: &str, status: &'static str, seconds: f64) {
    if !on() {
        return;
    }
    let kind = handler_kind.to_string();
    counter!(STEPS_FINISHED, "handler_kind" => kind.clone(), "status" => status).increment(1);
    histogram!(STEP_DURATION, "handler_kind" => kind.clone(), "status" => status).record(seconds);
    if status == "retry" {
        counter!(STEP_RETRIES, "handler_kind" => kind).increment(1);
    }
}

/// A batch of `outcomes` step outcomes was written (with its claim on
/// completion) in `seconds`: the store's call, database round trip and
/// commit included. Failed attempts are not recorded (they are logged).
pub fn outcomes_written(outcomes: usize, seconds: f64) {
    if !on() {
        return;
    }
    histogram!(OUTCOME_WRITE).record(seconds);
    histogram!(OUTCOME_BATCH).record(outcomes as f64);
}

/// `n` steps were leased by `source` (`poll`, `completion`, `external`).
pub fn claimed(source: &'static str, n: usize) {
    if !on() {
        return;
    }
    if n == 0 {
        return;
    }
    counter!(CLAIMS, "source" => source).increment(n as u64);
    histogram!(CLAIM_BATCH, "source" => source).record(n as f64);
}

/// The rescuer handled `n` expired leases.
pub fn rescued(n: u64) {
    if !on() {
        return;
    }
    counter!(LEASE_RESCUES).increment(n);
}

/// The ready queue at scrape time.
pub fn queue(ready: u64, oldest_age_seconds: f64) {
    if !on() {
        return;
    }
    gauge!(QUEUE_READY).set(ready as f64);
    gauge!(QUEUE_OLDEST_AGE).set(oldest_age_seconds);
}

/// One HTTP answer. `route` is the matched template, never the raw path.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    if !on() {
        return;
    }
    counter!(
        HTTP_REQUESTS,
        "method" => method.to_string(),
        "route" => route.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
    histogram!(HTTP_DURATION, "method" => method.to_string(), "route" => route.to_string())
        .record(seconds);
}

/// Pool usage at scrape time.
pub fn db_pool(open: u32, idle: u32, max: u32) {
    if !on() {
        return;
    }
    gauge!(DB_POOL, "state" => "open").set(open as f64);
    gauge!(DB_POOL, "state" => "idle").set(idle as f64);
    gauge!(DB_POOL, "state" => "max").set(max as f64);
}

/// A webhook delivery attempt for `event` ended with `outcome`
/// (`delivered`, `failed`, `gave_up`); `lag_seconds` (event to successful
/// delivery) only for `delivered`. For the webhook dispatcher.
pub fn webhook_delivery(event: &str, outcome: &'static str, lag_seconds: Option<f64>) {
    if !on() {
        return;
    }
    counter!(WEBHOOK_DELIVERIES, "event" => event.to_string(), "outcome" => outcome).increment(1);
    if let Some(lag) = lag_seconds {
        histogram!(WEBHOOK_LAG).record(lag);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Installing twice hands back the same recorder, and what the helpers
    /// record shows up in the text format with its labels.
    #[test]
    fn helpers_render_with_their_labels() {
        let h = install().unwrap();
        assert!(std::ptr::eq(h, install().unwrap()));
        task_created("shop", "checkout");
        step_finished("noop", "retry", 0.002);
        claimed("poll", 3);
        claimed("poll", 0);
        let text = h.render();
        assert!(
            text.contains(r#"tasker_tasks_created_total{namespace="shop",name="checkout"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tasker_step_retries_total{handler_kind="noop"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tasker_step_duration_seconds_bucket{handler_kind="noop",status="retry",le="0.005"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tasker_claim_batch_size_count{source="poll"} 1"#),
            "{text}"
        );
    }
}
