//! Logs, traces and metrics: a `tracing` subscriber writing human-readable or JSON lines to
//! stderr, spans exported to an OpenTelemetry collector over OTLP/gRPC when one is configured,
//! and the Prometheus registry ([`metrics`]).
//!
//! Export is off unless the config's `[telemetry] otlp_endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables name a
//! collector. Either way a caller's W3C `traceparent` is read, so log lines carry the caller's
//! trace id.

pub mod metrics;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The variables that turn export on without a config, as OpenTelemetry's SDKs read them.
const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// What [`init`] installed; [`Telemetry::shutdown`] sends the spans still buffered.
#[must_use = "spans buffered at exit are lost unless `shutdown` is called"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter; the process is about to exit.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "could not send the last spans");
        }
    }
}

/// Installs the global subscriber; `RUST_LOG` overrides the default `info` level. Spans go to
/// `otlp_endpoint` (from the config) or to the collector the `OTEL_EXPORTER_OTLP_*` variables
/// name. Must run inside the Tokio runtime, which the exporter uses.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let from_env = ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    let (provider, export_error) = if otlp_endpoint.is_some() || from_env {
        match tracer_provider(otlp_endpoint) {
            Ok(provider) => (Some(provider), None),
            Err(error) => (None, Some(error)),
        }
    } else {
        (None, None)
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("zoomgate"))
            .with_tracked_inactivity(false)
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // A second init (e.g. in tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json()).try_init(),
    };
    if let Some(error) = export_error {
        tracing::error!(%error, "cannot export spans; serving without");
    }
    Telemetry { provider }
}

fn tracer_provider(
    endpoint: Option<&str>,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("zoomgate");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter.build()?)
        .with_resource(resource.build())
        .build())
}

/// The span of one incoming gRPC call: a server span that continues the caller's W3C
/// `traceparent`, with the trace and span ids as fields, so that log lines carry them.
pub fn server_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        trace_id = Empty,
        span_id = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    // Without the OpenTelemetry layer (no export) this does nothing, and the ids are the
    // caller's.
    let _ = span.set_parent(parent.clone());
    let context = span.context();
    let ours = context.span().span_context().clone();
    let theirs = parent.span().span_context().clone();
    if ours.is_valid() {
        span.record("trace_id", ours.trace_id().to_string());
        span.record("span_id", ours.span_id().to_string());
    } else if theirs.is_valid() {
        span.record("trace_id", theirs.trace_id().to_string());
    }
    span
}

/// Reads propagation headers from an HTTP request.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
