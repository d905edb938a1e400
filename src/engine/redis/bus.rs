//! The bus consumer: every node reads every bus shard through a consumer group of its own (the
//! group is named after the node), hands each entry to the node's [`Delivery`] in shard order,
//! and acknowledges it after the handoff. On start it first re-reads the entries it had been
//! handed but not acknowledged (a restart with the same node id), so none is lost; sessions drop
//! what they already delivered, so none is shown twice.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{AsyncConnectionConfig, Client, aio::MultiplexedConnection};

use super::{Keys, field};
use crate::{
    domain::{Message, PresenceChange, PresenceKind, RoomName, UserName, now_ms},
    engine::{BusEvent, Delivery},
};

/// How long one blocking read waits for entries.
pub const BLOCK: Duration = Duration::from_millis(1000);
const RETRY: Duration = Duration::from_millis(500);

/// What the consumer needs to know.
pub struct BusConsumer {
    pub client: Client,
    pub keys: Keys,
    pub group: String,
    pub batch: usize,
    pub delivery: Arc<dyn Delivery>,
    /// When the last read completed (ms since the epoch), for readiness.
    pub last_read: Arc<AtomicU64>,
}


type ReadReply = Option<Vec<(String, Vec<(String, Option<Vec<String>>)>)>>;

/// Creates this node's group on every shard, starting at the newest entry; an existing group
/// (same node id, restarted) keeps its position and pending entries.
pub async fn create_groups(conn: &mut impl redis::aio::ConnectionLike, keys: &Keys, group: &str) -> redis::RedisResult<()> {
    for bus in keys.all_buses() {
        let created: redis::RedisResult<String> =
            redis::cmd("XGROUP").arg("CREATE").arg(&bus).arg(group).arg("$").arg("MKSTREAM").query_async(conn).await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

impl BusConsumer {
    /// Reads until the task is dropped, reconnecting after failures.
    pub async fn run(self) {
        loop {
            if let Err(error) = self.consume().await {
                tracing::warn!(%error, "bus consumer failed; reconnecting");
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    async fn consume(&self) -> redis::RedisResult<()> {
        // Blocking reads get a connection of their own with no response timeout.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        // Redis may have come back empty: groups and functions are recreated on every connect,
        // groups first, so no publish (which needs the functions) can precede this node's group.
        create_groups(&mut conn, &self.keys, &self.group).await?;
        super::migrate(&mut conn).await.map_err(|e| match e {
            super::MigrateError::Redis(error) => error,
            other => redis::RedisError::from((redis::ErrorKind::Client, "migration", other.to_string())),
        })?;
        // Pending entries first (id 0), until none is left; then new ones (id >).
        while self.read(&mut conn, "0").await? > 0 {}
        loop {
            self.read(&mut conn, ">").await?;
        }
    }

    /// One read over every shard; returns how many entries it delivered.
    async fn read(&self, conn: &mut MultiplexedConnection, from: &str) -> redis::RedisResult<usize> {
        let buses = self.keys.all_buses();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(&self.group).arg(&self.group).arg("COUNT").arg(self.batch);
        if from == ">" {
            cmd.arg("BLOCK").arg(BLOCK.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&buses);
        for _ in &buses {
            cmd.arg(from);
        }
        let reply: ReadReply = cmd.query_async(conn).await?;
        self.last_read.store(now_ms(), Ordering::Release);
        let mut delivered = 0;
        for (bus, entries) in reply.unwrap_or_default() {
            if entries.is_empty() {
                continue;
            }
            let mut ack = redis::cmd("XACK");
            ack.arg(&bus).arg(&self.group);
            for (id, fields) in &entries {
                // A pending entry trimmed from the stream comes back without fields.
                if let Some(event) = fields.as_deref().and_then(decode) {
                    self.delivery.deliver(event);
                }
                ack.arg(id);
                delivered += 1;
            }
            let _: i64 = ack.query_async(conn).await?;
        }
        Ok(delivered)
    }
}

/// Turns a bus entry's fields into an event; `None` for an entry this version cannot read.
fn decode(fields: &[String]) -> Option<BusEvent> {
    let field = |name: &str| field(fields, name);
    let room = RoomName::parse(field("room")?).ok()?;
    let user = UserName::parse(field("user")?).ok()?;
    match field("kind")?.as_str() {
        "message" => Some(BusEvent::Message(Arc::new(Message {
            room,
            id: field("id")?.parse().ok()?,
            user,
            body: field("body")?.clone(),
        }))),
        "presence" => Some(BusEvent::Presence(PresenceChange {
            room,
            user,
            kind: match field("event")?.as_str() {
                "join" => PresenceKind::Join,
                "leave" => PresenceKind::Leave,
                _ => return None,
            },
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn decodes_messages_and_presence_and_skips_the_unknown() {
        let message = decode(&strings(&["kind", "message", "room", "a", "id", "5-1", "user", "u", "body", "hi", "trace", ""]));
        assert!(matches!(message, Some(BusEvent::Message(m)) if m.id.to_string() == "5-1" && m.body == "hi"));
        let presence = decode(&strings(&["kind", "presence", "room", "a", "user", "u", "event", "leave"]));
        assert!(matches!(presence, Some(BusEvent::Presence(p)) if p.kind == PresenceKind::Leave));
        assert!(decode(&strings(&["kind", "future", "room", "a", "user", "u"])).is_none());
        assert!(decode(&strings(&["kind", "message", "room", "bad room", "id", "5-1", "user", "u", "body", ""])).is_none());
    }
}
