//! What every WebSocket actor on a node shares: the connection task (reading, timers), the
//! outbound queue, heartbeats, control frames and the close handshake. The chat `Session` and the conformance echo endpoint
//! both run on it, so the echo endpoint tests the real connection code.

use std::time::{Duration, Instant};

use std::{future::Future, pin::Pin};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler};
use actix_http::ws::Message;
use bytestring::ByteString;

use super::{
    outbound::{Outbound, QueueFull},
    reader::{FrameReader, Inbound, InboundFrame, Timer, Timers, spawn_connection_task},
};
use crate::{protocol::CloseCode, telemetry::Metrics};

/// A peer that has sent nothing for this many heartbeat intervals is gone.
const MISSED_HEARTBEATS: u32 = 3;

/// An actor that owns a [`Connection`].
pub trait WsActor: Actor<Context = Context<Self>> + Handler<InboundFrame> + Handler<Timer> {
    fn connection(&mut self) -> &mut Connection;
}

/// The WebSocket half of a session actor.
pub struct Connection {
    outbound: Outbound,
    /// Taken by `start`, which hands it to the connection task.
    frames: Option<FrameReader>,
    /// The connection task, aborted when the connection is dropped.
    task: Option<tokio::task::JoinHandle<()>>,
    heartbeat: Duration,
    last_heard: Instant,
    /// The close code sent (or 1006 when the peer vanished); set once.
    close_code: Option<u16>,
    close_reason: String,
    /// `server`, `client` (it sent a close frame) or `network` (it vanished).
    closed_by: &'static str,
    /// Closed because the node drains: the session's presence is left to the cluster's reaper.
    pub drained: bool,
    metrics: Metrics,
    /// Resolves, once the node drains, with when to close; taken by `start`.
    stopping: Option<Pin<Box<dyn Future<Output = Instant>>>>,
}

/// An upgraded socket's two halves: the queue its response body drains, and its frames.
pub struct Socket {
    pub outbound: Outbound,
    pub frames: FrameReader,
}

impl Connection {
    pub fn new(socket: Socket, node: &crate::node::Node) -> Self {
        let settings = &node.settings;
        Self {
            outbound: socket.outbound,
            frames: Some(socket.frames),
            task: None,
            heartbeat: settings.heartbeat,
            last_heard: Instant::now(),
            close_code: None,
            close_reason: String::new(),
            closed_by: "network",
            drained: false,
            metrics: node.metrics.clone(),
            stopping: Some(Box::pin(node.shutdown.close_time())),
        }
    }

    /// Starts the connection's task, which reads, heartbeats and watches for the node to drain;
    /// call from the actor's `started`.
    pub fn start<A: WsActor>(&mut self, ctx: &mut Context<A>) {
        if let (Some(frames), Some(drain)) = (self.frames.take(), self.stopping.take()) {
            let timers = Timers { heartbeat: self.heartbeat, drain };
            self.task = Some(spawn_connection_task(frames, timers, ctx.address()));
        }
    }

    /// Handles the connection task's timers: a heartbeat, or the node draining (then closing
    /// with 1012 at this connection's turn).
    pub fn on_timer<A: WsActor>(&mut self, timer: Timer, ctx: &mut Context<A>) {
        match timer {
            Timer::Beat => self.beat(ctx),
            Timer::DrainAt(close_at) => {
                ctx.run_later(close_at.saturating_duration_since(Instant::now()), |act, ctx| {
                    act.connection().drained = true;
                    act.connection().close(ctx, CloseCode::Restart, "server restarting");
                });
            }
        }
    }

    fn beat<A: WsActor>(&mut self, ctx: &mut Context<A>) {
        if self.last_heard.elapsed() > self.heartbeat * MISSED_HEARTBEATS {
            self.close(ctx, CloseCode::GoingAway, "heartbeat timeout");
        } else if self.outbound.push(Message::Ping(Default::default())).is_err() {
            self.slow_consumer(ctx);
        }
    }

    /// Notes that the peer is alive; call for every inbound item.
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Queues a text frame; a full queue closes the connection with 1013.
    pub fn send<A: WsActor>(&mut self, frame: ByteString, ctx: &mut Context<A>) -> Result<(), QueueFull> {
        let pushed = self.outbound.text(frame);
        if pushed.is_err() {
            self.slow_consumer(ctx);
        }
        pushed
    }

    /// Queues any frame (echo); a full queue closes the connection with 1013.
    pub fn send_message<A: WsActor>(&mut self, message: Message, ctx: &mut Context<A>) {
        if self.outbound.push(message).is_err() {
            self.slow_consumer(ctx);
        }
    }

    pub fn slow_consumer<A: WsActor>(&mut self, ctx: &mut Context<A>) {
        if self.close_code.is_none() {
            self.metrics.slow_consumer_drops.inc();
            self.close_discarding(ctx, CloseCode::TryAgainLater, "slow consumer: outbound queue full", true);
        }
    }

    /// Starts the close handshake with `code` after what is queued, and stops the actor.
    pub fn close<A: WsActor>(&mut self, ctx: &mut Context<A>, code: CloseCode, reason: &str) {
        self.close_discarding(ctx, code, reason, false);
    }

    fn close_discarding<A: WsActor>(&mut self, ctx: &mut Context<A>, code: CloseCode, reason: &str, discard: bool) {
        self.close_with(ctx, code.code(), reason, "server", discard);
    }

    fn close_with<A: WsActor>(&mut self, ctx: &mut Context<A>, code: u16, reason: &str, by: &'static str, discard: bool) {
        if self.close_code.is_some() {
            return;
        }
        self.close_code = Some(code);
        self.close_reason = reason.to_owned();
        self.closed_by = by;
        self.metrics.closed(code);
        self.outbound.close(code, reason, discard);
        ctx.stop();
    }

    /// How the connection ended: code, reason and who closed it (1006 by the network when it
    /// has not ended).
    pub fn close_info(&self) -> (u16, &str, &'static str) {
        (self.close_code.unwrap_or(CloseCode::Abnormal.code()), &self.close_reason, self.closed_by)
    }

    /// Whether the connection is closing (no more frames will be written).
    pub fn is_closing(&self) -> bool {
        self.close_code.is_some()
    }

    /// Handles everything but text and binary messages. Returns the message back if it is one.
    pub fn handle_control<A: WsActor>(&mut self, inbound: Inbound, ctx: &mut Context<A>) -> Option<Inbound> {
        match inbound {
            Inbound::Ping(payload) => self.send_message(Message::Pong(payload), ctx),
            Inbound::Pong => {}
            Inbound::Close(reason) => {
                // Echo the peer's code, as RFC 6455 section 5.5.1 asks (the decoder has already
                // refused codes a peer may not send); 1000 when it gave none.
                let code = reason.map_or(CloseCode::Normal.code(), |r| u16::from(r.code));
                self.close_with(ctx, code, "", "client", false);
            }
            Inbound::Violation(code, reason) => self.close(ctx, code, reason),
            Inbound::Gone => {
                if self.close_code.is_none() {
                    self.close_code = Some(CloseCode::Abnormal.code());
                    self.metrics.closed(CloseCode::Abnormal.code());
                }
                ctx.stop();
            }
            message @ (Inbound::Text(_) | Inbound::Binary(_)) => return Some(message),
        }
        None
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

