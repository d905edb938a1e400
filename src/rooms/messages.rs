//! The actor messages between sessions, the registry and rooms.

use actix::{Message, Recipient};
use bytestring::ByteString;

use crate::domain::{MessageId, RoomName, SessionId, UserName};

/// Session -> registry: add this session to `room` on this node. The reply comes once the room
/// actor has the member queued, so every event the engine delivers after it reaches the session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JoinRoom {
    pub room: RoomName,
    pub session: SessionId,
    pub user: UserName,
    pub recipient: Recipient<RoomEvent>,
}

/// Session -> registry: remove this session from `room` on this node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaveRoom {
    pub room: RoomName,
    pub session: SessionId,
}

/// Room -> session: one encoded frame for the session to write.
///
/// `frame` is encoded once per fan-out; every member gets a clone of the same bytes. `id` is set
/// for `message` frames so the session can drop what it already delivered (after a replay, or
/// when a cluster engine delivers an entry twice). `trace` is the `bus.deliver` span's context
/// when the session should record its own `ws.send` span.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct RoomEvent {
    pub room: RoomName,
    pub id: Option<MessageId>,
    pub frame: ByteString,
    pub trace: Option<opentelemetry::Context>,
}
