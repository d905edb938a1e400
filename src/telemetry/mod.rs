//! What a node tells its operators: logs (`logging`) and Prometheus metrics (`metrics`).

mod logging;
mod metrics;

pub use logging::{LogFormat, init_logging};
pub use metrics::Metrics;
