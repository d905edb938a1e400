//! Redis key names. A room's keys carry the hash tag of its shard, and so do the inboxes of that
//! shard's nodes, so a publish (history and the inboxes of the room's nodes) touches one Redis
//! Cluster slot; a node's session keys carry the node's tag, so recording a session touches one
//! slot too.

use crate::domain::RoomName;

/// Key names for one deployment.
#[derive(Debug, Clone)]
pub struct Keys {
    shards: u32,
}

impl Keys {
    /// `shards` is `ROOKERY_BUS_SHARDS`; changing it moves rooms to other keys.
    pub fn new(shards: u32) -> Self {
        Self { shards: shards.max(1) }
    }

    /// The room's shard: FNV-1a of the name, stable across versions and platforms.
    pub fn shard(&self, room: &RoomName) -> u32 {
        let hash = room.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        hash % self.shards
    }

    pub fn history(&self, room: &RoomName) -> String {
        format!("rookery:{{s{}}}:history:{room}", self.shard(room))
    }

    /// The newest id trimmed from the room's history (for `recovered`).
    pub fn trimmed(&self, room: &RoomName) -> String {
        format!("rookery:{{s{}}}:trimmed:{room}", self.shard(room))
    }

    /// The room's users and their session counts.
    pub fn presence(&self, room: &RoomName) -> String {
        format!("rookery:{{s{}}}:presence:{room}", self.shard(room))
    }

    /// The room's sessions, as `<user>|<session>`.
    pub fn members(&self, room: &RoomName) -> String {
        format!("rookery:{{s{}}}:members:{room}", self.shard(room))
    }

    /// The id of the message stored in the room with idempotency key `key` (a string Redis
    /// expires with the window). `|` cannot be in a room name, so no room's key is another's.
    pub fn sent(&self, room: &RoomName, key: &str) -> String {
        format!("rookery:{{s{}}}:sent:{room}|{key}", self.shard(room))
    }

    /// The nodes with sessions in the room, each with how many: the nodes its events go to.
    pub fn room_nodes(&self, room: &RoomName) -> String {
        format!("rookery:{{s{}}}:nodes:{room}", self.shard(room))
    }

    /// The number of the room's latest event (see `rooms::order`).
    pub fn events(&self, room: &RoomName) -> String {
        format!("rookery:{{s{}}}:events:{room}", self.shard(room))
    }

    /// What a node's inbox key on the room's shard starts with; the functions add the node id.
    pub fn inbox_prefix(&self, room: &RoomName) -> String {
        format!("rookery:{{s{}}}:inbox:", self.shard(room))
    }

    /// The node's inbox on `shard`: the events of that shard's rooms where the node has sessions.
    pub fn inbox(&self, shard: u32, node: &str) -> String {
        format!("rookery:{{s{shard}}}:inbox:{node}")
    }

    /// Every inbox of the node, in shard order.
    pub fn inboxes(&self, node: &str) -> Vec<String> {
        (0..self.shards).map(|shard| self.inbox(shard, node)).collect()
    }

    /// A session's metadata: user, node, connected_at, last_seen, rooms.
    pub fn session(node: &str, session: impl std::fmt::Display) -> String {
        format!("rookery:{{n{node}}}:session:{session}")
    }

    /// A node's sessions and their rooms, for the reaper.
    pub fn node_sessions(node: &str) -> String {
        format!("rookery:{{n{node}}}:sessions")
    }

    /// The node registry: node id -> last heartbeat.
    pub fn nodes() -> &'static str {
        "rookery:nodes"
    }

    /// The lock held by the node that is reaping.
    pub fn reaper() -> &'static str {
        "rookery:reaper"
    }

    /// A random value set when Redis is first used; a new value means Redis lost its data.
    pub fn epoch() -> &'static str {
        "rookery:epoch"
    }

    /// Holds the highest schema version any node has applied.
    pub fn schema() -> &'static str {
        "rookery:schema"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_and_the_inboxes_of_its_shard_share_a_hash_tag() {
        let keys = Keys::new(16);
        let room = RoomName::parse("lobby").unwrap();
        let shard = keys.shard(&room);
        assert!(shard < 16);
        let tag = |key: &str| key[key.find('{').unwrap()..=key.find('}').unwrap()].to_owned();
        let inbox = keys.inbox(shard, "node-a");
        for key in [
            keys.history(&room),
            keys.trimmed(&room),
            keys.presence(&room),
            keys.members(&room),
            keys.room_nodes(&room),
            keys.sent(&room, "a-key"),
            // A key of the client's may hold braces: the room's tag comes first all the same.
            keys.sent(&room, "{x}"),
            keys.events(&room),
        ] {
            assert_eq!(tag(&key), tag(&inbox), "{key}");
        }
        assert_eq!(format!("{}node-a", keys.inbox_prefix(&room)), inbox);
        // Pinned: the shard of a room must never change between versions.
        assert_eq!((shard, Keys::new(7).shard(&room)), (3, 6));
    }
}
