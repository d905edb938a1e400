//! The Redis engine: messages, history, presence and sessions in Redis, so many nodes act as one.
//!
//! - `connection`: the one multiplexed connection every call but the bus's reads goes over, and
//!   on one server the publishing threads' own connections;
//! - `cluster`: running on a Redis Cluster (its clients; pipelines split by slot);
//! - `sentinel`: running behind Redis Sentinel (finding and following the primary);
//! - `keys`: the key layout; `migrate`: the versioned Redis Functions applied at start;
//! - `epoch`: which data Redis holds, so a resume from before a data loss fails closed;
//! - `store`: publish, history and recover, one round trip each;
//! - `publish`: a publish from this node, within one call's time, and its own members served
//!   from the answer;
//! - `presence`: who is in which room and which nodes serve it, with join and leave events put
//!   in those nodes' inboxes;
//! - `sessions`: each session's record, written at connect and with every join and leave;
//! - `bus`: the consumer that reads this node's inboxes (the events of the rooms it serves) and
//!   delivers them, and catches up from the rooms' history when it may have missed some;
//! - `nodes`: the heartbeat and the reaper of silent nodes.
//!
//! `docs/cluster.md` describes the design and its guarantees.

mod acks;
mod bus;
mod cluster;
mod connection;
mod epoch;
mod keys;
mod migrate;
mod nodes;
mod pacing;
mod presence;
mod publish;
mod sentinel;
mod sessions;
mod store;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use async_trait::async_trait;

pub use connection::{RedisConnection, ThreadConnections};
pub use keys::Keys;
pub use migrate::{MigrateError, SCHEMA_VERSION, migrate};
pub use presence::RedisPresence;
pub use store::{MessageStore, Published};

use super::{Broker, Delivery, Engine, EngineError, NewMessage, PresenceStore, Recovery};
use crate::{
    domain::{Member, Message, MessageId, RoomName, RoomPresence, SessionId, UserName, now_ms},
    protocol::HistoryQuery,
    telemetry::{Metrics, traces::CONTEXT_TARGET},
};
use sessions::SessionTable;
use tracing::Instrument;

/// Where the node finds Redis. The URLs may carry a password: `Debug` prints them as
/// `[REDACTED]`.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One server (`ROOKERY_REDIS_URL`).
    Server(secrecy::SecretString),
    /// A Redis Cluster, found through any of these nodes (`ROOKERY_REDIS_CLUSTER_NODES`).
    Cluster(Vec<secrecy::SecretString>),
    /// The primary these Sentinels name for `master` (`ROOKERY_REDIS_SENTINELS`,
    /// `ROOKERY_REDIS_SENTINEL_MASTER`).
    Sentinel { sentinels: Vec<secrecy::SecretString>, master: String },
}

impl RedisTarget {
    fn urls(&self) -> Vec<&str> {
        match self {
            RedisTarget::Server(url) => vec![secrecy::ExposeSecret::expose_secret(url)],
            RedisTarget::Cluster(urls) | RedisTarget::Sentinel { sentinels: urls, .. } => {
                urls.iter().map(secrecy::ExposeSecret::expose_secret).collect()
            }
        }
    }
}

/// How a node reaches Redis and lays out its keys.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub target: RedisTarget,
    /// The node's id: its inboxes, their consumer group, and its entry in the registry.
    pub node_id: String,
    pub bus_shards: u32,
    pub bus_retention_ms: u64,
    pub history_len: usize,
    /// Entries read per inbox per bus read.
    pub read_batch: usize,
    /// While busy, bus reads start at most this often (see `bus`).
    pub read_interval: std::time::Duration,
    /// While busy, a worker thread's publishes go to Redis at most this often (see `pacing`).
    pub publish_interval: std::time::Duration,
    /// A node silent this long has its users removed from presence (see `nodes`).
    pub node_ttl_ms: u64,
    /// Readiness fails while the bus consumer is further behind than this.
    pub max_lag_ms: u64,
    /// Rooms with more users have no presence events (see `PresenceStore::join`).
    pub presence_max_users: u64,
    /// Replicas that must have a message before its sender gets `ack` (`store`); 0 acks what
    /// the primary stored.
    pub min_replicas: u32,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the Redis URL is not usable: {0}")]
    Url(String),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("cannot reach Redis: {0}")]
    Redis(String),
}

