//! The `Session` actor: one per chat WebSocket, the only writer to its socket.
//!
//! It receives the client's frames in order from its connection's driver (see `driver`), runs each
//! command (`commands`), and receives room events from the `Room` actors of the rooms it joined.
//! Per room it keeps the last message id it delivered: a message at or below it is dropped, which
//! makes delivery exactly-once per session across replays and engine redeliveries.

use std::{collections::HashMap, time::{Duration, SystemTime}};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, ResponseActFuture, WrapFuture, fut};
use actix_web::web;
use bytestring::ByteString;

use opentelemetry::trace::SpanContext;

use super::{
    connection::{Connection, WsActor},
    session_trace::SessionTrace,
    limits::{AbuseWindow, TokenBucket},
    driver::Timer,
    reader::{Inbound, InboundFrame},
};
use crate::{
    auth::Identity,
    domain::{MessageId, RoomName, SessionId, now_ms},
    node::{ConnectionSlot, Node},
    protocol::{CloseCode, ErrorCode, ServerFrame, parse_client_frame},
    rooms::{LeaveRoom, RoomEvent},
};

/// `bad_request` answers that close the connection with 1008 when they fall within a minute.
const BAD_REQUESTS_BEFORE_CLOSE: usize = 10;
const BAD_REQUEST_WINDOW: Duration = Duration::from_secs(60);

/// How long a new session waits for the engine to record it before going on without.
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);

/// A chat session.
pub struct Session {
    pub(super) id: SessionId,
    pub(super) identity: Identity,
    pub(super) node: web::Data<Node>,
    pub(super) connection: Connection,
    pub(super) rooms: HashMap<RoomName, Membership>,
    pub(super) bucket: TokenBucket,
    pub(super) trace: SessionTrace,
    abuse: AbuseWindow,
    _slot: ConnectionSlot,
}

/// This session's state in one room.
#[derive(Default)]
pub(super) struct Membership {
    /// The newest message id written to the client for this room.
    pub last_delivered: Option<MessageId>,
    /// While the join is in progress: live events held back until the replay is written, so
    /// they come after it.
    pub held: Option<Vec<RoomEvent>>,
}

pub(super) type Reply = ResponseActFuture<Session, ()>;

pub(super) fn done() -> Reply {
    Box::pin(fut::ready(()))
}

impl Session {
    /// A session for `identity`; `handshake` is the context of its `ws.handshake` span.
    pub fn new(
        id: SessionId,
        identity: Identity,
        node: web::Data<Node>,
        connection: Connection,
        slot: ConnectionSlot,
        handshake: SpanContext,
    ) -> Self {
        let settings = &node.settings;
        Self {
            id,
            trace: SessionTrace::new(id, &identity.user, &settings.node_id, handshake),
            bucket: TokenBucket::new(settings.rate_per_sec, settings.rate_burst),
            abuse: AbuseWindow::new(BAD_REQUESTS_BEFORE_CLOSE, BAD_REQUEST_WINDOW),
            identity,
            node,
            connection,
            rooms: HashMap::new(),
            _slot: slot,
        }
    }

    /// Queues an encoded frame for the client.
    pub(super) fn write(&mut self, frame: ByteString, ctx: &mut Context<Self>) {
        // A full queue has already closed the session; nothing more to do here.
        let _ = self.connection.send(frame, ctx);
    }

