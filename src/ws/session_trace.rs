//! A session's telemetry: the span that gives its log lines their context, and the trace spans
//! of its life after the handshake (`ws.receive` per frame, `ws.send` per traced delivery,
//! `ws.close` at the end), each linked to the `ws.handshake` span. The session's inbox records
//! the `ws.send` spans.

use std::time::Instant;

use opentelemetry::trace::SpanContext;
use tracing::field::{Empty, display};

use crate::{
    domain::{MessageId, RoomName, SessionId, UserName},
    protocol::Request,
    telemetry::traces::{self, CONTEXT_TARGET, DELIVERY_TARGET},
};

/// What a session records about itself.
pub struct SessionTrace {
    session: SessionId,
    /// Entered by every handler, so log lines carry session, user, node and the handshake's trace.
    log_span: tracing::Span,
    handshake: SpanContext,
    started: Instant,
    /// Messages this session published (acked).
    pub published: u64,
}

impl SessionTrace {
    pub fn new(session: SessionId, user: &UserName, node: &str, handshake: SpanContext) -> Self {
        let log_span = tracing::info_span!(
            target: CONTEXT_TARGET,
            "session",
            session = %session,
            user = %user,
            node = %node,
            trace_id = Empty,
        );
        if handshake.is_valid() {
            log_span.record("trace_id", display(handshake.trace_id()));
        }
        Self { session, log_span, handshake, started: Instant::now(), published: 0 }
    }

    /// The span to enter while handling anything for this session.
    pub fn log_span(&self) -> tracing::Span {
        self.log_span.clone()
    }

    /// The `ws.receive` span of one parsed frame: a child of the frame's `traceparent` if it has
    /// one, linked to the handshake.
    pub fn receive_span(&self, request: &Request) -> tracing::Span {
        let span = tracing::info_span!(
            "ws.receive",
            otel.kind = "server",
            rookery.frame = request.frame.kind(),
            rookery.room = Empty,
            rookery.ref = Empty,
            rookery.session = %self.session,
            room = Empty,
            trace_id = Empty,
            span_id = Empty,
        );
        traces::set_parent(&span, request.traceparent.as_deref().and_then(traces::remote_context));
        traces::add_link(&span, &self.handshake);
        if let Some(room) = request.frame.room() {
            span.record("rookery.room", room.as_str());
            span.record("room", room.as_str());
        }
        if let Some(reference) = &request.reference {
            span.record("rookery.ref", reference.as_str());
        }
        traces::record_ids(&span);
        span
    }

    /// Records the `ws.close` span: how the session ended and what it did (`received`: the
    /// messages written to it).
    pub fn close(&self, code: u16, reason: &str, closed_by: &str, received: u64) {
        let span = tracing::info_span!(
            "ws.close",
            otel.kind = "server",
            rookery.session = %self.session,
            websocket.close.code = code,
            websocket.close.reason = reason,
            rookery.closed_by = closed_by,
            rookery.duration_ms = self.started.elapsed().as_millis() as u64,
            rookery.messages_published = self.published,
            rookery.messages_received = received,
        );
        traces::add_link(&span, &self.handshake);
        // The span ends here: a close has no duration of its own.
        drop(span);
    }
}

/// The `ws.send` span of one traced delivery to `session`, a child of `parent`.
pub fn send_span(
    session: SessionId,
    parent: &opentelemetry::Context,
    room: &RoomName,
    id: Option<MessageId>,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: DELIVERY_TARGET,
        "ws.send",
        otel.kind = "producer",
        rookery.session = %session,
        rookery.room = room.as_str(),
        rookery.message_id = Empty,
    );
    if let Some(id) = id {
        span.record("rookery.message_id", display(id));
    }
    traces::set_parent(&span, Some(parent.clone()));
    span
}