/// What the engine's calls, its bus consumer and its heartbeat share.
pub(crate) struct Shared {
    config: RedisConfig,
    /// Everything but the bus's blocking reads and, on one server, publishes (see `connection`).
    redis: RedisConnection,
    /// On one server: the publishing threads' own connections.
    thread_connections: Option<ThreadConnections>,
    pacing: pacing::PublishPacing,
    keys: Keys,
    store: MessageStore,
    presence: RedisPresence,
    sessions: SessionTable,
    /// When the bus consumer last completed a read (ms since the epoch).
    last_read: AtomicU64,
    /// How far the bus consumer is behind the newest entries it has seen (ms).
    lag_ms: AtomicU64,
    /// The Redis epoch this node has seen (see `Keys::epoch`).
    epoch: Mutex<String>,
    metrics: Metrics,
    /// Set when the node drains: the bus consumer stops after its current read.
    stopping: AtomicBool,
    /// Set when this node's registrations were written back after it was reaped: events of its
    /// rooms went to no inbox of its meanwhile, so the bus consumer catches up from history.
    catch_up_requested: AtomicBool,
    /// Where this node's events go: what the bus consumer reads, and this node's own messages,
    /// which no inbox of its holds (see `store::Published`).
    delivery: Arc<dyn Delivery>,
}

impl Shared {
    /// A join, with the session record written first so the node's index always covers the
    /// session's presence; replies with one [`presence::JoinReply`].
    fn join_pipeline(&self, room: &RoomName, user: &UserName, session: SessionId) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        if let Some(record) = self.sessions.set_room(session, room, true) {
            pipe.add_command(record).ignore();
        }
        pipe.add_command(self.presence.join(room, user, session));
        pipe
    }

    /// Awaits one Redis round trip for `operation`, recording how long it took.
    async fn timed<T>(&self, operation: &'static str, round_trip: impl Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let outcome = round_trip.await;
        self.metrics.redis_command(operation, started.elapsed());
        outcome
    }

    /// Rewrites every session record of this node (refreshing TTLs and `last_seen`).
    async fn rewrite_session_records(&self, conn: &mut RedisConnection) -> Result<(), EngineError> {
        for pipe in self.sessions.refresh() {
            let () = pipe.query_async(conn).await.map_err(|e| engine_error(&e))?;
        }
        Ok(())
    }

    /// Writes every session record and presence membership of this node again, after Redis
    /// lost them (emptied, or this node was reaped while alive). Joins announce the users again.
    async fn restore_registrations(&self) -> Result<(), EngineError> {
        let mut conn = self.redis.clone();
        self.rewrite_session_records(&mut conn).await?;
        for chunk in self.sessions.memberships().chunks(128) {
            let mut pipe = redis::pipe();
            for (room, user, session) in chunk {
                pipe.add_command(self.presence.join(room, user, *session)).ignore();
            }
            let () = pipe.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
        }
        Ok(())
    }
}

