//! Building and running a node: settings in, a listening HTTP server out, stopped by a signal
//! (the drain itself is described in `shutdown`).
//!
//! [`Application::build`] binds, picks the engine, makes the room directory it delivers through,
//! and starts the HTTP workers; tests call [`Application::with_listener`] with a port-0 listener and
//! talk to the node like any client.

use std::{
    net::TcpListener,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_http::{HttpService, Protocol, error::DispatchError};
use actix_service::{ServiceFactoryExt, fn_service, map_config};
use actix_web::{
    App,
    dev::{AppConfig, Server, ServerHandle},
    middleware::from_fn,
    web,
};
use futures_util::future::ready;
use tokio::net::TcpStream;

use crate::{
    auth::Authenticator,
    engine::{
        Delivery, Engine, MemoryEngine,
        redis::{RedisConfig, RedisEngine},
    },
    http::{self, GuardedStream},
    node::Node,
    rooms::{LocalMembers, RoomDirectory},
    settings::Settings,
    telemetry::Metrics,
};

/// Connections over the sessions and the pending requests that the server still accepts:
/// requests being answered, and refused handshakes lingering for their client to close.
const CONNECTION_MARGIN: usize = 1024;

/// How long a closing HTTP connection may take to flush its last answer.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a stopping node waits for connections to end after closing its sessions.
const SHUTDOWN_TIMEOUT_SECS: u64 = 3;

/// A running node.
pub struct Application {
    port: u16,
    server: Server,
    node: web::Data<Node>,
}

impl Application {
    /// Binds `settings.bind` and builds the node.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot bind ROOKERY_BIND={}: {e}", settings.bind))?;
        Self::with_listener(settings, listener).await
    }

    /// Builds the node on an already bound listener (port 0 in tests), with the engine the
    /// settings ask for: Redis when `ROOKERY_REDIS_URL` or `ROOKERY_REDIS_CLUSTER_NODES` is set,
    /// else in memory.
    pub async fn with_listener(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let directory = RoomDirectory::new(&settings.node_id, metrics.clone());
        let delivery: Arc<dyn Delivery> = Arc::new(directory.clone());
        let engine: Arc<dyn Engine> = match &settings.redis {
            None => Arc::new(
                MemoryEngine::new(settings.history_len, delivery)
                    .with_presence_max_users(settings.presence_max_users)
                    .with_key_window(settings.bus_retention_ms),
            ),
            Some(target) => {
                let config = RedisConfig {
                    target: target.clone(),
                    node_id: settings.node_id.clone(),
                    bus_shards: settings.bus_shards,
                    bus_retention_ms: settings.bus_retention_ms,
                    history_len: settings.history_len,
                    read_batch: settings.bus_read_count,
                    read_interval: settings.bus_read_interval,
                    publish_interval: settings.publish_interval,
                    node_ttl_ms: settings.node_ttl_ms,
                    max_lag_ms: settings.ready_max_lag_ms,
                    presence_max_users: settings.presence_max_users,
                    min_replicas: settings.redis_min_replicas,
                };
                Arc::new(RedisEngine::connect(config, delivery, metrics.clone()).await?)
            }
        };
        Self::assemble(settings, listener, directory, engine, metrics)
    }

    /// Builds the node with the engine `make_engine` returns; the engine must deliver every
    /// event through the [`Delivery`] it is given.
    pub fn with_engine(
        settings: Settings,
        listener: TcpListener,
        make_engine: impl FnOnce(&Settings, Arc<dyn Delivery>) -> Arc<dyn Engine>,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let directory = RoomDirectory::new(&settings.node_id, metrics.clone());
        let engine = make_engine(&settings, Arc::new(directory.clone()));
        Self::assemble(settings, listener, directory, engine, metrics)
    }

    fn assemble(
        settings: Settings,
        listener: TcpListener,
        directory: RoomDirectory,
        engine: Arc<dyn Engine>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let auth = Authenticator::from_settings(&settings.auth)?;

        let workers = settings.workers;
        // Sessions and pending requests have bounds of their own (`ROOKERY_MAX_CONNECTIONS`,
        // `ROOKERY_MAX_PENDING_REQUESTS`), enforced without ever stopping the accept loop: at
        // this one (per worker) the server stops accepting, and everyone is locked out.
        let max_connections =
            settings.max_connections.saturating_add(settings.max_pending_requests).saturating_add(CONNECTION_MARGIN);
        // The head's own deadline; `http::pending` holds every request (head and body) to it.
        let request_timeout = settings.request_timeout;
        let echo = settings.echo_endpoint;
        tracing::info!(node = %settings.node_id, engine = engine.kind(), port, "node starting");
        let node = web::Data::new(Node::new(settings, engine, directory, auth, metrics));
        let app_node = node.clone();
        let local_addr = listener.local_addr()?;
        // actix-web's `HttpServer`, but with an upgrade service: WebSocket handshakes get the
        // TCP stream itself (see `ws::upgrade_service`), everything else the app.
        let server = Server::build()
            .workers(workers)
            .max_concurrent_connections(max_connections)
            .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
            // Signals are ours (see `shutdown`): sessions are closed with 1012 first.
            .disable_signals()
            // Called once on each worker's thread, where its sessions will run.
            .listen("rookery-http", listener, move || {
                let worker = LocalMembers::start(app_node.metrics.clone());
                let app = App::new()
                    .app_data(app_node.clone())
                    .wrap(from_fn(http::track_pending))
                    .configure(http::routes(echo));
                let (pending, metrics) = (app_node.pending.clone(), app_node.metrics.clone());
                // Every connection is guarded from accept on (`http::pending`).
                fn_service(move |io: TcpStream| {
                    let peer = io.peer_addr().ok();
                    ready(Ok::<_, DispatchError>((pending.accept(io), Protocol::Http1, peer)))
                })
                .and_then(
                    HttpService::build()
                        .client_request_timeout(request_timeout)
                        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                        .local_addr(local_addr)
                        .on_connect_ext(|io: &GuardedStream, data| {
                            data.insert(io.handle());
                        })
                        .upgrade(crate::ws::upgrade_service(app_node.clone(), worker))
                        .finish(
                            map_config(app, |_| AppConfig::default()).map_err(|e: actix_web::Error| e.error_response()),
                        ),
                )
                .map_err(move |error| connection_error(&metrics, &error))
            })?
            .run();
        Ok(Self { port, server, node })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node's shared state (tests read its counters).
    pub fn node(&self) -> web::Data<Node> {
        self.node.clone()
    }

    /// Serves until SIGTERM, SIGINT or [`Node::request_shutdown`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        actix_web::rt::spawn(stop_on_signal(self.node.clone(), self.server.handle()));
        self.server.await
    }
}

