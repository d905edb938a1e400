//! Redis key names. A room's keys carry the hash tag of its bus shard, so a publish (history and
//! bus) touches one Redis Cluster slot; a node's session keys carry the node's tag, so recording a
//! session touches one slot too.

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

    /// The room's bus shard: FNV-1a of the name, stable across versions and platforms.
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

    /// Every bus shard key, in shard order.
    pub fn all_buses(&self) -> Vec<String> {
        (0..self.shards).map(|shard| self.bus(shard)).collect()
    }

    pub fn bus(&self, shard: u32) -> String {
        format!("rookery:{{s{shard}}}:bus")
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
    fn a_room_and_its_bus_shard_share_a_hash_tag() {
        let keys = Keys::new(16);
        let room = RoomName::parse("lobby").unwrap();
        let shard = keys.shard(&room);
        assert!(shard < 16);
        let tag = |key: &str| key[key.find('{').unwrap()..=key.find('}').unwrap()].to_owned();
        assert_eq!(tag(&keys.history(&room)), tag(&keys.bus(shard)));
        assert_eq!(tag(&keys.trimmed(&room)), tag(&keys.bus(shard)));
        // Pinned: the shard of a room must never change between versions.
        assert_eq!((shard, Keys::new(7).shard(&room)), (3, 6));
    }
}