/// The cluster engine.
pub struct RedisEngine {
    shared: Arc<Shared>,
    consumer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// Bus reads may be this many block intervals old before the node reports itself not ready.
const STALE_READS: u32 = 3;

impl RedisEngine {
    /// Migrates Redis, clears what a previous run of this node id left, creates this node's
    /// inboxes, and starts delivering to `delivery` and heartbeating.
    pub async fn connect(
        config: RedisConfig,
        delivery: Arc<dyn Delivery>,
        metrics: Metrics,
    ) -> Result<Self, ConnectError> {
        if config.target.urls().iter().any(|url| url.starts_with("rediss://")) {
            // `rediss://` runs on rustls, which needs a process-wide crypto provider; an error
            // only means one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let url_error = |e: redis::RedisError| ConnectError::Url(e.to_string());
        let redis_error = |e: redis::RedisError| ConnectError::Redis(e.to_string());
        let mut thread_connections = None;
        let (redis, read_client) = match &config.target {
            RedisTarget::Server(url) => {
                let client = redis::Client::open(secrecy::ExposeSecret::expose_secret(url)).map_err(url_error)?;
                let redis = RedisConnection::connect(client.clone()).await.map_err(redis_error)?;
                thread_connections = Some(ThreadConnections::new(client.clone()));
                (redis, bus::ReadClient::Server(Box::new(client)))
            }
            RedisTarget::Cluster(_) => {
                let seeds: Vec<String> = config.target.urls().into_iter().map(str::to_owned).collect();
                let calls = cluster::client(&seeds, false).map_err(url_error)?;
                let reads = cluster::client(&seeds, true).map_err(url_error)?;
                let redis = RedisConnection::cluster(calls.get_async_connection().await.map_err(redis_error)?);
                (redis, bus::ReadClient::Cluster(Box::new(reads)))
            }
            RedisTarget::Sentinel { master, .. } => {
                let sentinels: Vec<String> = config.target.urls().into_iter().map(str::to_owned).collect();
                let primary = sentinel::Primary::connect(&sentinels, master).await.map_err(redis_error)?;
                (RedisConnection::sentinel(primary.clone()), bus::ReadClient::Sentinel(primary))
            }
        };
        // Paced on one server only, where each thread's publishes have a connection of their own
        // to go out together on (and where it was measured).
        let pacing = pacing::PublishPacing::new(match thread_connections {
            Some(_) => config.publish_interval,
            None => std::time::Duration::ZERO,
        });
        let keys = Keys::new(config.bus_shards);
        let shared = Arc::new(Shared {
            store: MessageStore::new(
                redis.clone(),
                keys.clone(),
                &config.node_id,
                config.history_len,
                config.bus_retention_ms,
            )
            .with_min_replicas(config.min_replicas),
            presence: RedisPresence::new(
                redis.clone(),
                keys.clone(),
                config.node_id.clone(),
                config.presence_max_users,
                config.bus_retention_ms,
            ),
            sessions: SessionTable::new(config.node_id.clone(), config.node_ttl_ms.saturating_mul(3)),
            last_read: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            epoch: Mutex::default(),
            metrics,
            stopping: AtomicBool::new(false),
            catch_up_requested: AtomicBool::new(false),
            delivery,
            keys,
            redis,
            thread_connections,
            pacing,
            config,
        });
        let mut conn = shared.redis.clone();
        migrate(&mut conn).await?;
        *shared.epoch.lock().unwrap_or_else(|p| p.into_inner()) =
            epoch::ensure(&mut conn).await.map_err(redis_error)?;
        // Groups exist before the first publish this node could be asked to deliver.
        bus::create_groups(&mut conn, &shared.keys, &shared.config.node_id).await.map_err(redis_error)?;
        // Sessions of a previous run of this node id are gone: their users leave their rooms.
        let stale = nodes::remove_sessions(&mut conn, &shared, &shared.config.node_id)
            .await
            .map_err(|e| ConnectError::Redis(e.to_string()))?;
        if stale > 0 {
            tracing::info!(sessions = stale, "removed the sessions of this node's previous run");
        }
        drop(conn);
        // Their log lines name the node.
        let context = || tracing::info_span!(target: CONTEXT_TARGET, "engine", node = %shared.config.node_id);
        let consumer = tokio::spawn(bus::BusConsumer::new(read_client, shared.clone()).run().instrument(context()));
        let heartbeat = tokio::spawn(nodes::run(shared.clone()).instrument(context()));
        Ok(Self { shared, consumer: Mutex::new(Some(consumer)), heartbeat })
    }
}

impl Drop for RedisEngine {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if let Some(consumer) = self.consumer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            consumer.abort();
        }
    }
}

