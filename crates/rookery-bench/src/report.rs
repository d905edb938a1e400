//! What a run found: the JSON document (`--json`) and the human summary.

use std::{collections::BTreeMap, fmt};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::process_stats::ProcessStats;

/// Percentiles of a histogram recorded in microseconds, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

pub fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        count: histogram.len(),
        p50: ms(histogram.value_at_quantile(0.5)),
        p90: ms(histogram.value_at_quantile(0.9)),
        p99: ms(histogram.value_at_quantile(0.99)),
        p999: ms(histogram.value_at_quantile(0.999)),
        max: ms(histogram.max()),
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub connections_established: u64,
    pub connections_failed: u64,
    /// Connections the server ended during the run.
    pub connections_dropped: u64,
    pub failures: BTreeMap<String, u64>,
    pub messages_sent: u64,
    pub messages_acked: u64,
    /// Error frames by code (e.g. `rate_limited`).
    pub errors: BTreeMap<String, u64>,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub order_violations_per_room: BTreeMap<String, u64>,
    pub deliveries_per_second: f64,
    pub sending_seconds: f64,
    /// From the timestamp in the body to the receiving client.
    pub latency_ms: Percentiles,
    /// From the TCP connect to the `welcome` frame.
    pub connect_ms: Percentiles,
    pub nodes_before: Vec<ProcessStats>,
    pub nodes_after: Vec<ProcessStats>,
    /// CPU seconds this load generator used during the run (it shares the machine).
    pub bench_cpu_seconds: f64,
    /// The nodes' CPU from the first send to the end, over the deliveries received: the cost
    /// of delivery, without the connections' setup.
    pub node_cpu_us_per_delivery: f64,
    /// The share of the machine's CPU time its hypervisor stole while sending: how noisy the
    /// run's machine was.
    pub steal_percent: f64,
}

impl Report {
    pub fn order_violations(&self) -> u64 {
        self.order_violations_per_room.values().sum()
    }

    /// Whether the run proved delivery correct: nothing lost, duplicated or out of order.
    pub fn correct(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.order_violations() == 0
    }

    /// Why the run does not pass, if it does not. Besides incorrect delivery: connections that
    /// could not connect or were dropped, or messages the nodes refused, leave a run that did
    /// not do what was asked, however correct what arrived was.
    pub fn failure(&self) -> Option<&'static str> {
        if !self.correct() {
            Some("deliveries were lost, duplicated or out of order")
        } else if self.connections_failed > 0 || self.connections_dropped > 0 {
            Some("connections failed or were dropped")
        } else if !self.errors.is_empty() {
            Some("the nodes answered with errors")
        } else {
            None
        }
    }

    /// What the exit status says: 0 only for a run with no [`Report::failure`].
    pub fn passed(&self) -> bool {
        self.failure().is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "connections  {} established, {} failed, {} dropped",
            self.connections_established, self.connections_failed, self.connections_dropped
        )?;
        for (why, count) in &self.failures {
            writeln!(f, "  failed x{count}: {why}")?;
        }
        writeln!(
            f,
            "messages     {} sent, {} acked, errors {:?}",
            self.messages_sent, self.messages_acked, self.errors
        )?;
        writeln!(
            f,
            "deliveries   {} of {} expected, {} lost, {} duplicates, {} out of order",
            self.deliveries_received,
            self.deliveries_expected,
            self.lost,
            self.duplicates,
            self.order_violations()
        )?;
        writeln!(
            f,
            "rate         {:.0} deliveries/s over {:.1} s of sending",
            self.deliveries_per_second, self.sending_seconds
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        let c = &self.connect_ms;
        writeln!(f, "connect ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}", c.p50, c.p90, c.p99, c.max)?;
        for (before, after) in self.nodes_before.iter().zip(&self.nodes_after) {
            writeln!(
                f,
                "node {:>7}  RSS {:.1} -> {:.1} MiB, CPU {:.2} s (+{:.2} s)",
                before.pid,
                before.rss_bytes as f64 / 1048576.0,
                after.rss_bytes as f64 / 1048576.0,
                after.cpu_seconds,
                after.cpu_seconds - before.cpu_seconds
            )?;
        }
        if !self.nodes_after.is_empty() {
            writeln!(f, "node CPU     {:.1} us per delivery while sending (all nodes)", self.node_cpu_us_per_delivery)?;
        }
        writeln!(f, "bench        {:.2} s CPU (the load generator itself)", self.bench_cpu_seconds)?;
        writeln!(f, "machine      {:.1} % of CPU time stolen by the hypervisor while sending", self.steal_percent)?;
        match self.failure() {
            Some(why) => write!(f, "verdict      FAILED: {why}"),
            None => write!(f, "verdict      ok"),
        }
    }
}
