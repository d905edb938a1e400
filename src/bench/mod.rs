//! `rookery-bench`: a load generator that checks every delivery.
//!
//! It opens connections spread evenly over the node URLs and rooms (`run`), each a task that
//! joins its room and, for the senders, sends at a fixed rate with its send time in the body
//! (`connection`), over a lean WebSocket client of its own (`wire`). Every received message is
//! checked: its latency, its order (ids strictly increase per session), duplicates (each
//! sender's sequence) and, at the end, loss (every acked message times its room's members).
//! `report` prints the outcome; `process_stats` reads the nodes' RSS and CPU time.

mod args;
mod connection;
mod process_stats;
mod report;
mod run;
mod wire;

pub use args::{ArgsError, BenchArgs, USAGE, parse};
pub use process_stats::ProcessStats;
pub use report::{Percentiles, Report};
pub use run::{RunError, run};
