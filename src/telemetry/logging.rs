//! The tracing subscriber: log lines (JSON for containers, or human-readable) filtered by
//! `RUST_LOG` (default `info`), and, when an OTLP endpoint is configured, the OpenTelemetry layer
//! with a filter of its own (so `RUST_LOG=warn` never silences traces).

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, filter_fn},
    fmt::{self, format::JsonFields},
    prelude::*,
};

use super::{
    json_lines::FlatJson,
    traces::{self, CONTEXT_TARGET, DELIVERY_TARGET, TraceSetupError},
};

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Keeps the trace exporter alive; dropping it flushes the spans still queued.
#[must_use = "dropping the guard stops the trace exporter"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // At exit: a collector that is down only costs the export timeout.
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber. Calling it again (as tests do) keeps the first one.
pub fn init_telemetry(format: LogFormat, node: &str) -> Result<TelemetryGuard, TraceSetupError> {
    let provider = traces::provider_from_env(node)?;
    let log_filter = || {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
        // Per-delivery spans are for traces only. actix-http logs a client's malformed request at
        // ERROR, which is no operator's alarm: each such error ends its connection, and
        // `startup` logs it at debug and counts it (`rookery_http_client_errors_total`).
        FilterExt::and(
            filter,
            filter_fn(|metadata| {
                metadata.target() != DELIVERY_TARGET
                    && !(*metadata.level() == tracing::Level::ERROR && metadata.target().starts_with("actix_http::h1"))
            }),
        )
    };
    let logs = match format {
        LogFormat::Json => {
            fmt::layer().fmt_fields(JsonFields::new()).event_format(FlatJson).with_filter(log_filter()).boxed()
        }
        LogFormat::Pretty => fmt::layer().with_filter(log_filter()).boxed(),
    };
    let otel = provider.as_ref().map(|provider| {
        traces::layer(provider).with_filter(filter_fn(|metadata| {
            metadata.is_span() && metadata.target().starts_with("rookery") && metadata.target() != CONTEXT_TARGET
        }))
    });
    // Already installed: a test binary starts many nodes in one process.
    let _ = tracing_subscriber::registry().with(logs).with(otel).try_init();
    Ok(TelemetryGuard { provider })
}
