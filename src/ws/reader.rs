//! Decodes the connection's bytes into whole messages and close verdicts.
//!
//! The bytes come through the frame guard, are decoded with actix-http's WebSocket codec, and
//! fragments are reassembled here (their total size is already bounded by the frame guard),
//! text is checked for UTF-8 fragment by fragment (the frame guard already refuses a sequence no
//! later byte can make valid as the bytes arrive; what is left here is a character cut off at the
//! message's end), and every decoder error is mapped to the close code RFC 6455 asks for. The connection's driver (`driver`) reads items from here and hands them
//! to the session actor one at a time.

use actix::Message;
use actix_codec::Decoder;
use actix_http::ws::{CloseReason, Codec, Frame, Item, ProtocolError};
use actix_web::{
    error::PayloadError,
    web::{Bytes, BytesMut},
};
use bytestring::ByteString;
use futures_util::{Stream, StreamExt};

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

/// Connection driver -> session actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InboundFrame(pub Inbound);

struct Fragments {
    text: bool,
    parts: BytesMut,
    /// How much of `parts` is known to be valid UTF-8 (text only); what follows is at most the
    /// start of one character that the next fragment may complete.
    valid_up_to: usize,
}

impl Fragments {
    /// Checks what arrived since the last check; false when it holds a sequence that cannot
    /// become valid UTF-8 whatever follows.
    fn still_valid(&mut self) -> bool {
        if !self.text {
            return true;
        }
        match std::str::from_utf8(&self.parts[self.valid_up_to..]) {
            Ok(_) => {
                self.valid_up_to = self.parts.len();
                true
            }
            // `error_len` is `None` only for a character cut off at the end: wait for the rest.
            Err(error) => {
                self.valid_up_to += error.valid_up_to();
                error.error_len().is_none()
            }
        }
    }
}

const INVALID_UTF8: Inbound = Inbound::Violation(CloseCode::InvalidPayload, "invalid UTF-8");

/// Reads whole messages from a connection's byte stream `S`.
pub struct FrameReader<S> {
    payload: FrameGuard<S>,
    /// Received bytes not yet decoded into a frame.
    buf: BytesMut,
    codec: Codec,
    verdict: Verdict,
    fragments: Option<Fragments>,
}

impl<S> FrameReader<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    /// Reads `payload` (already guarded, reporting into `verdict`); frames over `max_frame_bytes`
    /// are refused by the decoder too.
    pub fn new(payload: FrameGuard<S>, max_frame_bytes: usize, verdict: Verdict) -> Self {
        Self { payload, buf: BytesMut::new(), codec: Codec::new().max_size(max_frame_bytes), verdict, fragments: None }
    }

    /// The next item; after `Close`, `Violation` or `Gone` there is nothing more to read.
    pub async fn next(&mut self) -> Inbound {
        loop {
            let frame = match self.codec.decode(&mut self.buf) {
                Err(error) => return self.classify(error),
                Ok(Some(frame)) => {
                    if self.buf.is_empty() {
                        // Let go of the chunk the frame was split from, so an idle connection
                        // holds none.
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
                Frame::Text(bytes) => ByteString::try_from(bytes).map_or(INVALID_UTF8, Inbound::Text),
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
                let fragments = self.fragments.as_mut()?;
                fragments.parts.extend_from_slice(&bytes);
                return (!fragments.still_valid()).then_some(INVALID_UTF8);
            }
            Item::Last(bytes) => {
                let Fragments { text, mut parts, .. } = self.fragments.take()?;
                parts.extend_from_slice(&bytes);
                let whole = parts.freeze();
                return Some(if text {
                    ByteString::try_from(whole).map_or(INVALID_UTF8, Inbound::Text)
                } else {
                    Inbound::Binary(whole)
                });
            }
        };
        let mut fragments = Fragments { text, parts: BytesMut::from(&first[..]), valid_up_to: 0 };
        let valid = fragments.still_valid();
        self.fragments = Some(fragments);
        (!valid).then_some(INVALID_UTF8)
    }

    fn classify(&self, error: ProtocolError) -> Inbound {
        if let Some(code) = self.verdict.get() {
            return Inbound::Violation(
                code,
                match code {
                    CloseCode::TooBig => "message over max_frame_bytes",
                    CloseCode::InvalidPayload => "invalid UTF-8",
                    _ => "control frame over 125 bytes",
                },
            );
        }
        match error {
            ProtocolError::Overflow => Inbound::Violation(CloseCode::TooBig, "message over max_frame_bytes"),
            // The decoder's only InvalidData: non-zero reserved bits.
            ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                Inbound::Violation(CloseCode::Protocol, "reserved bits set")
            }
            // The transport failed under the decoder: the peer is gone.
            ProtocolError::Io(_) => Inbound::Gone,
            ProtocolError::InvalidOpcode(_) => Inbound::Violation(CloseCode::Protocol, "unknown opcode"),
            ProtocolError::InvalidLength(_) => Inbound::Violation(CloseCode::Protocol, "invalid control frame"),
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
