//! The load generator's WebSocket client: the opening handshake written by hand, then
//! actix-http's frame codec in client mode over the two halves of the TCP stream.
//!
//! The generator shares the machine with the nodes it measures, so every microsecond it spends
//! per delivery is taken from them. tokio-tungstenite (which `rookery chat` keeps) zero-fills
//! its read buffer on every read and routes every poll through a waker proxy; here a read goes
//! into the spare capacity of one buffer per connection and frames are decoded in place (see
//! `BENCHMARKS.md`, change 11).

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame, Message, ProtocolError};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{ReadHalf, WriteHalf},
    },
};

/// A reply to the handshake longer than this is not one.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;
/// Room made in the read buffer when it runs short; a run holds thousands of these.
const READ_BUFFER_BYTES: usize = 4096;
/// Server frames larger than this are a protocol error (the server's own limits are far lower).
const MAX_FRAME_BYTES: usize = 1 << 20;

/// Why the connection failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("handshake refused: {0}")]
    Refused(String),
    #[error("the server closed the connection")]
    Closed,
}

/// One frame from the server, as the generator cares about it.
#[derive(Debug)]
pub enum Received {
    Text(Bytes),
    Ping(Bytes),
    Close,
    /// Binary, pong or a fragment: nothing the server sends the generator, and ignored.
    Other,
}

/// Performs the opening handshake for `url` (`ws://host:port/path?query`) and returns what the
/// server sent right behind its `101` (often the `welcome` frame already).
pub async fn handshake(stream: &mut TcpStream, url: &str) -> Result<BytesMut, WireError> {
    let rest = url.strip_prefix("ws://").ok_or_else(|| WireError::Refused(format!("not a ws:// url: {url}")))?;
    let (host, target) = rest.find('/').map_or((rest, "/"), |slash| (&rest[..slash], &rest[slash..]));
    let key = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;

    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let head_len = loop {
        if let Some(end) = buf.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() >= MAX_HANDSHAKE_BYTES {
            return Err(WireError::Refused("reply headers too long".into()));
        }
        buf.reserve(READ_BUFFER_BYTES);
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(WireError::Closed);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_len]);
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(WireError::Refused(status.to_owned()));
    }
    let accept = actix_http::ws::hash_key(key.as_bytes());
    let accepted = head.lines().filter_map(|line| line.split_once(':')).any(|(name, value)| {
        name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim().as_bytes() == accept
    });
    if !accepted {
        return Err(WireError::Refused("missing or wrong Sec-WebSocket-Accept".into()));
    }
    buf.advance(head_len);
    Ok(buf)
}

/// Reads server frames from the read half of an upgraded stream.
pub struct ClientReader<'a> {
    stream: ReadHalf<'a>,
    buf: BytesMut,
    codec: Codec,
}

impl<'a> ClientReader<'a> {
    /// Reads `stream`, after `early` (what came with the handshake's reply).
    pub fn new(stream: ReadHalf<'a>, early: BytesMut) -> Self {
        Self { stream, buf: early, codec: Codec::new().client_mode().max_size(MAX_FRAME_BYTES) }
    }

    /// The next frame. Cancel-safe: a frame half read stays in the buffer for the next call.
    pub async fn next(&mut self) -> Result<Received, WireError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(match frame {
                    Frame::Text(text) => Received::Text(text),
                    Frame::Ping(payload) => Received::Ping(payload),
                    Frame::Close(_) => Received::Close,
                    Frame::Binary(_) | Frame::Pong(_) | Frame::Continuation(_) => Received::Other,
                });
            }
            if self.buf.capacity() - self.buf.len() < READ_BUFFER_BYTES / 4 {
                self.buf.reserve(READ_BUFFER_BYTES);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(WireError::Closed);
            }
        }
    }
}

/// Writes masked client frames to the write half of an upgraded stream.
pub struct ClientWriter<'a> {
    stream: WriteHalf<'a>,
    buf: BytesMut,
    codec: Codec,
}

impl<'a> ClientWriter<'a> {
    pub fn new(stream: WriteHalf<'a>) -> Self {
        Self { stream, buf: BytesMut::new(), codec: Codec::new().client_mode() }
    }

    pub async fn send(&mut self, message: Message) -> Result<(), WireError> {
        self.buf.clear();
        self.codec.encode(message, &mut self.buf)?;
        self.stream.write_all(&self.buf).await?;
        Ok(())
    }

    pub async fn text(&mut self, text: String) -> Result<(), WireError> {
        self.send(Message::Text(text.into())).await
    }

    /// Answers a ping, as the server's heartbeat expects.
    pub async fn pong(&mut self, payload: Bytes) -> Result<(), WireError> {
        self.send(Message::Pong(payload)).await
    }

    /// Starts the closing handshake (no code, as a client leaving normally may).
    pub async fn close(&mut self) -> Result<(), WireError> {
        self.send(Message::Close(None)).await
    }
}
