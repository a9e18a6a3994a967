//! Spans exported over OTLP/gRPC to a collector the test runs (a tonic server implementing the
//! collector's trace service): one request's spans, linked to each other and to the caller's
//! `traceparent`, with no secret in them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use zoomgate::emulator::Emulator;

use crate::process::{GatewayProcess, config_file};
use crate::support::*;

/// The caller's trace, as its W3C `traceparent` names it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// Keeps every export it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    fn spans(&self) -> Vec<Span> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|export| &export.resource_spans)
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| scope.spans.clone())
            .collect()
    }

    fn service_names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|export| &export.resource_spans)
            .filter_map(|resource| resource.resource.as_ref())
            .flat_map(|resource| &resource.attributes)
            .filter(|kv| kv.key == "service.name")
            .filter_map(|kv| string(kv.value.as_ref()?.value.as_ref()?))
            .collect()
    }
}

fn string(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(n) => Some(n.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), string(kv.value.as_ref()?.value.as_ref()?)?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_s_spans_reach_the_collector_linked_and_continuing_the_caller_s_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let zoom = Emulator::start(emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = config_file(
        &zoom,
        &format!("\n[telemetry]\notlp_endpoint = \"http://{otlp}\"\n"),
    );
    let mut gateway = GatewayProcess::start_with(&config, "export OTEL_BSP_SCHEDULE_DELAY=100;");

    let mut admin = client_at(gateway.addr, ADMIN_KEY).await;
    let mut request = tonic::Request::new(create_for("alice@sales.acme.test", "traced"));
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    request
        .metadata_mut()
        .insert("x-request-id", "otlp-trace-1".parse().unwrap());
    admin.create_meeting(request).await.unwrap();
    // Shutdown sends what is still buffered.
    assert_eq!(gateway.terminate(Duration::from_secs(10)), Some(0));

    let ours = |spans: &[Span]| -> Vec<Span> {
        spans
            .iter()
            .filter(|span| hex::encode(&span.trace_id) == TRACE_ID)
            .cloned()
            .collect()
    };
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = ours(&collector.spans());
        if ["grpc", "request", "zoom", "token_fetch"]
            .iter()
            .all(|kind| spans.iter().any(|s| kind_of(s) == *kind))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let by_kind = |kind: &str| -> Span {
        spans
            .iter()
            .find(|s| kind_of(s) == kind)
            .unwrap_or_else(|| panic!("no {kind} span among {spans:#?}"))
            .clone()
    };
    let server_span = by_kind("grpc");
    let request_span = by_kind("request");
    let zoom_span = by_kind("zoom");
    let token_span = by_kind("token_fetch");

    // The caller's trace goes on: the server span's parent is the caller's span.
    assert_eq!(hex::encode(&server_span.parent_span_id), CALLER_SPAN_ID);
    assert_eq!(server_span.name, "/zoomgate.v1.Meetings/CreateMeeting");
    assert_eq!(server_span.kind, 2, "SPAN_KIND_SERVER");
    // Parent and child are linked: grpc > request > zoom, and the token fetch below them.
    assert_eq!(request_span.parent_span_id, server_span.span_id);
    assert_eq!(zoom_span.parent_span_id, request_span.span_id);
    let below_request = |span: &Span| {
        let mut parent = span.parent_span_id.clone();
        for _ in 0..spans.len() {
            if parent == request_span.span_id {
                return true;
            }
            match spans.iter().find(|s| s.span_id == parent) {
                Some(up) => parent = up.parent_span_id.clone(),
                None => return false,
            }
        }
        false
    };
    assert!(below_request(&token_span), "{token_span:#?}");

    let request_fields = attributes(&request_span);
    for (key, value) in [
        ("caller", "admin"),
        ("operation", "create"),
        ("account", "acme-sales"),
        ("zoom_endpoint", "create_meeting"),
        ("code", "OK"),
        ("request_id", "otlp-trace-1"),
    ] {
        assert_eq!(
            request_fields.get(key).map(String::as_str),
            Some(value),
            "{key} in {request_fields:?}"
        );
    }
    let zoom_fields = attributes(&zoom_span);
    assert_eq!(zoom_fields.get("endpoint").unwrap(), "create_meeting");
    assert_eq!(zoom_fields.get("status").unwrap(), "ok");
    assert_eq!(
        attributes(&token_span).get("account").unwrap(),
        "acme-sales"
    );
    assert!(
        collector
            .service_names()
            .iter()
            .all(|name| name == "zoomgate")
    );

    // No secret, token or API key anywhere in what was exported.
    let exported = format!("{:?}", collector.0.lock().unwrap());
    for secret in [
        SALES_SECRET,
        SUPPORT_SECRET,
        ADMIN_KEY,
        "Bearer ",
        "access_token",
    ] {
        assert!(!exported.contains(secret), "the spans carry {secret}");
    }
    // The JSON log lines of the request carry the caller's trace id.
    assert!(!gateway.logs_containing(TRACE_ID).is_empty());

    server.abort();
    zoom.shutdown().await;
}

/// A span's kind by its name: the server span is named after the gRPC path.
fn kind_of(span: &Span) -> &str {
    if span.name.starts_with('/') {
        "grpc"
    } else {
        &span.name
    }
}
