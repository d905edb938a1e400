//! The bus consumer: each node reads its own inboxes (one stream per shard, holding the events of
//! the shard's rooms where the node has sessions; see `presence`) through a consumer group, hands
//! each entry to the node's [`Delivery`](crate::engine::Delivery) in inbox order, with its number
//! in its room, and acknowledges it after the handoff. A node with no session in a room reads
//! nothing of it, and its inboxes hold none of its own messages (it delivers those from their
//! publishes' answers, and the numbers put both in one order; see `rooms::order`). On start it
//! first re-reads the entries it had been handed but not acknowledged (a restart with the same
//! node id), so none is lost; the room directory and the sessions drop what they already
//! delivered, so none is shown twice.
//!
//! It never skips silently. When it may have missed entries, it catches up every room with
//! local members from the room's history, starting after the newest message it delivered, and
//! reports a `gap` for what the history no longer holds. It may have missed entries when:
//! - an inbox was not drained for half the bus retention (entries may have been trimmed unread);
//! - its groups had to be created again (it was reaped, or Redis lost its data);
//! - its registrations were written back after it was reaped (its rooms' events went to no
//!   inbox of its in the meantime);
//! - Redis lost its data (a new epoch): then every local room gets a `gap`, and the node writes
//!   its sessions and presence back;
//! - a read failed on a Redis Cluster (a primary may have been replaced by a replica that lacks
//!   the newest writes: a room whose position the history no longer holds gets a `gap`).
//!
//! On one server one read covers every inbox; on a Redis Cluster a command covers one slot, so
//! each inbox has a lane of its own (a connection and a blocking read), and the lanes' reads run
//! side by side. Either way the same loop hands out what each read returns.

use std::{
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures_util::{StreamExt, stream::FuturesUnordered};
use redis::{AsyncConnectionConfig, Client, aio::MultiplexedConnection, cluster::ClusterClient};

use super::{Keys, Shared, acks::Acks, connection::Link, field};
use crate::{
    domain::{Message, MessageId, PresenceChange, PresenceKind, RoomName, UserName, now_ms},
    engine::{BusEvent, EngineError},
};

mod catch_up;

/// How often, at most, the rooms waiting for a number are looked at.
const OVERDUE_CHECK: Duration = Duration::from_millis(100);

/// How long one blocking read waits for entries.
pub const BLOCK: Duration = Duration::from_millis(1000);

/// The pause before reconnecting grows from the first to the last, and starts over once a
/// read succeeds.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);

type ReadReply = Option<Vec<(String, Vec<(String, Option<Vec<String>>)>)>>;

/// Where the consumer opens the connections its blocking reads wait on.
pub enum ReadClient {
    /// One server: one read covers every inbox.
    Server(Box<Client>),
    /// A Redis Cluster: a read covers one slot, so each inbox has a lane (and a connection) of
    /// its own.
    Cluster(Box<ClusterClient>),
    /// Behind Sentinel: one server, the primary Sentinel names at each (re)connect.
    Sentinel(Arc<super::sentinel::Primary>),
}

/// Inboxes read together by one blocking read, on a connection of their own.
struct Lane {
    /// The node's settings (group name, batch) and what acknowledgements are timed by.
    shared: Arc<Shared>,
    /// The shards of the inboxes, in the order of `inboxes`.
    shards: Vec<usize>,
    inboxes: Vec<String>,
    conn: Link<MultiplexedConnection>,
    /// Entries handed over and not yet acknowledged (see `acks`), per inbox of the lane.
    acks: Acks,
    /// Per inbox, where the next read starts: after the last pending entry read, while the
    /// lane replays what this node was handed before and did not acknowledge; then `>` (new).
    from: Vec<String>,
}

/// A lane's completed read: the lane, when the read started, and what it returned.
type Read = (Lane, tokio::time::Instant, redis::RedisResult<ReadReply>);

/// Reads this node's groups and delivers what it reads.
pub struct BusConsumer {
    client: ReadClient,
    shared: Arc<Shared>,
    /// Per shard, when a read last found no more entries than it took (ms since the epoch).
    drained_at: Vec<u64>,
    /// Per shard, how far behind the newest entry of its last full read was (ms).
    lags: Vec<u64>,
    pending_work: PendingWork,
    /// When the rooms waiting for a number are next looked at (see `catch_up`).
    next_overdue_check: tokio::time::Instant,
}

/// Work a reconnect found necessary, kept until it succeeds.
#[derive(Default)]
struct PendingWork {
    /// Write this node's sessions and presence back (Redis lost them).
    restore: bool,
    /// Read every local room's history after its position (the bus may have lost entries).
    catch_up: bool,
}

/// Creates this node's inbox on every shard with its group (named after the node), starting at
/// the newest entry; an existing group (same node id, restarted) keeps its position and pending
/// entries. Returns how many groups had to be created.
pub async fn create_groups(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    node: &str,
) -> redis::RedisResult<usize> {
    let mut created = 0;
    for inbox in keys.inboxes(node) {
        let reply: redis::RedisResult<String> =
            redis::cmd("XGROUP").arg("CREATE").arg(&inbox).arg(node).arg("$").arg("MKSTREAM").query_async(conn).await;
        match reply {
            Err(error) if error.code() == Some("BUSYGROUP") => {}
            other => {
                other?;
                created += 1;
            }
        }
    }
    Ok(created)
}

/// What the consumer found out about Redis on (re)connecting.
enum Epoch {
    Same,
    /// Redis lost its data since this node last saw it.
    Changed,
}

fn from_engine(error: EngineError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "engine", error.to_string()))
}

