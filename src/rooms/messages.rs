//! The actor messages between sessions, the registry and rooms, and the event rooms deliver.

use actix::Message;
use bytestring::ByteString;

use super::WorkerAddr;
use crate::domain::{MessageId, RoomName, SessionId};

/// Session -> registry: add this session, a member on `worker`, to `room` on this node. The
/// session has already added itself to its worker's local members. The reply comes once the
/// room actor has the member queued, so every event the engine delivers after it reaches the
/// session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JoinRoom {
    pub room: RoomName,
    pub session: SessionId,
    pub worker: WorkerAddr,
}

/// Session -> registry: remove this session from `room` on this node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaveRoom {
    pub room: RoomName,
    pub session: SessionId,
}

/// Room -> its members (through their workers): one encoded frame to write.
///
/// `frame` is encoded once per fan-out; every member gets a clone of the same bytes. `id` is set
/// for `message` frames so the session can drop what it already delivered (after a replay, or
/// when a cluster engine delivers an entry twice). `trace` is the `bus.deliver` span's context
/// when the session should record its own `ws.send` span.
#[derive(Clone)]
pub struct RoomEvent {
    pub room: RoomName,
    pub id: Option<MessageId>,
    pub frame: ByteString,
    pub trace: Option<opentelemetry::Context>,
}
