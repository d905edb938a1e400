//! The node's connections to Redis for everything but the bus's blocking reads.
//!
//! On one server: one multiplexed connection, shared by every task (their requests are
//! pipelined over it), that reconnects by itself; and for publishes, the hot path, one such
//! connection per publishing thread ([`ThreadConnections`]), so a publish's round trip stays on
//! the session's thread. A pool checks each connection it hands out
//! with a PING round trip, which doubled the round trips of every engine call; this connection
//! checks itself only after it has been idle for [`CHECK_AFTER_IDLE`], which costs nothing under
//! load.
//!
//! The connection speaks RESP3, over which it tells the manager at once when Redis closes it, and
//! the manager reconnects. While Redis is down calls fail at once (the engine answers
//! `unavailable`) instead of waiting out a backoff, each failure starting one new attempt; so
//! the first call after Redis is back meets the last failed attempt, and a call refused before
//! anything was sent is tried once more, on the fresh connection. A call that may have reached
//! Redis is never repeated (a publish would be stored twice). The idle check covers a close the
//! connection did not see: a failed PING is harmless, and makes it reconnect before the call.
//!
//! On a Redis Cluster: the cluster client of the `redis` crate, which keeps one multiplexed
//! connection per primary and follows the topology (see `cluster`). A pipeline whose commands
//! live in different slots is sent as one pipeline per slot (see `cluster::split_by_slot`).
//!
//! Behind Sentinel: the connection of the primary Sentinel names; a call that finds it gone or
//! demoted asks Sentinel again (see `sentinel`) and, when Redis ran none of it (refused, or
//! `READONLY`), is sent to the new primary.
//!
//! On a cluster, a call that finds the rookery functions missing (a primary that joined the
//! cluster after the node started) loads them on every primary and is sent again: Redis ran
//! none of it. (On one server, a Redis that lost the functions lost everything: the bus
//! consumer restores it in order, see `bus`.)

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
    cluster_async::ClusterConnection,
};

use super::sentinel::Primary;
use crate::domain::now_ms;

/// How long one attempt to (re)connect may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one answer may take on one server (the `redis` crate's default, set explicitly
/// because the engine's deadlines are built on it).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A connection unused for this long is checked with a PING before the next call.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How long that check may delay the call. It is there to find a connection Redis closed, which
/// fails at once; a Redis that does not answer is the call's own timeout to report, and waiting
/// out a whole response timeout first would double the time a session waits for it.
const CHECK_AT_MOST: Duration = Duration::from_millis(100);

/// Connections of their own for the threads that publish, on one server: a publish then goes out
/// and its answer comes back on the publishing session's thread, instead of waking the thread
/// that runs the shared connection twice a message (BENCHMARKS.md, change 22). Each is opened in
/// the background when the first session connects on its thread ([`Self::open_soon`]), or by
/// the thread's first publish, and lives as long as the engine.
pub struct ThreadConnections {
    client: Client,
    threads: thread_local::ThreadLocal<Arc<ThreadSlot>>,
}

/// A thread's connection, and whether an opening in the background is under way.
#[derive(Default)]
struct ThreadSlot {
    /// Set once; a call that finds it being opened waits for that opening.
    connection: tokio::sync::OnceCell<RedisConnection>,
    opening: std::sync::atomic::AtomicBool,
}

impl ThreadSlot {
    async fn open(&self, client: &Client) -> RedisResult<RedisConnection> {
        self.connection.get_or_try_init(|| RedisConnection::connect(client.clone())).await.cloned()
    }
}

impl ThreadConnections {
    pub fn new(client: Client) -> Self {
        Self { client, threads: thread_local::ThreadLocal::new() }
    }

    /// This thread's connection, opened now if it has none.
    pub async fn get(&self) -> RedisResult<RedisConnection> {
        self.threads.get_or_default().open(&self.client).await
    }

    /// Opens this thread's connection in the background, unless it is open or being opened: at
    /// most one opening per thread at a time. The opening holds the thread's slot, not the
    /// engine, and fills that slot whichever thread it runs on.
    pub fn open_soon(&self) {
        let slot = self.threads.get_or_default();
        if slot.connection.initialized() || slot.opening.swap(true, Ordering::AcqRel) {
            return;
        }
        let (slot, client) = (slot.clone(), self.client.clone());
        tokio::spawn(async move {
            // A failure is met again by the first publish, which reports it.
            let _ = slot.open(&client).await;
            slot.opening.store(false, Ordering::Release);
        });
    }
}

/// A cheap-to-clone handle on the shared connection.
#[derive(Clone)]
pub struct RedisConnection {
    link: Link<ConnectionManager>,
    /// Behind Sentinel: the primary as last known, whose connection replaces `link`.
    primary: Option<Arc<Primary>>,
    /// When a call last succeeded (ms since the epoch), shared by every handle.
    last_ok_ms: Arc<AtomicU64>,
}

