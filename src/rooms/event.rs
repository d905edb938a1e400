//! What a room's event becomes on this node: the frame its members get, encoded once, and the
//! telemetry of its delivery.
//!
//! A traced message gets a `bus.deliver` span here, a child of its publish on whichever node
//! that was. Each receiving session records its own `ws.send` span under it while the room has
//! at most [`SEND_SPANS_PER_SESSION_UP_TO`] local members; a larger room records one `ws.send`
//! span for the whole fan-out, with the recipient count, so tracing stays cheap.

use super::RoomEvent;
use crate::{
    domain::{Message, UserName, now_ms},
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

/// Encodes `event`, the node's delivery number `seq`, for a room with `members` local sessions
/// on node `node`.
pub fn outgoing(event: &BusEvent, seq: u64, node: &str, members: usize) -> Outgoing {
    let (id, frame, skip_user) = match event {
        BusEvent::Message(message) => (Some(message.id), encode_message(message), None),
        // On join the user is the joining session; on leave the user has no session left here.
        BusEvent::Presence(change) => (
            None,
            ServerFrame::Presence { room: &change.room, event: change.kind, user: &change.user }.encode(),
            Some(change.user.clone()),
        ),
        BusEvent::Gap { room, after } => (None, ServerFrame::Gap { room, after: *after }.encode(), None),
    };
    let (trace, spans) = match event {
        BusEvent::Message(message) => delivery_spans(message, node, members),
        _ => (None, Vec::new()),
    };
    Outgoing { event: RoomEvent { room: event.room().clone(), seq, id, frame, trace }, skip_user, spans }
}

/// The spans of a traced message's delivery, and the context each session's `ws.send` span is
/// a child of (none when the room is too large for a span per session).
fn delivery_spans(
    message: &Message,
    node: &str,
    members: usize,
) -> (Option<opentelemetry::Context>, Vec<tracing::Span>) {
    let Some(deliver) = deliver_span(message, node, members) else { return (None, Vec::new()) };
    if members <= SEND_SPANS_PER_SESSION_UP_TO {
        return (Some(traces::context(&deliver)), vec![deliver]);
    }
    let one_send = {
        let _entered = deliver.enter();
        tracing::info_span!(target: DELIVERY_TARGET, "ws.send", otel.kind = "producer", rookery.recipients = members)
    };
    (None, vec![deliver, one_send])
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
