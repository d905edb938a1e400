//! The node's Prometheus metrics, served at `GET /metrics`.
//!
//! One [`Metrics`] per node, cloned into every actor and route: each metric is an `Arc` inside,
//! so a clone is cheap and every clone updates the same series. `docs/observability.md` lists
//! what each one means.

use std::sync::Arc;

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::protocol::ErrorCode;

type Labeled<V> = Family<[(&'static str, V); 1], Counter>;

/// Every metric a node exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
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
    /// Server API requests refused, by HTTP status.
    api_errors: Labeled<u16>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rookery");
        let connections = Gauge::default();
        let rooms = Gauge::default();
        let connections_opened = Labeled::default();
        let frames_received = Labeled::default();
        let error_frames = Labeled::default();
        let closes = Labeled::default();
        let messages_published = Counter::default();
        let deliveries = Counter::default();
        let slow_consumer_drops = Counter::default();
        let api_errors = Labeled::default();
        registry.register("connections", "Open WebSocket sessions", connections.clone());
        registry.register("rooms", "Rooms with members on this node", rooms.clone());
        registry.register(
            "connections_opened",
            "WebSocket upgrade attempts by result",
            connections_opened.clone(),
        );
        registry.register("frames_received", "Client frames by type", frames_received.clone());
        registry.register("error_frames", "Error frames sent, by code", error_frames.clone());
        registry.register("closes", "Sessions closed, by WebSocket close code", closes.clone());
        registry.register("messages_published", "Messages published", messages_published.clone());
        registry.register("deliveries", "Frames fanned out to local sessions", deliveries.clone());
        registry.register(
            "slow_consumer_drops",
            "Frames dropped because a session's outbound queue was full",
            slow_consumer_drops.clone(),
        );
        registry.register("api_errors", "Server API errors by HTTP status", api_errors.clone());
        Self {
            registry: Arc::new(registry),
            connections,
            rooms,
            connections_opened,
            frames_received,
            error_frames,
            closes,
            messages_published,
            deliveries,
            slow_consumer_drops,
            api_errors,
        }
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