impl BusConsumer {
    pub fn new(client: ReadClient, shared: Arc<Shared>) -> Self {
        let shards = shared.keys.inboxes(&shared.config.node_id).len();
        Self {
            client,
            shared,
            drained_at: vec![now_ms(); shards],
            lags: vec![0; shards],
            pending_work: PendingWork::default(),
            next_overdue_check: tokio::time::Instant::now(),
        }
    }

    /// Reads until the node drains (or the task is dropped), reconnecting after failures.
    pub async fn run(mut self) {
        let mut pause = RETRY_FIRST;
        while !self.stopping() {
            let reads_before = self.shared.last_read.load(Ordering::Acquire);
            if let Err(error) = self.consume().await {
                if self.shared.last_read.load(Ordering::Acquire) != reads_before {
                    pause = RETRY_FIRST;
                }
                tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "bus consumer failed; reconnecting");
                if !matches!(self.client, ReadClient::Server(_)) {
                    // A primary may have been replaced by a replica without its newest writes:
                    // catching up finds a room's position missing from its history and reports
                    // the gap, instead of going on as if nothing was lost.
                    self.pending_work.catch_up = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_LAST);
            }
        }
    }

    /// Opens the lanes (what a failed connection read and did not acknowledge is pending, and
    /// is read again), makes sure Redis has this node's groups and the functions, and reads
    /// until the node drains.
    async fn consume(&mut self) -> redis::RedisResult<()> {
        let node = self.shared.config.node_id.clone();
        let inboxes = self.shared.keys.inboxes(&node);
        let lanes = match &self.client {
            ReadClient::Cluster(client) => {
                let mut lanes = Vec::with_capacity(inboxes.len());
                for shard in 0..inboxes.len() {
                    let conn = client.get_async_connection().await?;
                    lanes.push(Lane::new(&self.shared, vec![shard], &inboxes, Link::Cluster(conn)));
                }
                let mut shared_conn = self.shared.redis.clone();
                self.prepare(&mut shared_conn).await?;
                lanes
            }
            ReadClient::Server(client) => {
                let conn = self.server_lane((**client).clone(), &inboxes).await?;
                vec![conn]
            }
            ReadClient::Sentinel(primary) => {
                let client = primary.client().await?;
                vec![self.server_lane(client, &inboxes).await?]
            }
        };
        let mut reads: FuturesUnordered<Pin<Box<dyn Future<Output = Read> + Send>>> = FuturesUnordered::new();
        for lane in lanes {
            reads.push(Box::pin(lane.read(None)));
        }
        // Pending entries first, until none is left; then new ones. Each lane goes on reading
        // as soon as its read is handled; the node stops once every lane's read is in.
        while let Some((mut lane, started, reply)) = reads.next().await {
            let handled = match reply {
                Ok(reply) => self.catch_up_if_needed().await.map(|()| self.handle(&mut lane, started, reply)),
                Err(error) => Err(error),
            };
            let read = match handled {
                Ok(read) => read,
                Err(error) => {
                    // The other lanes' reads are dropped with their connections: what they took
                    // stays pending, and the next connect reads it again.
                    return Err(error);
                }
            };
            if self.stopping() {
                lane.acknowledge().await?;
                continue;
            }
            // Rooms waiting for a number, looked at while every inbox is drained (a number
            // missing then is in no inbox), every tenth of a second at most: a room is overdue
            // after more than a second, and one crowded can wait that long.
            if self.lags.iter().all(|&lag| lag == 0) && started >= self.next_overdue_check {
                self.next_overdue_check = started + OVERDUE_CHECK;
                self.resolve_overdue().await?;
            }
            // Reads that come back with less than a full batch start at most every read
            // interval. Under a trickle of small-room traffic a read returned one or two
            // entries, so every entry cost a read of its own (a round trip, and Redis's work per
            // call); waiting a moment lets a read take what arrived meanwhile, at the price of at
            // most that much latency, and only while the node is busy.
            let batch = self.shared.config.read_batch;
            let not_before = (read > 0 && read < batch).then(|| started + self.shared.config.read_interval);
            if read == 0 || lane.acks.due(batch) {
                lane.acknowledge().await?;
            }
            reads.push(Box::pin(lane.read(not_before)));
        }
        Ok(())
    }

    /// The one lane of a single server: every inbox, on a connection of its own with no
    /// response timeout (its reads block), over which Redis is prepared first.
    async fn server_lane(&mut self, client: Client, inboxes: &[String]) -> redis::RedisResult<Lane> {
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        self.prepare(&mut conn).await?;
        Ok(Lane::new(&self.shared, (0..inboxes.len()).collect(), inboxes, Link::Server(conn)))
    }

    /// Creates this node's groups and loads the functions (Redis may have come back empty),
    /// groups first, so no publish (which needs the functions) can precede this node's group;
    /// then compares the epoch and queues the work a change calls for.
    async fn prepare(&mut self, conn: &mut impl redis::aio::ConnectionLike) -> redis::RedisResult<()> {
        let created = create_groups(conn, &self.shared.keys, &self.shared.config.node_id).await?;
        super::migrate(conn).await.map_err(|e| match e {
            super::MigrateError::Redis(error) => error,
            other => redis::RedisError::from((redis::ErrorKind::Client, "migration", other.to_string())),
        })?;
        match self.check_epoch(conn).await? {
            Epoch::Changed => {
                tracing::warn!("Redis lost its data; restoring this node's sessions and reporting gaps");
                self.shared.delivery.renumbered();
                for position in self.shared.delivery.catch_up_positions() {
                    self.shared.delivery.deliver(BusEvent::Gap { room: position.room, after: Some(position.after) });
                }
                self.pending_work.restore = true;
                self.pending_work.catch_up = true;
            }
            Epoch::Same if created > 0 => {
                tracing::warn!(groups = created, "this node's consumer groups were gone; catching up from history");
                self.pending_work.catch_up = true;
            }
            Epoch::Same => {}
        }
        self.catch_up_if_needed().await
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Sets the epoch if Redis has none (emptied) and compares it with the one this node saw.
    async fn check_epoch(&self, conn: &mut impl redis::aio::ConnectionLike) -> redis::RedisResult<Epoch> {
        let current = super::epoch::ensure(conn).await?;
        let mut known = self.shared.epoch.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = if *known == current { Epoch::Same } else { Epoch::Changed };
        *known = current;
        Ok(epoch)
    }

    /// Delivers what a lane's read returned; returns how many entries it held.
    fn handle(&mut self, lane: &mut Lane, started: tokio::time::Instant, reply: ReadReply) -> usize {
        let batch = self.shared.config.read_batch;
        let finished = now_ms();
        let started_ms = finished.saturating_sub(started.elapsed().as_millis() as u64);
        self.shared.last_read.store(finished, Ordering::Release);
        let mut full = vec![false; lane.inboxes.len()];
        let mut delivered = 0;
        for (inbox, entries) in reply.unwrap_or_default() {
            let Some(position) = lane.inboxes.iter().position(|name| *name == inbox) else { continue };
            let shard = lane.shards[position];
            if entries.len() >= batch {
                // More may be waiting: the shard is not drained, and the node is behind by at
                // least the age of the newest entry it took.
                full[position] = true;
                let newest = entries.last().and_then(|(id, _)| id.parse::<MessageId>().ok());
                self.lags[shard] = newest.map_or(0, |id| finished.saturating_sub(id.millis()));
            }
            for (id, fields) in entries {
                // A pending entry trimmed from the stream comes back without fields.
                match fields.as_deref().map(decode) {
                    Some(Some((Some(seq), event))) => self.shared.delivery.deliver_numbered(seq, event),
                    Some(Some((None, event))) => self.shared.delivery.deliver(event),
                    Some(None) => self.shared.metrics.bus_event("undecodable"),
                    None => self.shared.metrics.bus_event("trimmed"),
                }
                if lane.from[position] != ">" {
                    lane.from[position].clone_from(&id);
                }
                lane.acks.add(position, id);
                delivered += 1;
                self.shared.metrics.bus_entries_read.inc();
            }
        }
        for (position, &shard) in lane.shards.iter().enumerate() {
            if !full[position] {
                self.drained_at[shard] = started_ms;
                self.lags[shard] = 0;
            }
            self.shared.metrics.set_bus_lag(shard as u32, Duration::from_millis(self.lags[shard]));
        }
        if delivered == 0 {
            // Nothing (more) pending: read new entries from now on.
            lane.from.iter_mut().for_each(|from| *from = ">".to_owned());
        }
        self.shared.lag_ms.store(self.lags.iter().copied().max().unwrap_or(0), Ordering::Release);
        delivered
    }
}

