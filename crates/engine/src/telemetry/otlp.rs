//! The tracer provider: OTLP/HTTP (protobuf) to a collector, batched on the
//! tokio runtime (the exporter's HTTP client is our async reqwest, so the
//! SDK's default thread-based batch processor cannot drive it).

use super::TaskIdGenerator;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, TracerProviderBuilder};

/// Spans queued for export at most (the SDK's default is 2048).
pub const QUEUE: usize = 65_536;

/// A provider builder with Tasker's id generator (task root spans take the
/// task's ids) and `service.name`; add an exporter and call [`install`].
pub fn builder(service_name: &str) -> TracerProviderBuilder {
    SdkTracerProvider::builder()
        .with_id_generator(TaskIdGenerator::default())
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
}

/// Makes `provider` the global one, W3C trace context the propagator, and
/// switches Tasker's spans on.
pub fn install(provider: &SdkTracerProvider) {
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    super::enable();
}

/// A provider exporting to the OTLP/HTTP collector at `endpoint` (the full
/// traces URL, e.g. `http://127.0.0.1:4318/v1/traces`), installed
/// ([`install`]). Call inside the tokio runtime; shut it down on exit to
/// flush the last batch.
pub fn provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, String> {
    // The client needs the process's TLS provider (ring) installed first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: cannot build the HTTP client: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
    // The SDK drops spans when its queue is full (2048 by default): a bulk
    // create of 10,000 tasks emits 10,000 root spans at once. A deeper queue
    // (unless `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise; the other
    // `OTEL_BSP_*` variables apply as usual) keeps such bursts whole.
    let mut batch = opentelemetry_sdk::trace::BatchConfigBuilder::default();
    if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        batch = batch.with_max_queue_size(QUEUE);
    }
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .with_batch_config(batch.build())
        .build();
    let provider = builder(service_name).with_span_processor(processor).build();
    install(&provider);
    Ok(provider)
}
