//! The message store: publish, history and recover, each one round trip to Redis.

use super::{Keys, RedisConnection, engine_error, field};
use crate::{
    domain::{Message, MessageId, RoomName, UserName},
    engine::{EngineError, NewMessage, Recovery},
    protocol::HistoryQuery,
};

/// Reads and writes rooms' messages through the schema's functions.
pub struct MessageStore {
    redis: RedisConnection,
    keys: Keys,
    history_len: usize,
    bus_retention_ms: u64,
    /// Replicas that must confirm a message before it is acked (`ROOKERY_REDIS_MIN_REPLICAS`).
    min_replicas: u32,
    /// This node's id: a publish skips the node's own inbox (see [`Published`]).
    node: String,
}

/// A stored message, as the publish function answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: MessageId,
    /// The message's number among the room's events (see `rooms::order`) when this node serves
    /// the room: the message went to no inbox of this node's, and the node delivers it to its
    /// own members. `None` when this node has no member there, or for a send repeated with its
    /// idempotency key (nothing new was stored).
    pub seq: Option<u64>,
    /// With a replica minimum: stored, but on fewer replicas than asked in time (why). The
    /// sender is told [`EngineError::NotReplicated`]; the node's members get the message all
    /// the same.
    pub not_replicated: Option<String>,
}

/// How long a publish waits for its replicas. Below the 500 ms an answer may take, so a slow
/// replica gets `not_replicated` (stored, at risk) rather than `timeout` (unknown).
pub const REPLICA_WAIT_MS: u64 = 250;

fn bad_data(what: &str) -> EngineError {
    EngineError::Internal(format!("unexpected data in Redis: {what}"))
}

/// The largest id. Redis refuses an exclusive bound past either end of the id space ("invalid
/// start/end ID"), where the answer is plain: nothing is after the last id or before `0-0`.
const LAST_ID: MessageId = MessageId::new(u64::MAX, u64::MAX);

fn message_id(raw: &str) -> Result<MessageId, EngineError> {
    raw.parse().map_err(|_| bad_data(&format!("message id {raw:?}")))
}

/// A room's event number (see `rooms::order`), as Redis wrote it.
fn event_number(raw: &str) -> Result<u64, EngineError> {
    raw.parse().map_err(|_| bad_data(&format!("event number {raw:?}")))
}

/// The publish function's reply: `{id}` or `{id, event number}`.
fn published(reply: Vec<String>) -> Result<Published, EngineError> {
    let (id, seq) = match reply.as_slice() {
        [id] => (id, None),
        [id, seq] => (id, Some(event_number(seq)?)),
        _ => return Err(bad_data("publish reply")),
    };
    Ok(Published { id: message_id(id)?, seq, not_replicated: None })
}

impl MessageStore {
    /// The store of node `node`.
    pub fn new(redis: RedisConnection, keys: Keys, node: &str, history_len: usize, bus_retention_ms: u64) -> Self {
        Self { redis, keys, history_len, bus_retention_ms, min_replicas: 0, node: node.to_owned() }
    }

    /// Acks a message only once `replicas` replicas have it (see [`Self::publish`]).
    pub fn with_min_replicas(mut self, replicas: u32) -> Self {
        self.min_replicas = replicas;
        self
    }

    /// Appends `message` to its room's history and to the inbox of each other node serving the
    /// room. With a replica minimum, a `WAIT` follows in the same round trip (on the same
    /// connection, so it covers this write): fewer confirmations in time are
    /// [`Published::not_replicated`].
    pub async fn publish(&self, message: &NewMessage) -> Result<Published, EngineError> {
        self.publish_over(self.redis.clone(), message).await
    }

    /// [`Self::publish`] over `conn` (a connection of the caller's thread, see
    /// `connection::ThreadConnections`).
    pub async fn publish_over(
        &self,
        mut conn: RedisConnection,
        message: &NewMessage,
    ) -> Result<Published, EngineError> {
        let publish = self.publish_cmd(message);
        if self.min_replicas == 0 {
            let reply: Vec<String> = publish.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
            return published(reply);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(publish).cmd("WAIT").arg(self.min_replicas).arg(REPLICA_WAIT_MS);
        let (reply, replicas): (Vec<String>, u32) = pipe.query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
        let mut published = published(reply)?;
        if replicas < self.min_replicas {
            published.not_replicated = Some(format!(
                "{} is on {replicas} of {} replicas after {REPLICA_WAIT_MS} ms",
                published.id, self.min_replicas
            ));
        }
        Ok(published)
    }

    fn publish_cmd(&self, message: &NewMessage) -> redis::Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("rookery_v1_publish")
            .arg(if message.key.is_some() { 5 } else { 4 })
            .arg(self.keys.history(&message.room))
            .arg(self.keys.trimmed(&message.room))
            .arg(self.keys.room_nodes(&message.room))
            .arg(self.keys.events(&message.room));
        if let Some(key) = &message.key {
            cmd.arg(self.keys.sent(&message.room, key));
        }
        cmd.arg(message.room.as_str())
            .arg(message.user.as_str())
            .arg(&message.body)
            .arg(self.history_len)
            // Keys are remembered as long as the inboxes keep entries.
            .arg(self.bus_retention_ms)
            .arg(&message.trace)
            .arg(self.keys.inbox_prefix(&message.room))
            .arg(crate::engine::history_trim_step(self.history_len))
            .arg(&self.node);
        cmd
    }

