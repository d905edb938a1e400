//! A stored chat message and a presence change: what the engine carries between nodes.

use serde::{Serialize, ser::SerializeStruct};

use super::{MessageId, RoomName, UserName};

/// A message as stored by the engine. Its `ts` is the millisecond part of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub room: RoomName,
    pub id: MessageId,
    pub user: UserName,
    pub body: String,
    /// The W3C `traceparent` of the publish, so every node's delivery joins its trace; empty
    /// when it was not traced. Never sent to clients.
    pub trace: String,
}

impl Message {
    pub fn ts(&self) -> u64 {
        self.id.millis()
    }
}

/// Serializes the fields of a `message` frame (the `type` tag is added by the frame enum).
impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Message", 5)?;
        s.serialize_field("room", &self.room)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("user", &self.user)?;
        s.serialize_field("body", &self.body)?;
        s.serialize_field("ts", &self.ts())?;
        s.end()
    }
}

/// Whether a user entered or left a room (first session in, last session out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceKind {
    Join,
    Leave,
}

/// A user entered or left a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub room: RoomName,
    pub user: UserName,
    pub kind: PresenceKind,
}

/// One user in a room and how many sessions they have there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user: UserName,
    pub sessions: u32,
}

/// A room's presence as a join sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPresence {
    /// How many users are in the room.
    pub user_count: u64,
    /// Every user with their session count, sorted by user; `None` when the room has more
    /// users than the presence limit, and then joins and leaves are not announced either.
    pub members: Option<Vec<Member>>,
    /// The number of the room's latest event when the session joined (see `rooms::order`):
    /// the events numbered up to it came before the join. `None` from an engine that does not
    /// number events (it delivers them in order as they happen).
    pub seq: Option<u64>,
}