/// A connection to one server (`S`) or to a Redis Cluster, used alike.
#[derive(Clone)]
pub(super) enum Link<S> {
    Server(S),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Connects now, so a node that cannot reach Redis fails at start.
    pub async fn connect(client: Client) -> RedisResult<Self> {
        Ok(Self::new(Link::Server(manager(client).await?), None))
    }

    /// Wraps a connection to a Redis Cluster (see `cluster`).
    pub(super) fn cluster(connection: ClusterConnection) -> Self {
        Self::new(Link::Cluster(connection), None)
    }

    /// Follows the primary Sentinel names (see `sentinel`).
    pub(super) fn sentinel(primary: Arc<Primary>) -> Self {
        Self::new(Link::Server(primary.current()), Some(primary))
    }

    fn new(link: Link<ConnectionManager>, primary: Option<Arc<Primary>>) -> Self {
        Self { link, primary, last_ok_ms: Arc::new(AtomicU64::new(now_ms())) }
    }

    /// Where a call goes now: behind Sentinel, the primary as last known.
    fn current(&self) -> Link<ConnectionManager> {
        match &self.primary {
            Some(primary) => Link::Server(primary.current()),
            None => self.link.clone(),
        }
    }

    /// The longest one call may take before it fails: the response timeout on one server, after
    /// the idle check; behind Sentinel, twice that and a connect, for a call refused by a demoted
    /// primary and sent again to the new one; on a cluster, the overall timeout, which follows
    /// redirections and failovers.
    pub fn longest_call(&self) -> Duration {
        match (&self.link, &self.primary) {
            (Link::Cluster(_), _) => super::cluster::OVERALL_TIMEOUT,
            (Link::Server(_), None) => RESPONSE_TIMEOUT + CHECK_AT_MOST,
            // Asking the Sentinels and connecting to the new primary come between the two.
            (Link::Server(_), Some(_)) => RESPONSE_TIMEOUT * 2 + CONNECT_TIMEOUT + CHECK_AT_MOST,
        }
    }

    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    /// Sends a call (`send` may run twice, see the module docs). After a quiet spell a PING goes
    /// first on one server: on a connection Redis closed meanwhile it fails and the manager
    /// reconnects, so the call itself goes out on a live connection.
    async fn call<T, Sent>(&mut self, send: impl Fn(Link<ConnectionManager>) -> Sent) -> RedisResult<T>
    where
        Sent: Future<Output = RedisResult<T>>,
    {
        let idle_ms = now_ms().saturating_sub(self.last_ok_ms.load(Ordering::Relaxed));
        if idle_ms > CHECK_AFTER_IDLE.as_millis() as u64
            && let Link::Server(mut manager) = self.current()
        {
            let _ = tokio::time::timeout(CHECK_AT_MOST, manager.send_packed_command(&redis::cmd("PING"))).await;
        }
        let result = match send(self.current()).await {
            Err(error) if self.primary.is_some() && primary_lost(&error) => {
                if let Some(primary) = &self.primary {
                    // The next calls go to the primary Sentinel names now; this one goes there
                    // too if Redis ran none of it.
                    let _ = primary.follow().await;
                }
                if error.is_connection_refusal() || error.code() == Some("READONLY") {
                    send(self.current()).await
                } else {
                    Err(error)
                }
            }
            Err(error) if error.is_connection_refusal() && !self.is_cluster() => send(self.current()).await,
            Err(error) if self.is_cluster() && super::migrate::functions_missing(&error) => {
                super::migrate::load_library(&mut self.current()).await?;
                send(self.current()).await
            }
            other => other,
        };
        if result.is_ok() {
            self.last_ok_ms.store(now_ms(), Ordering::Relaxed);
        }
        result
    }
}

/// The shared connection to one server: RESP3, over which the connection tells the manager
/// when Redis closes it, so the manager reconnects at once instead of on the next call.
pub(super) async fn manager(client: Client) -> RedisResult<ConnectionManager> {
    let info = client.get_connection_info().clone();
    let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let client = Client::open(info.set_redis_settings(resp3))?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    ConnectionManager::new_with_config(client, config).await
}

/// Whether a failed call says the primary may have changed: it is gone, or it became a replica.
fn primary_lost(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.code() == Some("READONLY")
}

impl<S: ConnectionLike + Send> ConnectionLike for Link<S> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Server(server) => server.req_packed_command(cmd),
            Link::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Server(server) => server.req_packed_commands(pipeline, offset, count),
            Link::Cluster(cluster) => Box::pin(super::cluster::query_split(cluster, pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Server(server) => server.get_db(),
            Link::Cluster(_) => 0,
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.call(move |mut link| async move { link.req_packed_command(cmd).await }))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.call(move |mut link| async move { link.req_packed_commands(pipeline, offset, count).await }))
    }

    fn get_db(&self) -> i64 {
        self.current().get_db()
    }
}