/// How an HTTP connection ended in error: nearly always the client's doing (a malformed or
/// oversized request, a vanished peer), so logged at debug and counted, not raised as an alarm.
fn connection_error(metrics: &Metrics, error: &DispatchError) {
    use actix_http::error::ParseError;
    let kind = match error {
        DispatchError::Parse(ParseError::TooLarge) => "head_too_large",
        DispatchError::Parse(ParseError::Io(_)) | DispatchError::Io(_) => "io",
        DispatchError::Parse(_) => "malformed",
        DispatchError::SlowRequestTimeout => "request_timeout",
        DispatchError::DisconnectTimeout => "disconnect_timeout",
        _ => {
            tracing::warn!(%error, "HTTP connection failed");
            "other"
        }
    };
    metrics.http_client_error(kind);
    tracing::debug!(%error, kind, "HTTP connection ended on a client error");
}

/// Waits for SIGTERM, SIGINT or a requested shutdown, drains the node and stops the server.
async fn stop_on_signal(node: actix_web::web::Data<Node>, server: ServerHandle) {
    let settings = &node.settings;
    tokio::select! {
        () = stop_signal() => tracing::info!("stop signal received; draining"),
        () = node.shutdown.requested() => tracing::info!("shutdown requested; draining"),
    }
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let started = Instant::now();
    node.shutdown.trigger(Duration::from_millis(settings.drain_delay_ms), settings.drain_rate);
    let drain = async {
        // Leave a little of the grace for the engine and the server to stop.
        let sessions_deadline = started + grace.mul_f64(0.8);
        while node.connection_count() > 0 && Instant::now() < sessions_deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node.engine.shutdown().await;
        server.stop(true).await;
    };
    // A second signal ends the process at once; so does the grace running out.
    tokio::select! {
        () = drain => tracing::info!(took_ms = started.elapsed().as_millis() as u64, "drained"),
        () = stop_signal() => {
            tracing::warn!("second stop signal; exiting now");
            std::process::exit(1);
        }
        () = tokio::time::sleep(grace) => {
            tracing::error!("the drain outlasted ROOKERY_SHUTDOWN_GRACE_MS; exiting now");
            std::process::exit(1);
        }
    }
}

/// Resolves at the next SIGTERM or SIGINT.
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => {}
        () = interrupt => {}
    }
}
