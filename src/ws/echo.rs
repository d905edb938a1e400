//! The conformance echo endpoint (`ROOKERY_ECHO_ENDPOINT=true`, `GET /ws/echo`): echoes every
//! text and binary message on the same connection code as a chat session, so WebSocket test
//! suites exercise the real limits, UTF-8 checks, fragmentation, ping/pong and close handshake.

use actix::{Actor, Context, Handler};
use actix_http::ws::Message;

use super::{
    connection::{Connection, WsActor},
    driver::Timer,
    reader::{Inbound, InboundFrame},
};
use crate::node::ConnectionSlot;

/// An echoing connection.
pub struct EchoSession {
    connection: Connection,
    _slot: ConnectionSlot,
}

impl EchoSession {
    pub fn new(connection: Connection, slot: ConnectionSlot) -> Self {
        Self { connection, _slot: slot }
    }
}

impl Actor for EchoSession {
    type Context = Context<Self>;
}

impl WsActor for EchoSession {
    fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

impl Handler<InboundFrame> for EchoSession {
    type Result = ();

    fn handle(&mut self, InboundFrame(inbound): InboundFrame, ctx: &mut Context<Self>) {
        self.connection.heard();
        let echo = match self.connection.handle_control(inbound, ctx) {
            Some(Inbound::Text(text)) => Message::Text(text),
            Some(Inbound::Binary(bytes)) => Message::Binary(bytes),
            _ => return,
        };
        self.connection.send_message(echo, ctx);
    }
}

impl Handler<Timer> for EchoSession {
    type Result = ();

    fn handle(&mut self, timer: Timer, ctx: &mut Context<Self>) {
        self.connection.on_timer(timer, ctx);
    }
}