impl Lane {
    fn new(shared: &Arc<Shared>, shards: Vec<usize>, inboxes: &[String], conn: Link<MultiplexedConnection>) -> Self {
        let lane_inboxes: Vec<String> = shards.iter().map(|&shard| inboxes[shard].clone()).collect();
        let count = lane_inboxes.len();
        Self {
            shared: shared.clone(),
            shards,
            inboxes: lane_inboxes,
            conn,
            acks: Acks::new(count),
            from: vec!["0".to_owned(); count],
        }
    }

    /// One read over the lane's inboxes, started no earlier than `not_before`; blocks while
    /// there is nothing new (no longer than a waiting acknowledgement may wait).
    async fn read(mut self, not_before: Option<tokio::time::Instant>) -> Read {
        if let Some(at) = not_before {
            tokio::time::sleep_until(at).await;
        }
        let mut cmd = redis::cmd("XREADGROUP");
        let (group, batch) = (&self.shared.config.node_id, self.shared.config.read_batch);
        cmd.arg("GROUP").arg(group).arg(group).arg("COUNT").arg(batch);
        if self.from.iter().all(|from| from == ">") {
            cmd.arg("BLOCK").arg(self.acks.block_for(BLOCK).as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.inboxes).arg(&self.from);
        let started = tokio::time::Instant::now();
        let reply = cmd.query_async(&mut self.conn).await;
        (self, started, reply)
    }

    /// Acknowledges every entry handed over so far, in one round trip.
    async fn acknowledge(&mut self) -> redis::RedisResult<()> {
        if let Some(pipe) = self.acks.take_pipeline(&self.inboxes, &self.shared.config.node_id) {
            let () = self.shared.timed("bus_ack", pipe.query_async(&mut self.conn)).await?;
        }
        Ok(())
    }
}

/// Turns a bus entry's fields into an event and its number in the room (see `rooms::order`);
/// `None` for an entry this version cannot read.
fn decode(fields: &[String]) -> Option<(Option<u64>, BusEvent)> {
    let field = |name: &str| field(fields, name);
    let room = RoomName::parse(field("room")?).ok()?;
    let user = UserName::parse(field("user")?).ok()?;
    let seq = match field("seq") {
        Some(seq) => Some(seq.parse().ok()?),
        None => None,
    };
    let event = match field("kind")?.as_str() {
        "message" => BusEvent::Message(Arc::new(Message {
            room,
            id: field("id")?.parse().ok()?,
            user,
            body: field("body")?.clone(),
            trace: field("trace").cloned().unwrap_or_default(),
        })),
        "presence" => BusEvent::Presence(PresenceChange {
            room,
            user,
            kind: match field("event")?.as_str() {
                "join" => PresenceKind::Join,
                "leave" => PresenceKind::Leave,
                _ => return None,
            },
        }),
        _ => return None,
    };
    Some((seq, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn decodes_messages_and_presence_and_skips_the_unknown() {
        let message = decode(&strings(&[
            "kind", "message", "room", "a", "id", "5-1", "user", "u", "body", "hi", "trace", "", "seq", "7",
        ]));
        assert!(
            matches!(message, Some((Some(7), BusEvent::Message(m))) if m.id.to_string() == "5-1" && m.body == "hi")
        );
        let presence = decode(&strings(&["kind", "presence", "room", "a", "user", "u", "event", "leave"]));
        assert!(matches!(presence, Some((None, BusEvent::Presence(p)))  if p.kind == PresenceKind::Leave));
        let numbered = decode(&strings(&["seq", "3", "kind", "presence", "room", "a", "user", "u", "event", "join"]));
        assert!(matches!(numbered, Some((Some(3), BusEvent::Presence(p))) if p.kind == PresenceKind::Join));
        assert!(
            decode(&strings(&["kind", "presence", "room", "a", "user", "u", "event", "join", "seq", "x"])).is_none()
        );
        assert!(decode(&strings(&["kind", "future", "room", "a", "user", "u"])).is_none());
        assert!(
            decode(&strings(&["kind", "message", "room", "bad room", "id", "5-1", "user", "u", "body", ""])).is_none()
        );
    }
}
