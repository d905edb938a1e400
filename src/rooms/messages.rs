//! The event a room's fan-out hands to its members.

use bytestring::ByteString;

use crate::domain::{MessageId, RoomName};

/// Directory -> its members (through their workers): one encoded frame to write.
///
/// `frame` is encoded once per fan-out; every member gets a clone of the same bytes. `id` is set
/// for `message` frames so the session can drop what it already delivered (after a replay, or
/// when a cluster engine delivers an entry twice). `trace` is the `bus.deliver` span's context
/// when the session should record its own `ws.send` span. `seq` is the directory's count of
/// deliveries when it sent this one: a session that joined at a later count must not get it.
#[derive(Clone)]
pub struct RoomEvent {
    pub room: RoomName,
    pub seq: u64,
    pub id: Option<MessageId>,
    pub frame: ByteString,
    pub trace: Option<opentelemetry::Context>,
}
