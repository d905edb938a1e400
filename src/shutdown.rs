//! Stopping a node: on SIGTERM or SIGINT (or [`Node::request_shutdown`]) every session is
//! closed with 1012 ("server restarting", so clients reconnect elsewhere and resume), then the
//! HTTP server stops. Sessions learn of it through a watch channel each one waits on, so there
//! is no list of sessions to keep.

use actix_web::dev::ServerHandle;
use tokio::sync::watch;

use crate::node::Node;

/// The node-wide stop signal.
pub struct ShutdownSignal {
    sender: watch::Sender<bool>,
}

impl Default for ShutdownSignal {
    fn default() -> Self {
        Self { sender: watch::Sender::new(false) }
    }
}

impl ShutdownSignal {
    /// Starts the shutdown; idempotent.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Resolves once the shutdown has started.
    pub fn wait(&self) -> impl Future<Output = ()> + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            // An error means the sender is gone with the node: nothing left to wait for.
            let _ = receiver.wait_for(|stopping| *stopping).await;
        }
    }
}

/// Waits for SIGTERM, SIGINT or a requested shutdown, then closes the sessions and stops the
/// server (waiting for connections to end, at most the server's shutdown timeout).
pub async fn stop_on_signal(node: actix_web::web::Data<Node>, server: ServerHandle) {
    let requested = node.shutdown.wait();
    tokio::select! {
        () = terminate_signal() => tracing::info!("SIGTERM received; closing sessions with 1012"),
        result = tokio::signal::ctrl_c() => {
            if let Err(error) = result {
                tracing::warn!(%error, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
            tracing::info!("SIGINT received; closing sessions with 1012");
        }
        () = requested => tracing::info!("shutdown requested; closing sessions with 1012"),
    }
    node.shutdown.trigger();
    server.stop(true).await;
}

async fn terminate_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}
