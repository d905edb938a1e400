//! What every connection of a run adds to (the `Tally`), the phase they watch, and the report
//! made from the tally at the end. `run` and `connection` both use it; neither uses the other's
//! state.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::{
    BenchArgs,
    process_stats::ProcessStats,
    report::{Report, percentiles},
};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Where the run is; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting and joining; nothing is sent yet.
    Holding,
    Sending,
    /// Senders stop; deliveries still count.
    Draining,
    Done,
}

/// Histograms are split in shards so connections on different threads rarely share a lock.
const HISTOGRAM_SHARDS: usize = 32;

/// What every connection adds to.
pub struct Tally {
    pub sent: AtomicU64,
    pub duplicates: AtomicU64,
    /// Connections that ended before the run did.
    pub dropped: AtomicU64,
    pub established: AtomicU64,
    pub failed: AtomicU64,
    pub received: AtomicU64,
    pub acked: AtomicU64,
    pub last_delivery_ms: AtomicU64,
    rooms: Vec<RoomTally>,
    errors: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<BTreeMap<String, u64>>,
    latency_us: Vec<Mutex<Histogram<u64>>>,
    connect_us: Vec<Mutex<Histogram<u64>>>,
}

#[derive(Default)]
struct RoomTally {
    members: AtomicU64,
    acked: AtomicU64,
    order_violations: AtomicU64,
}

/// 1 us to 10 minutes at 3 significant digits.
#[expect(clippy::expect_used, reason = "the bounds are constants, valid once and for all")]
fn histogram() -> Histogram<u64> {
    // Fails only for invalid bounds, and these are constants.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

fn histograms() -> Vec<Mutex<Histogram<u64>>> {
    (0..HISTOGRAM_SHARDS).map(|_| Mutex::new(histogram())).collect()
}

fn record(shards: &[Mutex<Histogram<u64>>], index: usize, value: Duration) {
    let mut histogram = shards[index % shards.len()].lock().unwrap_or_else(|p| p.into_inner());
    histogram.saturating_record(value.as_micros() as u64);
}

fn merged(shards: &[Mutex<Histogram<u64>>]) -> Histogram<u64> {
    let mut all = histogram();
    for shard in shards {
        let _ = all.add(&*shard.lock().unwrap_or_else(|p| p.into_inner()));
    }
    all
}

impl Tally {
    pub fn new(rooms: usize) -> Self {
        Self {
            sent: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            established: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            last_delivery_ms: AtomicU64::new(0),
            rooms: (0..rooms).map(|_| RoomTally::default()).collect(),
            errors: Mutex::default(),
            failures: Mutex::default(),
            latency_us: histograms(),
            connect_us: histograms(),
        }
    }

    pub fn failed(&self, why: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.failures.lock().unwrap_or_else(|p| p.into_inner()).entry(why.to_owned()).or_default() += 1;
    }

    pub fn record_connect(&self, index: usize, took: Duration) {
        record(&self.connect_us, index, took);
    }

    pub fn joined(&self, room: usize) {
        self.established.fetch_add(1, Ordering::Relaxed);
        self.rooms[room].members.fetch_add(1, Ordering::Relaxed);
    }

    pub fn acked(&self, room: usize) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        self.rooms[room].acked.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, code: &str) {
        *self.errors.lock().unwrap_or_else(|p| p.into_inner()).entry(code.to_owned()).or_default() += 1;
    }

    pub fn order_violation(&self, room: usize) {
        self.rooms[room].order_violations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivered(&self, index: usize, latency: Duration, at_ms: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.last_delivery_ms.fetch_max(at_ms, Ordering::Relaxed);
        record(&self.latency_us, index, latency);
    }

    #[cfg(test)]
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn order_violations(&self) -> u64 {
        self.rooms.iter().map(|r| r.order_violations.load(Ordering::Relaxed)).sum()
    }

    /// Every acked message times the members of its room.
    pub fn expected(&self) -> u64 {
        self.rooms.iter().map(|r| r.acked.load(Ordering::Relaxed) * r.members.load(Ordering::Relaxed)).sum()
    }

    pub fn settled(&self, connections: usize) -> bool {
        self.established.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) >= connections as u64
    }
}

impl Tally {
    /// Error frames received, of every code.
    pub fn error_count(&self) -> u64 {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }

    /// The report of a run that sent for `sending_time` from `sending_started`.
    pub fn report(
        &self,
        args: &BenchArgs,
        sending_time: Duration,
        sending_started: Instant,
        before: Vec<ProcessStats>,
        after: Vec<ProcessStats>,
    ) -> Report {
        let received = self.received.load(Ordering::Relaxed);
        let expected = self.expected();
        // Deliveries per second over the time from the first send to the last delivery.
        let sending_started_ms = now_ms().saturating_sub(sending_started.elapsed().as_millis() as u64);
        let last = self.last_delivery_ms.load(Ordering::Relaxed);
        let delivering = Duration::from_millis(last.saturating_sub(sending_started_ms))
            .max(sending_time.min(Duration::from_secs(1)));
        Report {
            connections_established: self.established.load(Ordering::Relaxed),
            connections_failed: self.failed.load(Ordering::Relaxed),
            connections_dropped: self.dropped.load(Ordering::Relaxed),
            failures: self.failures.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            messages_sent: self.sent.load(Ordering::Relaxed),
            messages_acked: self.acked.load(Ordering::Relaxed),
            errors: self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            deliveries_expected: expected,
            deliveries_received: received,
            lost: expected.saturating_sub(received),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            order_violations_per_room: self
                .rooms
                .iter()
                .enumerate()
                .filter_map(|(room, t)| {
                    let violations = t.order_violations.load(Ordering::Relaxed);
                    (violations > 0).then(|| (format!("{}{room}", args.room_prefix), violations))
                })
                .collect(),
            deliveries_per_second: if received == 0 { 0.0 } else { received as f64 / delivering.as_secs_f64() },
            sending_seconds: sending_time.as_secs_f64(),
            latency_ms: percentiles(&merged(&self.latency_us)),
            connect_ms: percentiles(&merged(&self.connect_us)),
            nodes_before: before,
            nodes_after: after,
            bench_cpu_seconds: 0.0,
            node_cpu_us_per_delivery: 0.0,
            steal_percent: 0.0,
        }
    }
}
