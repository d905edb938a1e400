//! The `Session` actor: one per chat WebSocket, the only writer to its socket.
//!
//! It receives the client's frames in order from its connection's driver (see `driver`) and runs
//! each command (`commands`). Its rooms' events reach the client through its `inbox`, which its
//! worker thread's rooms call directly; the inbox tells the session only when the client does
//! not keep up.

use std::{
    rc::Rc,
    time::{Duration, SystemTime},
};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, ResponseActFuture, WrapFuture, fut};
use actix_web::web;
use bytestring::ByteString;

use opentelemetry::trace::SpanContext;

use super::{
    connection::{Connection, WsActor},
    driver::Timer,
    inbox::{Inbox, Overflowed},
    limits::{AbuseWindow, TokenBucket},
    reader::{Inbound, InboundFrame},
    replay::Replays,
    session_trace::SessionTrace,
};
use crate::{
    auth::Identity,
    domain::{RoomName, SessionId},
    node::{ConnectionSlot, Node},
    protocol::{CloseCode, ErrorCode, ServerFrame, parse_client_frame},
    rooms::LocalMembers,
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
    /// Its rooms, shared with the worker's local members.
    pub(super) inbox: Rc<Inbox>,
    /// The local members of this session's worker thread, which it joins and leaves rooms in.
    pub(super) worker: LocalMembers,
    pub(super) bucket: TokenBucket,
    pub(super) trace: SessionTrace,
    /// Joins whose replay is still being written (see `replay`).
    pub(super) replays: Replays,
    abuse: AbuseWindow,
    _slot: ConnectionSlot,
}

pub(super) type Reply = ResponseActFuture<Session, ()>;

pub(super) fn done() -> Reply {
    Box::pin(fut::ready(()))
}

/// Who a new session is and where it runs.
pub struct SessionStart {
    pub id: SessionId,
    pub identity: Identity,
    pub slot: ConnectionSlot,
    /// The context of its `ws.handshake` span.
    pub handshake: SpanContext,
    /// The local members of the worker thread it runs on.
    pub worker: LocalMembers,
}

impl Session {
    /// Starts a session on the current thread, which must be `start.worker`'s.
    pub fn start(start: SessionStart, node: web::Data<Node>, connection: Connection) -> Addr<Self> {
        Session::create(move |ctx| {
            let SessionStart { id, identity, slot, handshake, worker } = start;
            let settings = &node.settings;
            let inbox = Inbox::new(
                id,
                identity.user.clone(),
                connection.outbound_sender(),
                settings.outbound_queue_frames,
                ctx.address().downgrade().recipient(),
                node.metrics.clone(),
            );
            Self {
                id,
                trace: SessionTrace::new(id, &identity.user, &settings.node_id, handshake),
                bucket: TokenBucket::new(settings.rate_per_sec, settings.rate_burst),
                abuse: AbuseWindow::new(BAD_REQUESTS_BEFORE_CLOSE, BAD_REQUEST_WINDOW),
                identity,
                inbox: Rc::new(inbox),
                replays: Replays::default(),
                worker,
                connection,
                _slot: slot,
                node,
            }
        })
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

    /// Adds the session to `room` on this node, its worker thread first: every event the engine
    /// delivers from now on reaches the inbox. Returns the directory's delivery count at the join.
    pub(super) fn join_locally(&self, room: &RoomName) -> u64 {
        self.worker.add(room, self.id, self.inbox.clone());
        self.node.directory.join(room, &self.worker.addr())
    }

    /// Removes the session from `room` on this node: nothing of the room reaches it after this.
    pub(super) fn leave_locally(&self, room: &RoomName) {
        self.worker.remove(room, self.id);
        self.node.directory.leave(room, &self.worker.addr());
    }

    /// Leaves every room on this node and in the engine, then ends the session in the engine.
    /// A session closed by a drain keeps its presence: the cluster's reaper removes it unless
    /// the user came back on another node (so no leave and join are announced for them).
    fn leave_all_rooms_and_disconnect(&mut self) {
        let memberships: Vec<(RoomName, bool)> =
            self.inbox.rooms().drain().map(|(room, membership)| (room, membership.unanswered)).collect();
        for (room, unanswered) in &memberships {
            if *unanswered {
                // Its answer will never be read: the room's other joins need not wait for it.
                self.node.directory.joined(room, None);
            }
            self.leave_locally(room);
        }
        let rooms: Vec<RoomName> = memberships.into_iter().map(|(room, _)| room).collect();
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
        self.trace.close(code, reason, closed_by, self.inbox.received());
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

impl Handler<Overflowed> for Session {
    type Result = ();

    fn handle(&mut self, _: Overflowed, ctx: &mut Context<Self>) {
        self.connection.slow_consumer(ctx);
    }
}

impl Handler<Timer> for Session {
    type Result = ();

    fn handle(&mut self, timer: Timer, ctx: &mut Context<Self>) {
        self.connection.on_timer(timer, ctx);
    }
}