#[async_trait]
impl Broker for RedisEngine {
    /// See `publish`: over this thread's own connection on one server, within one call's time,
    /// and this node's members get the message from the answer.
    async fn publish(&self, message: NewMessage) -> Result<MessageId, EngineError> {
        self.shared.publish(message).await
    }

    async fn history(&self, room: &RoomName, query: HistoryQuery) -> Result<Vec<Message>, EngineError> {
        self.shared.timed("history", self.shared.store.history(room, query)).await
    }

    /// The room's recovery, with the epoch read in the same round trip (see `epoch`).
    async fn recover(&self, room: &RoomName, since: Option<MessageId>) -> Result<Recovery, EngineError> {
        let mut pipe = redis::pipe();
        pipe.add_command(epoch::get()).add_command(self.shared.store.recover_cmd(room, since));
        self.shared
            .timed("recover", async {
                let mut conn = self.shared.redis.clone();
                let (epoch, recovered): (Option<String>, Vec<String>) =
                    pipe.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
                let recovery = store::recovery_reply(room, since, &recovered)?;
                Ok(epoch::vouch(recovery, since, epoch.as_deref()))
            })
            .await
    }
}

#[async_trait]
impl PresenceStore for RedisEngine {
    /// Also opens this thread's connection for publishes in the background, when it has none
    /// yet, so a session's first `send` finds it open.
    async fn connect(&self, session: SessionId, user: &UserName) -> Result<(), EngineError> {
        if let Some(connections) = &self.shared.thread_connections {
            connections.open_soon();
        }
        let record = self.shared.sessions.connect(session, user);
        self.shared
            .timed("connect", async {
                let mut conn = self.shared.redis.clone();
                let _: i64 = record.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
                Ok(())
            })
            .await
    }

