//! The node's connection to Redis for everything but the bus's blocking reads.
//!
//! One multiplexed connection, shared by every task (their requests are pipelined over it), that
//! reconnects by itself. A pool checks each connection it hands out with a PING round trip, which
//! doubled the round trips of every engine call; this connection checks itself only after it has
//! been idle for [`CHECK_AFTER_IDLE`], which costs nothing under load.
//!
//! The connection speaks RESP3, over which it tells the manager at once when Redis closes it, and
//! the manager reconnects. While Redis is down calls fail at once (the engine answers
//! `unavailable`) instead of waiting out a backoff, each failure starting one new attempt; so
//! the first call after Redis is back meets the last failed attempt, and a call refused before
//! anything was sent is tried once more, on the fresh connection. A call that may have reached
//! Redis is never repeated (a publish would be stored twice). The idle check covers a close the
//! connection did not see: a failed PING is harmless, and makes it reconnect before the call.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    Client, Cmd, Pipeline, ProtocolVersion, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
};

use crate::domain::now_ms;

/// How long one attempt to (re)connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection unused for this long is checked with a PING before the next call.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A cheap-to-clone handle on the shared connection.
#[derive(Clone)]
pub struct RedisConnection {
    manager: ConnectionManager,
    /// When a call last succeeded (ms since the epoch), shared by every handle.
    last_ok_ms: Arc<AtomicU64>,
}

impl RedisConnection {
    /// Connects now, so a node that cannot reach Redis fails at start.
    pub async fn connect(client: Client) -> RedisResult<Self> {
        // Over RESP3 the connection tells the manager when Redis closes it, and the manager
        // reconnects at once instead of on the next call.
        let info = client.get_connection_info().clone();
        let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(resp3))?;
        let config =
            ConnectionManagerConfig::new().set_number_of_retries(0).set_connection_timeout(Some(CONNECT_TIMEOUT));
        let manager = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { manager, last_ok_ms: Arc::new(AtomicU64::new(now_ms())) })
    }

    /// Sends a call (`send` may run twice, see the module docs). After a quiet spell a PING goes
    /// first: on a connection Redis closed meanwhile it fails and the manager reconnects, so the
    /// call itself goes out on a live connection.
    async fn call<T, Sent>(&mut self, send: impl Fn(ConnectionManager) -> Sent) -> RedisResult<T>
    where
        Sent: Future<Output = RedisResult<T>>,
    {
        let idle_ms = now_ms().saturating_sub(self.last_ok_ms.load(Ordering::Relaxed));
        if idle_ms > CHECK_AFTER_IDLE.as_millis() as u64 {
            let _ = self.manager.send_packed_command(&redis::cmd("PING")).await;
        }
        let result = match send(self.manager.clone()).await {
            Err(error) if error.is_connection_refusal() => send(self.manager.clone()).await,
            other => other,
        };
        if result.is_ok() {
            self.last_ok_ms.store(now_ms(), Ordering::Relaxed);
        }
        result
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.call(move |mut manager| async move { manager.send_packed_command(cmd).await }))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(
            self.call(move |mut manager| async move { manager.send_packed_commands(pipeline, offset, count).await }),
        )
    }

    fn get_db(&self) -> i64 {
        self.manager.get_db()
    }
}
