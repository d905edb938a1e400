//! The node's Prometheus metrics, served at `GET /metrics`.
//!
//! One [`Metrics`] per node, cloned into every actor, route and engine task: a clone is one
//! `Arc` to the node's [`MetricSet`] (every connection holds a few, so a clone of the whole set,
//! a pointer per metric, would cost each connection hundreds of bytes).
//! `docs/observability.md` lists what each one means.

use std::{ops::Deref, sync::Arc, time::Duration};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Metric, Registry},
};

use crate::protocol::ErrorCode;

type Labeled<V, M = Counter> = Family<[(&'static str, V); 1], M>;
type HistogramFamily = Family<[(&'static str, &'static str); 1], Histogram, fn() -> Histogram>;

/// Publish-to-write latency buckets: 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Redis command buckets: 50 us to about 1.6 s.
fn command_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// A handle on the node's metrics.
#[derive(Clone)]
pub struct Metrics(Arc<MetricSet>);

impl Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

/// Every metric a node exports.
pub struct MetricSet {
    registry: Registry,
    /// Open WebSocket sessions on this node.
    pub connections: Gauge,
    /// Rooms with at least one member on this node.
    pub rooms: Gauge,
    connections_opened: Labeled<&'static str>,
    frames_received: Labeled<&'static str>,
    error_frames: Labeled<&'static str>,
    closes: Labeled<u16>,
    /// Messages this node published (from sessions and the server API).
    pub messages_published: Counter,
    /// Frames handed to local sessions by room fan-out.
    pub deliveries: Counter,
    /// Frames not written because the session's outbound queue was full.
    pub slow_consumer_drops: Counter,
    /// Connections reset because the peer took none of their last frames for a heartbeat.
    pub connections_reset: Counter,
    /// Bytes held for sending by every session of the node (see `ws::budget`).
    pub outbound_bytes: Gauge,
    /// Sessions closed because the node was over its outbound budget.
    pub outbound_evictions: Counter,
    api_errors: Labeled<u16>,
    /// HTTP connections that have not finished their request (head or body), or wait for the
    /// next one on a kept-alive connection (`http::pending`).
    pub pending_requests: Gauge,
    pending_closed: Labeled<&'static str>,
    http_client_errors: Labeled<&'static str>,
    delivery_latency: Histogram,
    redis_commands: HistogramFamily,
    bus_events: Labeled<&'static str>,
    /// Entries this node read from its inboxes (the Redis engine's bus).
    pub bus_entries_read: Counter,
    bus_pending: Labeled<u32, Gauge>,
    bus_lag_ms: Labeled<u32, Gauge>,
    /// Silent nodes this node reaped.
    pub reaped_nodes: Counter,
    /// `gap` events delivered to rooms on this node.
    pub gaps: Counter,
    /// Failed joins whose presence could not be undone, even after retries.
    pub presence_undo_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `metric` and hands it back, so each field is declared in one line.
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Self {
        Self(Arc::new(MetricSet::new()))
    }
}

impl MetricSet {
    fn new() -> Self {
        let mut r = Registry::with_prefix("rookery");
        let r = &mut r;
        let metrics = Self {
            connections: register(r, "connections", "Open WebSocket sessions", Gauge::default()),
            rooms: register(r, "rooms", "Rooms with members on this node", Gauge::default()),
            connections_opened: register(
                r,
                "connections_opened",
                "WebSocket upgrade attempts by result",
                Labeled::default(),
            ),
            frames_received: register(r, "frames_received", "Client frames by type", Labeled::default()),
            error_frames: register(r, "error_frames", "Error frames sent, by code", Labeled::default()),
            closes: register(r, "closes", "Sessions closed, by WebSocket close code", Labeled::default()),
            messages_published: register(r, "messages_published", "Messages published", Counter::default()),
            deliveries: register(r, "deliveries", "Frames fanned out to local sessions", Counter::default()),
            slow_consumer_drops: register(
                r,
                "slow_consumer_drops",
                "Frames dropped because a session's outbound queue was full",
                Counter::default(),
            ),
            connections_reset: register(
                r,
                "connections_reset",
                "Connections reset because the peer took none of their last frames for a heartbeat interval",
                Counter::default(),
            ),
            outbound_bytes: register(
                r,
                "outbound_bytes",
                "Bytes held for sending by every session of the node, queued or being written",
                Gauge::default(),
            ),
            outbound_evictions: register(
                r,
                "outbound_evictions",
                "Sessions closed (1013) because the node was over ROOKERY_OUTBOUND_BUDGET_BYTES",
                Counter::default(),
            ),
            api_errors: register(r, "api_errors", "Server API errors by HTTP status", Labeled::default()),
            pending_requests: register(
                r,
                "http_pending_requests",
                "HTTP connections that have not finished their request",
                Gauge::default(),
            ),
            pending_closed: register(
                r,
                "http_pending_closed",
                "HTTP connections closed before finishing their request, by reason",
                Labeled::default(),
            ),
            http_client_errors: register(
                r,
                "http_client_errors",
                "HTTP connections that ended on a client's mistake, by kind",
                Labeled::default(),
            ),
            delivery_latency: register(
                r,
                "delivery_latency_seconds",
                "From a message's publish time (its id) to its write to a session on this node",
                latency_histogram(),
            ),
            redis_commands: register(
                r,
                "redis_command_seconds",
                "Redis round trips by operation",
                HistogramFamily::new_with_constructor(command_histogram),
            ),
            bus_events: register(
                r,
                "bus_events",
                "Events the engine handed to this node, by outcome",
                Labeled::default(),
            ),
            bus_entries_read: register(
                r,
                "bus_entries_read",
                "Entries this node read from its inboxes",
                Counter::default(),
            ),
            bus_pending: register(
                r,
                "bus_pending",
                "Bus entries this node has read but not acknowledged, per shard",
                Labeled::default(),
            ),
            bus_lag_ms: register(
                r,
                "bus_lag_milliseconds",
                "How far this node's bus reads are behind, per shard (0 when drained)",
                Labeled::default(),
            ),
            reaped_nodes: register(r, "reaped_nodes", "Silent nodes this node reaped", Counter::default()),
            gaps: register(r, "gaps", "Gap events delivered to rooms on this node", Counter::default()),
            presence_undo_failures: register(
                r,
                "presence_undo_failures",
                "Failed joins whose presence could not be undone after retries (the user may stay listed)",
                Counter::default(),
            ),
            registry: Registry::default(),
        };
        Self { registry: std::mem::take(r), ..metrics }
    }

    /// An upgrade attempt ended: `ok`, `unauthorized`, `forbidden_origin` or `over_limit`.
    pub fn connection_opened(&self, result: &'static str) {
        self.connections_opened.get_or_create(&[("result", result)]).inc();
    }

    /// A client frame arrived; `kind` is its type, or `invalid`, `binary`.
    pub fn frame_received(&self, kind: &'static str) {
        self.frames_received.get_or_create(&[("type", kind)]).inc();
    }

    pub fn error_frame(&self, code: ErrorCode) {
        self.error_frames.get_or_create(&[("code", code.as_str())]).inc();
    }

    /// A session closed with `code` (1006: the peer vanished without a close frame).
    pub fn closed(&self, code: u16) {
        self.closes.get_or_create(&[("code", code)]).inc();
    }

    pub fn api_error(&self, status: u16) {
        self.api_errors.get_or_create(&[("status", status)]).inc();
    }

    /// A connection was closed before it finished its request: `timeout` (its request took
    /// longer than `ROOKERY_REQUEST_TIMEOUT_MS`) or `evicted` (the oldest one when a new
    /// connection found `ROOKERY_MAX_PENDING_REQUESTS` pending).
    pub fn pending_closed(&self, reason: &'static str) {
        self.pending_closed.get_or_create(&[("reason", reason)]).inc();
    }

    /// A connection ended on a client's mistake (malformed request, head too large, ...).
    pub fn http_client_error(&self, kind: &'static str) {
        self.http_client_errors.get_or_create(&[("kind", kind)]).inc();
    }

    /// A message written to a session `age` after it was published.
    pub fn delivered_after(&self, age: Duration) {
        self.delivery_latency.observe(age.as_secs_f64());
    }

    /// One Redis round trip for `operation` took `took`.
    pub fn redis_command(&self, operation: &'static str, took: Duration) {
        self.redis_commands.get_or_create(&[("operation", operation)]).observe(took.as_secs_f64());
    }

    /// What became of an event the engine handed over: `delivered` (to a local room),
    /// `no_local_members`, `duplicate` (already delivered), `undecodable`, `trimmed`, and
    /// `overdue` (a room whose events waited too long for a lower number, caught up).
    pub fn bus_event(&self, outcome: &'static str) {
        self.bus_events.get_or_create(&[("outcome", outcome)]).inc();
    }

    pub fn set_bus_pending(&self, shard: u32, pending: i64) {
        self.bus_pending.get_or_create(&[("shard", shard)]).set(pending);
    }

    pub fn set_bus_lag(&self, shard: u32, lag: Duration) {
        self.bus_lag_ms.get_or_create(&[("shard", shard)]).set(lag.as_millis() as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
