//! Presence in Redis: per room, users with their session counts, changed atomically by the
//! schema's functions, which also keep the room's node set (so the room's events reach exactly
//! the nodes with sessions in it) and put join and leave events in those nodes' inboxes.
//!
//! Joins and leaves are built as commands, so the engine can send each in one round trip with
//! the session record that covers it (see `sessions`).

use super::{Keys, RedisConnection, engine_error};
use crate::{
    domain::{Member, RoomName, RoomPresence, SessionId, UserName},
    engine::EngineError,
};

/// Reads and changes who is in which room.
pub struct RedisPresence {
    redis: RedisConnection,
    keys: Keys,
    /// This node's id: the sessions it joins and leaves are this node's.
    node: String,
    /// Rooms with more users have no presence events (see `PresenceStore::join`).
    max_users: u64,
    /// How long inbox entries are kept (`ROOKERY_BUS_RETENTION_MS`).
    retention_ms: u64,
}

impl RedisPresence {
    pub fn new(redis: RedisConnection, keys: Keys, node: String, max_users: u64, retention_ms: u64) -> Self {
        Self { redis, keys, node, max_users, retention_ms }
    }

    fn call(&self, function: &str, room: &RoomName, user: &UserName, session: SessionId, node: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(function)
            .arg(4)
            .arg(self.keys.presence(room))
            .arg(self.keys.members(room))
            .arg(self.keys.room_nodes(room))
            .arg(self.keys.events(room))
            .arg(room.as_str())
            .arg(user.as_str())
            .arg(session.to_string())
            .arg(self.max_users)
            .arg(node)
            .arg(self.retention_ms)
            .arg(self.keys.inbox_prefix(room));
        cmd
    }

    /// Adds this node's session (and this node to the room's nodes); replies with the user count
    /// and, up to the limit, the users and their session counts (see `presence_reply`).
    pub fn join(&self, room: &RoomName, user: &UserName, session: SessionId) -> redis::Cmd {
        self.call("rookery_v1_join", room, user, session, &self.node)
    }

    /// [`Self::join`] and the replay after `since` (as the store's `recover_cmd` reads it), in one
    /// atomic call that reads the replay first: when it fails, the session was not added and
    /// nothing was announced. Replies with a `JoinReply` and a recover reply.
    pub fn join_recover(&self, room: &RoomName, user: &UserName, session: SessionId, since: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("rookery_v1_join_recover")
            .arg(6)
            .arg(self.keys.presence(room))
            .arg(self.keys.members(room))
            .arg(self.keys.room_nodes(room))
            .arg(self.keys.history(room))
            .arg(self.keys.trimmed(room))
            .arg(self.keys.events(room))
            .arg(room.as_str())
            .arg(user.as_str())
            .arg(session.to_string())
            .arg(self.max_users)
            .arg(&self.node)
            .arg(self.retention_ms)
            .arg(self.keys.inbox_prefix(room))
            .arg(since);
        cmd
    }

    /// Removes this node's session; a no-op for a session that is not in the room.
    pub fn leave(&self, room: &RoomName, user: &UserName, session: SessionId) -> redis::Cmd {
        self.leave_of(&self.node, room, user, session)
    }

    /// Removes a session of `node` (a node being reaped, or this node's previous run).
    pub fn leave_of(&self, node: &str, room: &RoomName, user: &UserName, session: SessionId) -> redis::Cmd {
        self.call("rookery_v1_leave", room, user, session, node)
    }

    pub async fn members(&self, room: &RoomName) -> Result<Vec<Member>, EngineError> {
        let mut conn = self.redis.clone();
        let flat: Vec<(String, u32)> = redis::cmd("HGETALL")
            .arg(self.keys.presence(room))
            .query_async(&mut conn)
            .await
            .map_err(|e| engine_error(&e))?;
        members_reply(flat)
    }
}

/// A join's reply: the room's user count, up to the presence limit its users, and the number of
/// the room's latest event.
pub type JoinReply = (u64, Option<Vec<(String, u32)>>, u64);

/// The reply of a join: the user count, the presence hash while the room is small enough, and
/// where the room's events stood.
pub fn presence_reply((user_count, flat, seq): JoinReply) -> Result<RoomPresence, EngineError> {
    Ok(RoomPresence { user_count, members: flat.map(members_reply).transpose()?, seq: Some(seq) })
}

/// A presence hash as members sorted by user name.
pub fn members_reply(flat: Vec<(String, u32)>) -> Result<Vec<Member>, EngineError> {
    let mut members = flat
        .into_iter()
        .map(|(user, sessions)| {
            let user =
                UserName::parse(&user).map_err(|_| EngineError::Internal(format!("bad user {user:?} in presence")))?;
            Ok(Member { user, sessions })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    members.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(members)
}
