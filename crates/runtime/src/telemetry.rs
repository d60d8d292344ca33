//! Logs, traces and metrics.
//!
//! Logs go to stdout through `tracing` (pretty for people, JSON for collectors); spans are
//! exported over OTLP/gRPC when an endpoint is configured; W3C trace context is read from incoming
//! gRPC metadata (see `server`) and written to outgoing calls by [`inject_trace_context`];
//! Prometheus metrics are served on their own port.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusHandle};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// A `tracing` filter directive; `RUST_LOG` overrides it.
    pub log_filter: String,
    /// OTLP/gRPC collector endpoint, e.g. `http://otel-collector:4317`; no export when unset.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    /// Address of the Prometheus `/metrics` endpoint; none when unset.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_filter: "info".into(),
            otlp_endpoint: None,
            service_name: "quanyu".into(),
            metrics_listen: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("cannot build the OTLP exporter: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot install the tracing subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
    #[error("cannot start the Prometheus recorder: {0}")]
    Prometheus(#[from] metrics_exporter_prometheus::BuildError),
    #[error("cannot listen for Prometheus scrapes: {0}")]
    MetricsListen(std::io::Error),
}

/// Flushes exported spans when dropped or shut down.
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            // The SDK's shutdown blocks while it flushes.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

/// Installs the global subscriber, propagator and metrics recorder. Call once, from `main`.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::try_new(&config.log_filter)?,
    };
    let fmt_layer = match config.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().compact().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).boxed(),
    };
    let tracer_provider = config
        .otlp_endpoint
        .as_ref()
        .map(|endpoint| {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(config.service_name.clone())
                .build();
            Ok::<_, TelemetryError>(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        })
        .transpose()?;
    let otel_layer = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("quanyu")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;
    if let Some(address) = config.metrics_listen {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("grpc_server_handling_seconds".into()),
                &LATENCY_BUCKETS_SECONDS,
            )?
            .install_recorder()?;
        let listener = std::net::TcpListener::bind(address).map_err(TelemetryError::MetricsListen)?;
        listener.set_nonblocking(true).map_err(TelemetryError::MetricsListen)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(TelemetryError::MetricsListen)?;
        tokio::spawn(serve_metrics(listener, recorder));
        tracing::info!(%address, "prometheus metrics at /metrics");
    }
    Ok(TelemetryGuard { tracer_provider })
}

/// Latency buckets, 1 ms to 30 s (the default deadline): a histogram, unlike a summary, adds up
/// across replicas.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// Serves `/metrics` (and nothing else: any other path is 404): the recorded metrics and the
/// process's own (CPU, memory, open files, threads), read at each scrape.
async fn serve_metrics(listener: tokio::net::TcpListener, recorder: PrometheusHandle) {
    let process = metrics_process::Collector::default();
    process.describe();
    let render = move || {
        let (recorder, process) = (recorder.clone(), process.clone());
        async move {
            process.collect();
            recorder.render()
        }
    };
    let routes = axum::Router::new().route("/metrics", axum::routing::get(render));
    if let Err(error) = axum::serve(listener, routes).await {
        tracing::error!(%error, "the metrics endpoint stopped");
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes());
        if let (Ok(key), Ok(value)) = (key, value.parse()) {
            self.0.insert(key, value);
        }
    }
}

/// Makes `span` a child of the W3C trace context (`traceparent`) in the request headers.
pub fn adopt_trace_context(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    // Fails only when no OpenTelemetry layer is installed, in which case there is nothing to link.
    let _ = span.set_parent(parent);
}

/// Writes the current span's W3C trace context into outgoing gRPC metadata.
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt as _;

    use super::*;

    #[test]
    fn trace_context_goes_out_in_metadata_and_comes_back_from_headers() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let outgoing = tracing::info_span!("client call");
            let mut metadata = tonic::metadata::MetadataMap::new();
            outgoing.in_scope(|| inject_trace_context(&mut metadata));
            let sent_trace = outgoing.context().span().span_context().trace_id();
            let traceparent = metadata.get("traceparent").unwrap().to_str().unwrap().to_owned();
            assert!(traceparent.contains(&sent_trace.to_string()), "{traceparent}");

            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", traceparent.parse().unwrap());
            let incoming = tracing::info_span!("server call");
            adopt_trace_context(&incoming, &headers);
            assert_eq!(incoming.context().span().span_context().trace_id(), sent_trace);
        });
    }
}
