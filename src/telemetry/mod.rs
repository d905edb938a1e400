//! What a node tells its operators: logs and traces (`logging`, `traces`) and Prometheus
//! metrics (`metrics`).

mod json_lines;
mod logging;
mod metrics;
pub mod traces;

pub use logging::{DEFAULT_LOG_FILTER, LogFormat, TelemetryGuard, init_telemetry};
pub use metrics::{MetricSet, Metrics};
