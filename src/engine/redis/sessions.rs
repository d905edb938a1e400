//! Session metadata in Redis: per session a hash (user, node, connected_at, last_seen, rooms)
//! that expires unless refreshed, and the node's session index the reaper works from.
//!
//! The node keeps its own table of its sessions and their rooms, because it is the authority on
//! them: every write sends the whole record, so a refresh after Redis lost its data restores
//! it, and a join can be written in the same round trip as the presence change it covers.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
};

use super::Keys;
use crate::domain::{RoomName, SessionId, UserName, now_ms};

/// Sessions refreshed per round trip.
const REFRESH_CHUNK: usize = 256;

/// This node's sessions, mirrored into Redis.
pub struct SessionTable {
    node: String,
    /// How long a session's hash lives without a refresh.
    ttl_ms: u64,
    local: Mutex<HashMap<SessionId, LocalSession>>,
}

#[derive(Clone)]
struct LocalSession {
    user: UserName,
    connected_at: u64,
    rooms: BTreeSet<RoomName>,
}

impl SessionTable {
    pub fn new(node: String, ttl_ms: u64) -> Self {
        Self { node, ttl_ms, local: Mutex::default() }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, LocalSession>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new session; returns the command that writes it.
    pub fn connect(&self, session: SessionId, user: &UserName) -> redis::Cmd {
        let local = LocalSession { user: user.clone(), connected_at: now_ms(), rooms: BTreeSet::new() };
        let cmd = self.put(session, &local);
        self.table().insert(session, local);
        cmd
    }

    /// Adds or removes `room` for `session`; returns the command that writes the record, or
    /// `None` for a session this node does not know.
    pub fn set_room(&self, session: SessionId, room: &RoomName, member: bool) -> Option<redis::Cmd> {
        let mut table = self.table();
        let local = table.get_mut(&session)?;
        if member {
            local.rooms.insert(room.clone());
        } else {
            local.rooms.remove(room);
        }
        Some(self.put(session, local))
    }

    /// Forgets a session; returns the command that deletes its record.
    pub fn disconnect(&self, session: SessionId) -> redis::Cmd {
        self.table().remove(&session);
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("rookery_v1_session_drop")
            .arg(2)
            .arg(Keys::session(&self.node, session))
            .arg(Keys::node_sessions(&self.node))
            .arg(session.to_string());
        cmd
    }

    /// Pipelines that rewrite every session's record (refreshing its TTL and `last_seen`).
    pub fn refresh(&self) -> Vec<redis::Pipeline> {
        let table = self.table();
        let records: Vec<redis::Cmd> = table.iter().map(|(session, local)| self.put(*session, local)).collect();
        drop(table);
        records
            .chunks(REFRESH_CHUNK)
            .map(|chunk| {
                let mut pipe = redis::pipe();
                for cmd in chunk {
                    pipe.add_command(cmd.clone()).ignore();
                }
                pipe
            })
            .collect()
    }

    /// Every (room, user, session) this node has, for restoring presence.
    pub fn memberships(&self) -> Vec<(RoomName, UserName, SessionId)> {
        let table = self.table();
        table
            .iter()
            .flat_map(|(session, local)| local.rooms.iter().map(|room| (room.clone(), local.user.clone(), *session)))
            .collect()
    }

    fn put(&self, session: SessionId, local: &LocalSession) -> redis::Cmd {
        let rooms: Vec<&str> = local.rooms.iter().map(RoomName::as_str).collect();
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("rookery_v1_session_put")
            .arg(2)
            .arg(Keys::session(&self.node, session))
            .arg(Keys::node_sessions(&self.node))
            .arg(session.to_string())
            .arg(local.user.as_str())
            .arg(&self.node)
            .arg(local.connected_at)
            .arg(rooms.join(" "))
            .arg(self.ttl_ms);
        cmd
    }
}

/// One entry of a node's session index: the user and the rooms, as `session_put` wrote it.
pub fn parse_index_entry(entry: &str) -> Option<(UserName, Vec<RoomName>)> {
    let mut words = entry.split(' ');
    let user = UserName::parse(words.next()?).ok()?;
    let rooms = words.filter_map(|room| RoomName::parse(room).ok()).collect();
    Some((user, rooms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_hold_the_user_then_the_rooms() {
        let (user, rooms) = parse_index_entry("alice lobby dev").unwrap();
        assert_eq!(user.as_str(), "alice");
        assert_eq!(rooms.iter().map(RoomName::as_str).collect::<Vec<_>>(), ["lobby", "dev"]);
        assert!(parse_index_entry("alice").unwrap().1.is_empty());
        assert!(parse_index_entry("").is_none());
    }
}