    /// A page of the room's history, in id order.
    pub async fn history(&self, room: &RoomName, query: HistoryQuery) -> Result<Vec<Message>, EngineError> {
        if query.after == Some(LAST_ID) || query.before == Some(MessageId::default()) {
            return Ok(Vec::new());
        }
        let mut conn = self.redis.clone();
        let exclusive = |id: Option<MessageId>, open: &str| id.map_or(open.to_owned(), |id| format!("({id}"));
        let (command, first, second) = match query.after {
            Some(_) => ("XRANGE", exclusive(query.after, "-"), exclusive(query.before, "+")),
            None => ("XREVRANGE", exclusive(query.before, "+"), exclusive(query.after, "-")),
        };
        let entries: Vec<(String, Vec<String>)> = redis::cmd(command)
            .arg(self.keys.history(room))
            .arg(first)
            .arg(second)
            .arg("COUNT")
            .arg(query.limit)
            .query_async(&mut conn)
            .await
            .map_err(|e| engine_error(&e))?;
        let mut messages = entries
            .into_iter()
            .map(|(id, fields)| {
                let field = |name: &str| field(&fields, name).cloned();
                Ok(Message {
                    room: room.clone(),
                    id: message_id(&id)?,
                    user: UserName::parse(&field("user").unwrap_or_default()).map_err(|_| bad_data("user"))?,
                    body: field("body").unwrap_or_default(),
                    trace: String::new(),
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        if query.after.is_none() {
            messages.reverse();
        }
        Ok(messages)
    }

    /// The retained messages after `since` and the room's newest id, read atomically.
    pub async fn recover(&self, room: &RoomName, since: Option<MessageId>) -> Result<Recovery, EngineError> {
        let mut conn = self.redis.clone();
        let reply: Vec<String> =
            self.recover_cmd(room, since).query_async(&mut conn).await.map_err(|e| engine_error(&e))?;
        recovery_reply(room, since, &reply)
    }

    /// The command behind [`recover`](Self::recover), to send with others; its reply goes to
    /// `recovery_reply`.
    pub fn recover_cmd(&self, room: &RoomName, since: Option<MessageId>) -> redis::Cmd {
        let mut cmd = redis::cmd("FCALL_RO");
        cmd.arg("rookery_v1_recover")
            .arg(3)
            .arg(self.keys.history(room))
            .arg(self.keys.trimmed(room))
            .arg(self.keys.events(room))
            .arg(since.map(|id| id.to_string()).unwrap_or_default());
        cmd
    }
}

/// The recovery a `recover` reply describes.
pub fn recovery_reply(room: &RoomName, since: Option<MessageId>, reply: &[String]) -> Result<Recovery, EngineError> {
    let [deleted, newest, seq, entries @ ..] = reply else {
        return Err(bad_data("recover reply"));
    };
    let seq = event_number(seq)?;
    let deleted = message_id(deleted)?;
    // `0-0` means nothing was ever trimmed.
    let trimmed_through = (deleted != MessageId::default()).then_some(deleted);
    let last_id = if newest.is_empty() { None } else { Some(message_id(newest)?) };
    let mut messages = entries
        .chunks_exact(3)
        .map(|entry| {
            Ok(Message {
                room: room.clone(),
                id: message_id(&entry[0])?,
                user: UserName::parse(&entry[1]).map_err(|_| bad_data("user"))?,
                body: entry[2].clone(),
                trace: String::new(),
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    // The entries start at `since` itself when the history holds it.
    let holds_since = since.is_some_and(|since| messages.first().is_some_and(|m| m.id == since));
    messages.retain(|m| since.is_none_or(|since| m.id > since));
    Ok(Recovery {
        messages,
        last_id,
        recovered: since.is_none_or(|since| crate::engine::vouches_for(since, trimmed_through, holds_since)),
        trimmed_through,
        seq: Some(seq),
    })
}
