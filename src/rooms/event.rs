//! What a room's event becomes on this node: the frame its members get, encoded once, and the
//! telemetry of its delivery.
//!
//! A traced message gets a `bus.deliver` span here, a child of its publish on whichever node
//! that was. Each receiving session records its own `ws.send` span under it while the room has
//! at most [`SEND_SPANS_PER_SESSION_UP_TO`] local members; a larger room records one `ws.send`
//! span for the whole fan-out, with the recipient count, so tracing stays cheap.

use super::RoomEvent;
use crate::{
    domain::{Message, RoomName, UserName, now_ms},
    engine::BusEvent,
    protocol::{ServerFrame, encode_message},
    telemetry::traces::{self, DELIVERY_TARGET},
};

/// Rooms with at most this many local members get a `ws.send` span per receiving session.
pub const SEND_SPANS_PER_SESSION_UP_TO: usize = 16;

/// One event, ready for the room's local members.
pub struct Outgoing {
    pub event: RoomEvent,
    /// The member not to tell (a presence change is not sent to the user it is about).
    pub skip_user: Option<UserName>,
    /// The spans of a traced delivery, kept open while the event is handed out.
    pub spans: Vec<tracing::Span>,
}

/// Encodes `event` for a room with `members` local sessions on node `node`; the directory sets
/// the event's `seq`.
pub fn outgoing(event: &BusEvent, node: &str, members: usize) -> Outgoing {
    match event {
        BusEvent::Message(message) => {
            let frame = encode_message(message);
            let Some(deliver) = deliver_span(message, node, members) else {
                let event = RoomEvent { room: message.room.clone(), seq: 0, id: Some(message.id), frame, trace: None };
                return Outgoing { event, skip_user: None, spans: Vec::new() };
            };
            let per_session = members <= SEND_SPANS_PER_SESSION_UP_TO;
            let trace = per_session.then(|| traces::context(&deliver));
            let mut spans = vec![deliver.clone()];
            if !per_session {
                let _entered = deliver.enter();
                spans.push(tracing::info_span!(
                    target: DELIVERY_TARGET,
                    "ws.send",
                    otel.kind = "producer",
                    rookery.recipients = members
                ));
            }
            let event = RoomEvent { room: message.room.clone(), seq: 0, id: Some(message.id), frame, trace };
            Outgoing { event, skip_user: None, spans }
        }
        // On join the user is the joining session; on leave the user has no session left here.
        BusEvent::Presence(change) => {
            let frame = ServerFrame::Presence { room: &change.room, event: change.kind, user: &change.user }.encode();
            let event = RoomEvent { room: change.room.clone(), seq: 0, id: None, frame, trace: None };
            Outgoing { event, skip_user: Some(change.user.clone()), spans: Vec::new() }
        }
        BusEvent::Gap { room, after } => {
            let frame = ServerFrame::Gap { room, after: *after }.encode();
            Outgoing { event: plain(room, frame), skip_user: None, spans: Vec::new() }
        }
    }
}

fn plain(room: &RoomName, frame: bytestring::ByteString) -> RoomEvent {
    RoomEvent { room: room.clone(), seq: 0, id: None, frame, trace: None }
}

/// The `bus.deliver` span of a traced message; `None` when it carries no trace context.
fn deliver_span(message: &Message, node: &str, members: usize) -> Option<tracing::Span> {
    let parent = traces::remote_context(&message.trace)?;
    let span = tracing::info_span!(
        target: DELIVERY_TARGET,
        "bus.deliver",
        otel.kind = "consumer",
        messaging.operation.type = "process",
        messaging.destination.name = message.room.as_str(),
        rookery.node = node,
        rookery.room = message.room.as_str(),
        rookery.message_id = %message.id,
        rookery.local_members = members,
        rookery.lag_ms = now_ms().saturating_sub(message.id.millis()),
    );
    traces::set_parent(&span, Some(parent));
    Some(span)
}
