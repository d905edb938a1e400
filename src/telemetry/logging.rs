//! The tracing subscriber: JSON lines (for containers) or human-readable lines, filtered by
//! `RUST_LOG` (default `info`).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Installs the global subscriber. Calling it again (as tests do) keeps the first one.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry();
    let result = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true).with_filter(filter))
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_filter(filter)).try_init(),
    };
    // Already installed: a test binary starts many nodes in one process.
    drop(result);
}
