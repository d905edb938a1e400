//! The TCP stream of an upgraded connection, without buffers of its own.
//!
//! Once the upgrade is answered the stream is ours alone (see `upgrade`): nothing sits between
//! it and the session but the frame decoder and the outbound queue. An idle connection holds no
//! read or write buffer here: bytes are read into a buffer on the stack when the socket has
//! some, and copied out in a chunk of their exact size, and writes go straight from the encoded
//! frames. That is what brings an idle connection under the two 8 KiB buffers actix-http's
//! HTTP/1 dispatcher would keep for it (see `BENCHMARKS.md`).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{error::PayloadError, web::Bytes};
use futures_util::Stream;
use tokio::net::TcpStream;

/// The most one read takes from the socket; the stack holds it, not the connection.
const READ_CHUNK: usize = 8 * 1024;

/// The bytes the peer sends, as a stream of chunks; ends when the peer closes its side.
pub struct SocketBytes<'a> {
    stream: &'a TcpStream,
    /// Bytes that came with the handshake, handed out first.
    early: Option<Bytes>,
}

impl<'a> SocketBytes<'a> {
    /// Reads `stream`, after `early` (what was read past the handshake request).
    pub fn new(stream: &'a TcpStream, early: Bytes) -> Self {
        Self { stream, early: (!early.is_empty()).then_some(early) }
    }
}

impl Stream for SocketBytes<'_> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(early) = self.early.take() {
            return Poll::Ready(Some(Ok(early)));
        }
        loop {
            if let Err(error) = std::task::ready!(self.stream.poll_read_ready(cx)) {
                return Poll::Ready(Some(Err(PayloadError::Io(error))));
            }
            let mut chunk = [0u8; READ_CHUNK];
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Poll::Ready(None),
                Ok(read) => return Poll::Ready(Some(Ok(Bytes::copy_from_slice(&chunk[..read])))),
                // The readiness was stale; polling again registers for the next.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Some(Err(PayloadError::Io(error)))),
            }
        }
    }
}

/// Writes all of `bytes`.
pub async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Ends the connection after the last write: sends FIN, then reads and drops what the peer
/// still sends (its close frame) until it closes too or `linger` passes. Closing with unread
/// bytes would send a reset, which can destroy the last frames before the peer reads them.
pub async fn close(mut stream: TcpStream, linger: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 512];
        while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
    };
    let _ = tokio::time::timeout(linger, drain).await;
}

/// Drops the connection at once, unsent bytes and all: the peer gets a reset, and the node
/// keeps nothing of it (a plain close would leave the kernel retrying what the peer won't read).
pub fn reset(stream: TcpStream) {
    // With a zero linger, closing never blocks: it sends the reset and frees the socket.
    let _ = stream.set_zero_linger();
}
