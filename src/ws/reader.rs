//! Decodes the connection's bytes into whole messages and close verdicts.
//!
//! The bytes come through the frame guard, are decoded with actix-http's WebSocket codec, and
//! fragments are reassembled here (their total size is already bounded by the frame guard),
//! text is checked for UTF-8 once whole, and every decoder error is mapped to the close code
//! RFC 6455 asks for. A task per connection reads and hands each item to the session actor,
//! waiting for the actor to finish with it before reading on: frames of one session are handled
//! strictly in order, and a client that sends faster than its session works is slowed by TCP.
//! The same task keeps the connection's timers (heartbeat, drain).

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use actix::{Actor, Addr, Handler, Message};
use actix_codec::Decoder;
use actix_http::ws::{CloseReason, Codec, Frame, Item, ProtocolError};
use actix_web::web::{self, Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::StreamExt;

use super::frame_guard::{FrameGuard, Verdict};
use crate::protocol::CloseCode;

/// One thing the peer did.
#[derive(Debug)]
pub enum Inbound {
    Text(ByteString),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    /// The peer started the close handshake.
    Close(Option<CloseReason>),
    /// The peer broke the protocol; the connection must close with this code.
    Violation(CloseCode, &'static str),
    /// The connection ended without a close frame.
    Gone,
}

/// Reader task -> session actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InboundFrame(pub Inbound);

struct Fragments {
    text: bool,
    parts: BytesMut,
}

/// Reads whole messages from a connection.
pub struct FrameReader {
    payload: FrameGuard<web::Payload>,
    /// Received bytes not yet decoded into a frame.
    buf: BytesMut,
    codec: Codec,
    verdict: Verdict,
    fragments: Option<Fragments>,
}

impl FrameReader {
    /// Reads `payload` (already guarded, reporting into `verdict`); frames over `max_frame_bytes`
    /// are refused by the decoder too.
    pub fn new(payload: FrameGuard<web::Payload>, max_frame_bytes: usize, verdict: Verdict) -> Self {
        Self { payload, buf: BytesMut::new(), codec: Codec::new().max_size(max_frame_bytes), verdict, fragments: None }
    }

    /// The next item; after `Close`, `Violation` or `Gone` there is nothing more to read.
    pub async fn next(&mut self) -> Inbound {
        loop {
            let frame = match self.codec.decode(&mut self.buf) {
                Err(error) => return self.classify(error),
                Ok(Some(frame)) => {
                    if self.buf.is_empty() {
                        // Let go of the connection's read buffer the bytes were split from, so
                        // an idle connection holds none.
                        self.buf = BytesMut::new();
                    }
                    frame
                }
                Ok(None) => {
                    match self.payload.next().await {
                        None => return Inbound::Gone,
                        Some(Err(error)) => return self.classify(ProtocolError::Io(std::io::Error::other(error))),
                        // No copy when nothing is buffered: the common case, a whole frame.
                        Some(Ok(bytes)) if self.buf.is_empty() => self.buf = BytesMut::from(bytes),
                        Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                    }
                    continue;
                }
            };
            return match frame {
                Frame::Text(bytes) => match ByteString::try_from(bytes) {
                    Ok(text) => Inbound::Text(text),
                    Err(_) => Inbound::Violation(CloseCode::InvalidPayload, "invalid UTF-8"),
                },
                Frame::Binary(bytes) => Inbound::Binary(bytes),
                Frame::Ping(bytes) => Inbound::Ping(bytes),
                Frame::Pong(_) => Inbound::Pong,
                Frame::Close(reason) => Inbound::Close(reason),
                Frame::Continuation(item) => match self.fragment(item) {
                    Some(whole) => whole,
                    None => continue,
                },
            };
        }
    }

    fn fragment(&mut self, item: Item) -> Option<Inbound> {
        let (text, first) = match item {
            Item::FirstText(bytes) => (true, bytes),
            Item::FirstBinary(bytes) => (false, bytes),
            Item::Continue(bytes) => {
                self.fragments.as_mut()?.parts.extend_from_slice(&bytes);
                return None;
            }
            Item::Last(bytes) => {
                let Fragments { text, mut parts } = self.fragments.take()?;
                parts.extend_from_slice(&bytes);
                let whole = parts.freeze();
                return Some(if !text {
                    Inbound::Binary(whole)
                } else {
                    match ByteString::try_from(whole) {
                        Ok(text) => Inbound::Text(text),
                        Err(_) => Inbound::Violation(CloseCode::InvalidPayload, "invalid UTF-8"),
                    }
                });
            }
        };
        self.fragments = Some(Fragments { text, parts: BytesMut::from(&first[..]) });
        None
    }

    fn classify(&self, error: ProtocolError) -> Inbound {
        if let Some(code) = self.verdict.get() {
            return Inbound::Violation(code, match code {
                CloseCode::TooBig => "message over max_frame_bytes",
                _ => "control frame over 125 bytes",
            });
        }
        match error {
            ProtocolError::Overflow => {
                Inbound::Violation(CloseCode::TooBig, "message over max_frame_bytes")
            }
            // The decoder's only InvalidData: non-zero reserved bits.
            ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                Inbound::Violation(CloseCode::Protocol, "reserved bits set")
            }
            // The transport failed under the decoder: the peer is gone.
            ProtocolError::Io(_) => Inbound::Gone,
            ProtocolError::InvalidOpcode(_) => Inbound::Violation(CloseCode::Protocol, "unknown opcode"),
            ProtocolError::InvalidLength(_) => {
                Inbound::Violation(CloseCode::Protocol, "invalid control frame")
            }
            ProtocolError::ContinuationNotStarted | ProtocolError::ContinuationStarted => {
                Inbound::Violation(CloseCode::Protocol, "bad fragmentation")
            }
            ProtocolError::ContinuationFragment(_) => {
                Inbound::Violation(CloseCode::Protocol, "fragmented control frame")
            }
            ProtocolError::BadOpCode => Inbound::Violation(CloseCode::Protocol, "invalid close frame"),
            _ => Inbound::Violation(CloseCode::Protocol, "protocol error"),
        }
    }
}

/// Connection task -> actor: a timer went off.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Timer {
    /// Time for a heartbeat.
    Beat,
    /// The node drains, and this connection's turn to close is at this instant.
    DrainAt(Instant),
}

