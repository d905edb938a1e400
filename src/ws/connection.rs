//! What every WebSocket actor on a node shares: the outbound queue, heartbeats, control frames
//! and the close handshake. The chat `Session` and the conformance echo endpoint both run on it
//! (and on the same `driver`), so the echo endpoint tests the real connection code.

use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler};
use actix_http::ws::Message;
use bytestring::ByteString;

use super::{
    driver::Timer,
    outbound::{Outbound, OutboundSender, QueueFull},
    reader::{Inbound, InboundFrame},
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
}

impl Connection {
    /// The actor's side of a connection whose driver writes what `outbound` queues.
    pub fn new(outbound: Outbound, node: &crate::node::Node) -> Self {
        let settings = &node.settings;
        Self {
            outbound,
            heartbeat: settings.heartbeat,
            last_heard: Instant::now(),
            close_code: None,
            close_reason: String::new(),
            closed_by: "network",
            drained: false,
            metrics: node.metrics.clone(),
        }
    }

    /// A handle on the outbound queue for the session's inbox.
    pub fn outbound_sender(&self) -> OutboundSender {
        self.outbound.sender()
    }

    /// Handles the driver's timers: a heartbeat, or the node draining (then closing
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

    fn close_with<A: WsActor>(
        &mut self,
        ctx: &mut Context<A>,
        code: u16,
        reason: &str,
        by: &'static str,
        discard: bool,
    ) {
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
