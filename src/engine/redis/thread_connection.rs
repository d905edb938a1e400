//! A connection to Redis for each thread that publishes.
//!
//! The node's shared connection (`connection`) is driven by a task on the thread that opened it,
//! so a session's publish on a worker thread woke that thread to send, and was woken back for
//! the answer: two wakes across threads on every message, a large share of a node's cost in
//! small rooms (BENCHMARKS.md, benchmark 7). Publishes instead go over a connection of the
//! publishing thread's own, opened the first time that thread publishes, and driven there.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use redis::Client;

use super::RedisConnection;

/// How long opening a thread's connection may take: a Redis that accepts the socket but does
/// not answer (frozen) must not hold a publish forever. Nothing was sent then, so the caller
/// answers `unavailable`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(1);

thread_local! {
    /// This thread's connections, one per engine.
    static CONNECTIONS: RefCell<HashMap<usize, RedisConnection>> = RefCell::new(HashMap::new());
}

/// Hands out the current thread's connection for one engine.
pub struct ThreadConnections {
    client: Client,
    /// Tells this engine's connections apart from another engine's on the same thread.
    engine: usize,
}

impl ThreadConnections {
    pub fn new(client: Client) -> Self {
        static NEXT_ENGINE: AtomicUsize = AtomicUsize::new(0);
        Self { client, engine: NEXT_ENGINE.fetch_add(1, Ordering::Relaxed) }
    }

    /// The current thread's connection, opened on first use.
    pub async fn get(&self) -> redis::RedisResult<RedisConnection> {
        if let Some(conn) = CONNECTIONS.with(|connections| connections.borrow().get(&self.engine).cloned()) {
            return Ok(conn);
        }
        let conn = tokio::time::timeout(OPEN_TIMEOUT, RedisConnection::connect(self.client.clone())).await.map_err(
            |_| redis::RedisError::from((redis::ErrorKind::Io, "opening a connection to Redis timed out")),
        )??;
        CONNECTIONS.with(|connections| connections.borrow_mut().insert(self.engine, conn.clone()));
        Ok(conn)
    }
}
