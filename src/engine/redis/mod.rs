//! The Redis engine: messages, history and presence in Redis, so many nodes act as one.
//!
//! - `keys`: the key layout; `migrate`: the versioned Redis Functions applied at start;
//! - `store`: publish, history and recover, one round trip each;
//! - `presence`: who is in which room, with join and leave events put on the bus;
//! - `bus`: the consumer that delivers every shard's entries to this node.
//!
//! Built in steps (see `docs/cluster.md`): the node registry and reaper, gap detection and the
//! node's settings (`ROOKERY_REDIS_URL`, ...) come next.

mod bus;
mod keys;
mod migrate;
mod presence;
mod store;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use async_trait::async_trait;

pub use keys::Keys;
pub use migrate::{MigrateError, SCHEMA_VERSION, migrate};
pub use presence::RedisPresence;
pub use store::MessageStore;

use super::{Broker, Delivery, Engine, EngineError, NewMessage, PresenceStore, Recovery};
use crate::{
    domain::{Member, Message, MessageId, RoomName, SessionId, UserName, now_ms},
    protocol::HistoryQuery,
};

/// How a node reaches Redis and lays out its keys.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// The node's id: its consumer group on every bus shard.
    pub node_id: String,
    pub bus_shards: u32,
    pub bus_retention_ms: u64,
    pub history_len: usize,
    /// Entries read per shard per bus read.
    pub read_batch: usize,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("ROOKERY_REDIS_URL is not a usable Redis URL: {0}")]
    Url(String),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("cannot reach Redis: {0}")]
    Redis(String),
}

/// The cluster engine.
pub struct RedisEngine {
    pool: deadpool_redis::Pool,
    store: MessageStore,
    presence: RedisPresence,
    consumer: tokio::task::JoinHandle<()>,
    last_read: Arc<AtomicU64>,
}

/// Bus reads may be this many block intervals old before the node reports itself not ready.
const STALE_READS: u32 = 3;

impl RedisEngine {
    /// Migrates Redis, joins the bus with this node's groups and starts delivering to `delivery`.
    pub async fn connect(config: RedisConfig, delivery: Arc<dyn Delivery>) -> Result<Self, ConnectError> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| ConnectError::Url(e.to_string()))?;
        let pool = deadpool_redis::Config::from_url(config.url.as_str())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| ConnectError::Url(e.to_string()))?;
        let keys = Keys::new(config.bus_shards);
        let mut conn = pool.get().await.map_err(|e| ConnectError::Redis(e.to_string()))?;
        migrate(&mut conn).await?;
        // Groups exist before the first publish this node could be asked to deliver.
        bus::create_groups(&mut conn, &keys, &config.node_id).await.map_err(|e| ConnectError::Redis(e.to_string()))?;
        drop(conn);
        let last_read = Arc::new(AtomicU64::new(0));
        let consumer = tokio::spawn(
            bus::BusConsumer {
                client,
                keys: keys.clone(),
                group: config.node_id.clone(),
                batch: config.read_batch,
                delivery,
                last_read: last_read.clone(),
            }
            .run(),
        );
        Ok(Self {
            store: MessageStore::new(pool.clone(), keys.clone(), config.history_len, config.bus_retention_ms),
            presence: RedisPresence::new(pool.clone(), keys),
            pool,
            consumer,
            last_read,
        })
    }
}

impl Drop for RedisEngine {
    fn drop(&mut self) {
        self.consumer.abort();
    }
}

#[async_trait]
impl Broker for RedisEngine {
    async fn publish(&self, message: NewMessage) -> Result<MessageId, EngineError> {
        self.store.publish(&message, "").await
    }

    async fn history(&self, room: &RoomName, query: HistoryQuery) -> Result<Vec<Message>, EngineError> {
        self.store.history(room, query).await
    }

    async fn recover(&self, room: &RoomName, since: Option<MessageId>) -> Result<Recovery, EngineError> {
        self.store.recover(room, since).await
    }
}

#[async_trait]
impl PresenceStore for RedisEngine {
    async fn join(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<Vec<Member>, EngineError> {
        self.presence.join(room, user, session).await
    }

    async fn leave(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<(), EngineError> {
        self.presence.leave(room, user, session).await
    }

    async fn members(&self, room: &RoomName) -> Result<Vec<Member>, EngineError> {
        self.presence.members(room).await
    }
}

#[async_trait]
impl Engine for RedisEngine {
    fn kind(&self) -> &'static str {
        "redis"
    }

    /// Ready when Redis answers and the bus consumer has completed a read recently (a node that
    /// cannot deliver must not take new clients).
    async fn check_ready(&self) -> Result<(), EngineError> {
        let mut conn = connection(&self.pool).await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
        let age = now_ms().saturating_sub(self.last_read.load(Ordering::Acquire));
        if age > (bus::BLOCK * STALE_READS).as_millis() as u64 {
            return Err(EngineError::Unavailable(format!("the bus consumer has not read for {age} ms")));
        }
        Ok(())
    }
}

/// A Redis failure as the engine reports it: connection trouble is `Unavailable` (the caller
/// may retry; nothing happened), anything else `Internal`.
pub(crate) fn engine_error(error: &redis::RedisError) -> EngineError {
    // A Redis that came back empty has lost the functions until the bus consumer reconnects and
    // loads them again: retryable too.
    let functions_lost = error.to_string().contains("Function not found");
    if functions_lost || error.is_io_error() || error.is_connection_refusal() || error.is_timeout() || error.is_connection_dropped() {
        EngineError::Unavailable(error.to_string())
    } else {
        EngineError::Internal(error.to_string())
    }
}

/// A pooled connection; a pool that cannot hand one out means Redis is unreachable or saturated.
pub(crate) async fn connection(pool: &deadpool_redis::Pool) -> Result<deadpool_redis::Connection, EngineError> {
    pool.get().await.map_err(|error| EngineError::Unavailable(error.to_string()))
}

/// The value of `name` in a flat `field, value, field, value, ...` list, as Redis returns them.
pub(crate) fn field<'a>(fields: &'a [String], name: &str) -> Option<&'a String> {
    fields.chunks(2).find(|kv| kv[0] == name).and_then(|kv| kv.get(1))
}