    async fn join(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<RoomPresence, EngineError> {
        let pipe = self.shared.join_pipeline(room, user, session);
        self.shared
            .timed("join", async {
                let mut conn = self.shared.redis.clone();
                let (reply,): (presence::JoinReply,) =
                    pipe.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
                presence::presence_reply(reply)
            })
            .await
    }

    async fn leave(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<(), EngineError> {
        let mut pipe = redis::pipe();
        pipe.add_command(self.shared.presence.leave(room, user, session)).ignore();
        if let Some(record) = self.shared.sessions.set_room(session, room, false) {
            pipe.add_command(record).ignore();
        }
        self.shared
            .timed("leave", async {
                let mut conn = self.shared.redis.clone();
                let () = pipe.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
                Ok(())
            })
            .await
    }

    /// The leaves first and then the record's removal, in one round trip: the node's index
    /// covers the session's presence until it has none.
    async fn disconnect(&self, session: SessionId, user: &UserName, rooms: &[RoomName]) -> Result<(), EngineError> {
        let mut pipe = redis::pipe();
        for room in rooms {
            pipe.add_command(self.shared.presence.leave(room, user, session)).ignore();
        }
        pipe.add_command(self.shared.sessions.disconnect(session)).ignore();
        self.shared
            .timed("disconnect", async {
                let mut conn = self.shared.redis.clone();
                let () = pipe.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
                Ok(())
            })
            .await
    }

    async fn members(&self, room: &RoomName) -> Result<Vec<Member>, EngineError> {
        self.shared.timed("members", self.shared.presence.members(room)).await
    }
}

#[async_trait]
impl Engine for RedisEngine {
    fn kind(&self) -> &'static str {
        "redis"
    }

    /// The session record, the epoch, and the join with the replay's read (one atomic call), in
    /// one round trip. The join failed only when that call did: a record or epoch that could
    /// not be written or read leaves a join that happened (then without an epoch the replay is
    /// not vouched for), so no member sees a join undone for a failure that came after it.
    async fn join_and_recover(
        &self,
        room: &RoomName,
        user: &UserName,
        session: SessionId,
        since: Option<MessageId>,
    ) -> Result<(RoomPresence, Recovery), EngineError> {
        let mut pipe = redis::pipe();
        if let Some(record) = self.shared.sessions.set_room(session, room, true) {
            pipe.add_command(record).ignore();
        }
        let since_arg = since.map(|id| id.to_string()).unwrap_or_default();
        pipe.add_command(epoch::get())
            .add_command(self.shared.presence.join_recover(room, user, session, &since_arg))
            .ignore_errors();
        self.shared
            .timed("join", async {
                let mut conn = self.shared.redis.clone();
                let (epoch, joined): (redis::Value, redis::Value) =
                    pipe.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
                let (joined, recovered): (presence::JoinReply, Vec<String>) =
                    redis::from_redis_value(joined).map_err(|e| engine_error(&e.into()))?;
                let epoch: Option<String> = redis::from_redis_value(epoch).ok().flatten();
                let recovery = store::recovery_reply(room, since, &recovered)?;
                let recovery = epoch::vouch(recovery, since, epoch.as_deref());
                Ok((presence::presence_reply(joined)?, recovery))
            })
            .await
    }

    /// Ready when Redis answers, the bus consumer has completed a read recently, and it is not
    /// too far behind (a node that cannot deliver in time must not take new clients).
    async fn check_ready(&self) -> Result<(), EngineError> {
        let mut conn = self.shared.redis.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
        let age = now_ms().saturating_sub(self.shared.last_read.load(Ordering::Acquire));
        if age > (bus::BLOCK * STALE_READS).as_millis() as u64 {
            return Err(EngineError::Unavailable(format!("the bus consumer has not read for {age} ms")));
        }
        let lag = self.shared.lag_ms.load(Ordering::Acquire);
        if lag > self.shared.config.max_lag_ms {
            return Err(EngineError::Unavailable(format!("the bus consumer is {lag} ms behind")));
        }
        Ok(())
    }

    /// Lets the bus consumer finish its read (delivering and acknowledging it), then stops the
    /// heartbeat: the node's sessions are left to the reaper (see `shutdown`).
    async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        let consumer = self.consumer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(consumer) = consumer
            && tokio::time::timeout(bus::BLOCK * STALE_READS, consumer).await.is_err()
        {
            tracing::warn!("the bus consumer did not stop in time");
        }
        self.heartbeat.abort();
    }
}

/// A Redis failure as the engine reports it, saying no more than is known.
///
/// - `Unavailable` (nothing was done, retry) only when Redis cannot have run the call: the
///   connection could not be made, or Redis refused it (the functions are missing: a Redis that
///   came back empty, until the bus consumer loads them again).
/// - `NoAnswer` (it may have been done: a retry needs the same idempotency key) for every other
///   connection failure: a timeout, or a connection that broke. The `redis` crate reports a
///   request that never reached the socket and one whose answer was lost alike (a broken
///   pipe), so a broken connection cannot vouch that nothing was stored.
/// - `Internal` for anything else.
pub(crate) fn engine_error(error: &redis::RedisError) -> EngineError {
    if error.is_connection_refusal() || migrate::functions_missing(error) {
        EngineError::Unavailable(error.to_string())
    } else if error.is_timeout() || error.is_io_error() || error.is_connection_dropped() {
        EngineError::NoAnswer(error.to_string())
    } else {
        EngineError::Internal(error.to_string())
    }
}

/// The value of `name` in a flat `field, value, field, value, ...` list, as Redis returns them.
pub(crate) fn field<'a>(fields: &'a [String], name: &str) -> Option<&'a String> {
    fields.chunks(2).find(|kv| kv[0] == name).and_then(|kv| kv.get(1))
}
