//! Draining a node: on SIGTERM or SIGINT (or [`Node::request_shutdown`]) the node stops taking
//! clients and hands the ones it has to the other nodes without losing a message. This module
//! holds the drain's state, which sessions watch; `startup` listens for the signals and runs the
//! drain.
//!
//! 1. At once: `/readyz` answers 503 and new upgrades get 503, so load balancers move on.
//! 2. After `ROOKERY_DRAIN_DELAY_MS`: sessions close with 1012 ("server restarting"; clients
//!    reconnect elsewhere and resume with `since`), `ROOKERY_DRAIN_RATE` per second so the
//!    reconnects spread out. There is no list of sessions: each takes a ticket from a counter
//!    and closes at `start + ticket / rate`.
//! 3. Drained sessions keep their presence: the cluster's reaper removes the sessions of a node
//!    that stopped heartbeating, within `ROOKERY_NODE_TTL_MS`, and a user who reconnected
//!    elsewhere meanwhile is never announced as leaving and joining again.
//! 4. The engine stops: the bus consumer finishes its read, delivers and acknowledges it.
//! 5. The HTTP server stops and the process exits 0, within `ROOKERY_SHUTDOWN_GRACE_MS`, or is
//!    ended by a watchdog. A second SIGTERM or SIGINT exits at once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;

#[cfg(doc)]
use crate::node::Node;

/// Where the node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Serving,
    /// Sessions close from `closing_from` on, `rate` per second.
    Draining {
        closing_from: Instant,
        rate: u32,
    },
}

/// The node-wide drain signal and the sessions' close tickets.
pub struct ShutdownSignal {
    state: watch::Sender<Lifecycle>,
    /// Set by [`Node::request_shutdown`]: a stop without a signal (tests, embedding).
    requested: watch::Sender<bool>,
    tickets: Arc<AtomicU64>,
}

impl Default for ShutdownSignal {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(Lifecycle::Serving),
            requested: watch::Sender::new(false),
            tickets: Arc::default(),
        }
    }
}

impl ShutdownSignal {
    /// Asks the node to drain and stop, as a signal would.
    pub fn request(&self) {
        self.requested.send_replace(true);
    }

    pub(crate) async fn requested(&self) {
        let mut receiver = self.requested.subscribe();
        // An error means the node is gone: nothing left to wait for.
        let _ = receiver.wait_for(|requested| *requested).await;
    }

    /// Starts draining: sessions close from `delay` from now, `rate` per second. Idempotent.
    pub fn trigger(&self, delay: Duration, rate: u32) {
        self.state.send_if_modified(|state| match state {
            Lifecycle::Serving => {
                *state = Lifecycle::Draining { closing_from: Instant::now() + delay, rate: rate.max(1) };
                true
            }
            Lifecycle::Draining { .. } => false,
        });
    }

    pub fn is_draining(&self) -> bool {
        *self.state.borrow() != Lifecycle::Serving
    }

    /// Resolves, once the node drains, with the moment this session should close.
    pub fn close_time(&self) -> impl Future<Output = Instant> + 'static {
        let mut receiver = self.state.subscribe();
        let tickets = self.tickets.clone();
        async move {
            match receiver.wait_for(|state| *state != Lifecycle::Serving).await.map(|state| *state) {
                Ok(Lifecycle::Draining { closing_from, rate }) => {
                    let ticket = tickets.fetch_add(1, Ordering::Relaxed);
                    closing_from + Duration::from_secs_f64(ticket as f64 / f64::from(rate))
                }
                // The node is gone (or never drained): close now.
                _ => Instant::now(),
            }
        }
    }
}