    pub(super) fn error(&mut self, ctx: &mut Context<Self>, reference: Option<&str>, code: ErrorCode, message: &str) {
        self.node.metrics.error_frame(code);
        self.write(ServerFrame::Error { reference, code, message }.encode(), ctx);
        if code == ErrorCode::BadRequest && self.abuse.offend() {
            self.connection.close(ctx, CloseCode::Policy, "too many bad requests");
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) -> Reply {
        let request = match parse_client_frame(text) {
            Ok(request) => request,
            Err(bad) => {
                self.node.metrics.frame_received("invalid");
                self.error(ctx, bad.reference.as_deref(), ErrorCode::BadRequest, &bad.message);
                return done();
            }
        };
        self.node.metrics.frame_received(request.frame.kind());
        // The command's futures are instrumented with the current span: this one.
        let receive = self.trace.receive_span(&request);
        let _entered = receive.enter();
        tracing::debug!(frame = request.frame.kind(), "frame received");
        self.run(request, ctx)
    }

    fn deliver(&mut self, event: RoomEvent, ctx: &mut Context<Self>) {
        let limit = self.node.settings.outbound_queue_frames;
        let Some(membership) = self.rooms.get_mut(&event.room) else { return };
        if let Some(held) = &mut membership.held {
            if held.len() < limit {
                held.push(event);
            } else {
                self.connection.slow_consumer(ctx);
            }
            return;
        }
        if let Some(id) = event.id {
            if membership.last_delivered.is_some_and(|last| id <= last) {
                return;
            }
            membership.last_delivered = Some(id);
            self.trace.received += 1;
            self.node.metrics.delivered_after(Duration::from_millis(now_ms().saturating_sub(id.millis())));
        }
        let send = event.trace.as_ref().map(|parent| self.trace.send_span(parent, &event.room, event.id));
        let _entered = send.as_ref().map(tracing::Span::enter);
        self.write(event.frame, ctx);
    }

    /// Leaves every room on this node and in the engine, then ends the session in the engine.
    /// A session closed by a drain keeps its presence: the cluster's reaper removes it unless
    /// the user came back on another node (so no leave and join are announced for them).
    fn leave_all_rooms_and_disconnect(&mut self) {
        let rooms: Vec<RoomName> = self.rooms.drain().map(|(room, _)| room).collect();
        for room in &rooms {
            self.node.registry.do_send(LeaveRoom { room: room.clone(), session: self.id });
        }
        if self.connection.drained {
            return;
        }
        let (engine, user, session) = (self.node.engine.clone(), self.identity.user.clone(), self.id);
        actix_web::rt::spawn(async move {
            if let Err(error) = engine.disconnect(session, &user, &rooms).await {
                tracing::warn!(%error, %session, "leaving the rooms and recording the disconnect failed");
            }
        });
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let span = self.trace.log_span();
        let _entered = span.enter();
        let welcome = ServerFrame::Welcome {
            session: self.id,
            user: &self.identity.user,
            node: &self.node.settings.node_id,
            heartbeat_ms: self.node.settings.heartbeat.as_millis() as u64,
            limits: &self.node.limits,
        }
        .encode();
        // The welcome and every command wait until the session is recorded: a client that has
        // its welcome is known to the cluster, and a join's record (written with the join) can
        // never be overwritten by this first one.
        let (engine, user, session) = (self.node.engine.clone(), self.identity.user.clone(), self.id);
        let record = async move {
            // Not fatal: the session works without its record, which the heartbeat rewrites.
            match tokio::time::timeout(RECORD_TIMEOUT, engine.connect(session, &user)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, %session, "recording the session failed"),
                Err(_) => tracing::warn!(%session, "recording the session timed out"),
            }
        };
        ctx.wait(record.into_actor(self).map(|(), act, ctx| act.write(welcome, ctx)));
        if let Some(expires_at) = self.identity.expires_at {
            let left = expires_at.duration_since(SystemTime::now()).unwrap_or_default();
            ctx.run_later(left, |act, ctx| {
                act.connection.close(ctx, CloseCode::Policy, "token expired");
            });
        }
        tracing::debug!("session started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let span = self.trace.log_span();
        let _entered = span.enter();
        self.leave_all_rooms_and_disconnect();
        let (code, reason, closed_by) = self.connection.close_info();
        self.trace.close(code, reason, closed_by);
        tracing::debug!(code, closed_by, "session stopped");
    }
}

impl WsActor for Session {
    fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

impl Handler<InboundFrame> for Session {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, InboundFrame(inbound): InboundFrame, ctx: &mut Context<Self>) -> Reply {
        let span = self.trace.log_span();
        let _entered = span.enter();
        self.connection.heard();
        if self.connection.is_closing() {
            return done();
        }
        match self.connection.handle_control(inbound, ctx) {
            Some(Inbound::Text(text)) => self.on_text(&text, ctx),
            Some(_binary) => {
                self.node.metrics.frame_received("binary");
                self.connection.close(ctx, CloseCode::Unsupported, "binary frames are not supported");
                done()
            }
            None => done(),
        }
    }
}

impl Handler<RoomEvent> for Session {
    type Result = ();

    fn handle(&mut self, event: RoomEvent, ctx: &mut Context<Self>) {
        if !self.connection.is_closing() {
            self.deliver(event, ctx);
        }
    }
}

impl Handler<Timer> for Session {
    type Result = ();

    fn handle(&mut self, timer: Timer, ctx: &mut Context<Self>) {
        self.connection.on_timer(timer, ctx);
    }
}
