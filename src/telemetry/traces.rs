//! OpenTelemetry traces over OTLP/HTTP, so one message can be followed from the sender's socket,
//! through Redis, to every receiving socket on every node.
//!
//! Configured by the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`),
//! `OTEL_SERVICE_NAME` (default `rookery`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG` and `OTEL_BSP_*`. With no endpoint no exporter runs, the spans made
//! per delivery are never built, and a message carries no trace context. Spans are exported in
//! batches from a thread of their own: a collector that is down drops spans, never chat traffic.
//!
//! The W3C trace context travels as a `traceparent` string: from the client (header, query
//! parameter or frame field), into the bus entry, and out of it on every node.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    Context, KeyValue,
    propagation::TextMapPropagator,
    trace::{SpanContext, TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of spans made for every delivery (`bus.deliver`, `ws.send`): only the OpenTelemetry
/// layer listens to it, so with tracing off they cost a disabled-callsite check.
pub const DELIVERY_TARGET: &str = "rookery::delivery";

/// The target of long-lived spans that only give log lines their context (a session's id,
/// user and node): never exported.
pub const CONTEXT_TARGET: &str = "rookery::context";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceSetupError {
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0:?} is not supported: rookery exports http/protobuf")]
    Protocol(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// True when spans are exported (an OTLP endpoint is configured).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The tracer provider when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces one) is set; `None`
/// otherwise. `node` becomes the resource's `service.instance.id`.
pub fn provider_from_env(node: &str) -> Result<Option<SdkTracerProvider>, TraceSetupError> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    for variable in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Ok(protocol) = std::env::var(variable)
            && protocol.trim() != "http/protobuf"
        {
            return Err(TraceSetupError::Protocol(protocol));
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TraceSetupError::Exporter(e.to_string()))?;
    // Resource::builder reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the name defaults
    // to ours rather than the SDK's `unknown_service`.
    let named = set("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|attributes| attributes.contains("service.name="));
    let mut resource = Resource::builder();
    if !named {
        resource = resource.with_service_name("rookery");
    }
    let resource = resource.with_attribute(KeyValue::new("service.instance.id", node.to_owned())).build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(provider))
}

/// The layer that turns `tracing` spans into OpenTelemetry spans.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("rookery")).with_location(false).with_threads(false)
}

/// The remote context a `traceparent` string describes, if it is valid.
pub fn remote_context(traceparent: &str) -> Option<Context> {
    if traceparent.is_empty() || !enabled() {
        return None;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// Makes `parent` the parent of `span`, which must not have been entered yet.
pub fn set_parent(span: &tracing::Span, parent: Option<Context>) {
    if let Some(parent) = parent {
        // Fails only when tracing is off or the span already started: nothing to link then.
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` of `span`; empty when it is not recorded (tracing off or not sampled).
pub fn traceparent(span: &tracing::Span) -> String {
    if !enabled() {
        return String::new();
    }
    let context = span.context();
    if !context.span().span_context().is_sampled() {
        return String::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// Links `span` to `linked` (e.g. a session's frames to its handshake), when `linked` is valid.
pub fn add_link(span: &tracing::Span, linked: &SpanContext) {
    if linked.is_valid() {
        span.add_link(linked.clone());
    }
}

/// The OpenTelemetry context of `span`, to hand to work that records child spans elsewhere.
pub fn context(span: &tracing::Span) -> Context {
    span.context()
}

/// The span context of `span`, for links from later spans (invalid when tracing is off).
pub fn span_context(span: &tracing::Span) -> SpanContext {
    if !enabled() {
        return SpanContext::empty_context();
    }
    span.context().span().span_context().clone()
}

/// Records `trace_id` and `span_id` on `span` (it must declare both fields), so log lines
/// written inside it carry them.
pub fn record_ids(span: &tracing::Span) {
    let context = span_context(span);
    if context.is_valid() {
        span.record("trace_id", tracing::field::display(context.trace_id()));
        span.record("span_id", tracing::field::display(context.span_id()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tracing_nothing_is_extracted_or_injected() {
        assert!(!enabled());
        assert!(remote_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
        assert_eq!(traceparent(&tracing::Span::none()), "");
    }
}