/// What the connection task watches besides the socket.
pub struct Timers {
    pub heartbeat: Duration,
    /// Resolves, once the node drains, with when to close.
    pub drain: Pin<Box<dyn Future<Output = Instant>>>,
}

/// The connection's task: reads `reader` until the connection ends, handing each item to the
/// actor and waiting for it to be handled; sends it [`Timer::Beat`] every heartbeat and
/// [`Timer::DrainAt`] when the node drains. Ends early when the actor is gone.
///
/// The timers live here rather than in the actor's context because actix polls every future
/// of a context each time the actor wakes, which is once per delivered message.
pub fn spawn_connection_task<A>(mut reader: FrameReader, timers: Timers, actor: Addr<A>) -> tokio::task::JoinHandle<()>
where
    A: Actor<Context = actix::Context<A>> + Handler<InboundFrame> + Handler<Timer>,
{
    actix_web::rt::spawn(async move {
        let Timers { heartbeat, mut drain } = timers;
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        let mut drain_seen = false;
        loop {
            // Reading is cancel-safe: what it has read is kept in the reader.
            let item = tokio::select! {
                item = reader.next() => item,
                _ = beats.tick() => {
                    actor.do_send(Timer::Beat);
                    continue;
                }
                close_at = &mut drain, if !drain_seen => {
                    drain_seen = true;
                    actor.do_send(Timer::DrainAt(close_at));
                    continue;
                }
            };
            let last = matches!(item, Inbound::Close(_) | Inbound::Violation(..) | Inbound::Gone);
            if actor.send(InboundFrame(item)).await.is_err() || last {
                return;
            }
        }
    })
}
