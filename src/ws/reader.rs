//! Turns the decoded WebSocket stream into whole messages and close verdicts.
//!
//! Fragments are reassembled here (their total size is already bounded by the frame guard),
//! text is checked for UTF-8 once whole, and every decoder error is mapped to the close code
//! RFC 6455 asks for. A task per connection reads and hands each item to the session actor,
//! waiting for the actor to finish with it before reading on: frames of one session are handled
//! strictly in order, and a client that sends faster than its session works is slowed by TCP.

use actix::{Message, Recipient};
use actix_web::web::{Bytes, BytesMut};
use actix_ws::{CloseReason, Item, MessageStream, ProtocolError};
use bytestring::ByteString;
use futures_util::StreamExt;

use super::frame_guard::Verdict;
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
    stream: MessageStream,
    verdict: Verdict,
    fragments: Option<Fragments>,
}

impl FrameReader {
    pub fn new(stream: MessageStream, verdict: Verdict) -> Self {
        Self { stream, verdict, fragments: None }
    }

    /// The next item; after `Close`, `Violation` or `Gone` there is nothing more to read.
    pub async fn next(&mut self) -> Inbound {
        use actix_ws::Message as Ws;
        loop {
            let frame = match self.stream.next().await {
                None => return Inbound::Gone,
                Some(Err(error)) => return self.classify(error),
                Some(Ok(frame)) => frame,
            };
            return match frame {
                Ws::Text(text) => Inbound::Text(text),
                Ws::Binary(bytes) => Inbound::Binary(bytes),
                Ws::Ping(bytes) => Inbound::Ping(bytes),
                Ws::Pong(_) => Inbound::Pong,
                Ws::Close(reason) => Inbound::Close(reason),
                Ws::Nop => continue,
                Ws::Continuation(item) => match self.fragment(item) {
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
            ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                let utf8 = io.get_ref().is_some_and(|e| e.is::<std::str::Utf8Error>());
                if utf8 {
                    Inbound::Violation(CloseCode::InvalidPayload, "invalid UTF-8")
                } else {
                    // The decoder's only other InvalidData: non-zero reserved bits.
                    Inbound::Violation(CloseCode::Protocol, "reserved bits set")
                }
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

/// Reads `reader` until the connection ends, handing each item to `session` and waiting for it
/// to be handled. Ends early when the session is gone.
pub fn spawn_reader(
    mut reader: FrameReader,
    session: Recipient<InboundFrame>,
) -> tokio::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        loop {
            let item = reader.next().await;
            let last = matches!(item, Inbound::Close(_) | Inbound::Violation(..) | Inbound::Gone);
            if session.send(InboundFrame(item)).await.is_err() || last {
                return;
            }
        }
    })
}
