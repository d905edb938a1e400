//! What every route and session of a node shares: settings, the engine, the room directory,
//! the authenticator, metrics and the connection count.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use crate::{
    auth::Authenticator, engine::Engine, http::PendingRequests, protocol::Limits, rooms::RoomDirectory,
    settings::Settings, shutdown::ShutdownSignal, telemetry::Metrics, ws::budget::OutboundBudget,
};

/// The node's shared state, handed to routes as `web::Data<Node>`.
pub struct Node {
    pub settings: Settings,
    pub limits: Limits,
    pub engine: Arc<dyn Engine>,
    pub directory: RoomDirectory,
    pub auth: Authenticator,
    pub metrics: Metrics,
    /// Set when the node drains; every session closes with 1012 (see `shutdown`).
    pub shutdown: ShutdownSignal,
    /// HTTP connections that have not finished their request (see `http::pending`).
    pub pending: PendingRequests,
    /// What every session's outbound queue may hold together (see `ws::budget`).
    pub outbound_budget: Arc<OutboundBudget>,
    connections: Arc<AtomicUsize>,
}

impl Node {
    pub fn new(
        settings: Settings,
        engine: Arc<dyn Engine>,
        directory: RoomDirectory,
        auth: Authenticator,
        metrics: Metrics,
    ) -> Self {
        Self {
            limits: settings.limits(),
            pending: PendingRequests::new(settings.max_pending_requests, settings.request_timeout, metrics.clone()),
            outbound_budget: OutboundBudget::new(settings.outbound_budget_bytes, metrics.clone()),
            settings,
            engine,
            directory,
            auth,
            metrics,
            shutdown: ShutdownSignal::default(),
            connections: Arc::default(),
        }
    }

    /// Takes one of the node's `max_connections` slots, or `None` when all are taken or the node
    /// is draining.
    pub fn admit(&self) -> Option<ConnectionSlot> {
        if self.shutdown.is_draining() {
            return None;
        }
        let max = self.settings.max_connections;
        self.connections.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        self.metrics.connections.inc();
        Some(ConnectionSlot { connections: self.connections.clone(), metrics: self.metrics.clone() })
    }

    /// Drains the node (sessions close with 1012) and stops it, as SIGTERM does.
    pub fn request_shutdown(&self) {
        self.shutdown.request();
    }

    /// Open sessions on this node.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }
}

/// A taken connection slot; released when dropped with its session.
pub struct ConnectionSlot {
    connections: Arc<AtomicUsize>,
    metrics: Metrics,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
        self.metrics.connections.dec();
    }
}
