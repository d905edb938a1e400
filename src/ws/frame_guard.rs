//! A guard on the raw bytes of a WebSocket connection, in front of the frame decoder.
//!
//! actix-http's decoder only checks a frame's size once the whole frame is buffered, so a peer
//! announcing a 1 GiB frame would make the node buffer it. The guard reads each frame header as
//! the bytes go by and fails the stream as soon as a message (all its fragments together) is
//! over the limit, or a control frame is over 125 bytes, recording why in a [`Verdict`] for the
//! reader to turn into a close code.
//!
//! It also checks the payload of text messages for UTF-8 as the bytes go by (unmasking them into
//! a small buffer on the stack), so a message is refused (1007) at the first sequence that no
//! later byte can make valid, even in the middle of a frame that has not fully arrived. It keeps
//! a few dozen bytes of state per connection.

use std::{
    cell::Cell,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use actix_web::{error::PayloadError, web::Bytes};
use futures_util::Stream;

use crate::protocol::CloseCode;

/// Why the guard stopped the stream, shared with the reader on the same thread.
pub type Verdict = Rc<Cell<Option<CloseCode>>>;

const MAX_HEADER: usize = 14;
const MAX_CONTROL_PAYLOAD: u64 = 125;
/// Payload bytes unmasked and checked at a time.
const CHECK_CHUNK: usize = 256;

/// Wraps the connection's byte stream; see the module docs.
pub struct FrameGuard<S> {
    inner: S,
    max_message: u64,
    verdict: Verdict,
    header: [u8; MAX_HEADER],
    header_len: usize,
    payload_left: u64,
    message_len: u64,
    /// Whether the data message under way is text, and so checked for UTF-8.
    text_message: bool,
    /// Whether the current frame's payload is checked (a data frame of a text message).
    checking: bool,
    /// The current frame's mask, and how far into its payload the guard is.
    mask: [u8; 4],
    payload_pos: u64,
    /// The start of a character cut off at the end of what was checked so far.
    pending: [u8; 3],
    pending_len: usize,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, max_message: usize, verdict: Verdict) -> Self {
        Self {
            inner,
            max_message: max_message as u64,
            verdict,
            header: [0; MAX_HEADER],
            header_len: 0,
            payload_left: 0,
            message_len: 0,
            text_message: false,
            checking: false,
            mask: [0; 4],
            payload_pos: 0,
            pending: [0; 3],
            pending_len: 0,
        }
    }

    /// Walks the frame headers in `chunk`; `Err` with the close code once a limit is crossed.
    fn inspect(&mut self, mut chunk: &[u8]) -> Result<(), CloseCode> {
        while !chunk.is_empty() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(chunk.len() as u64);
                if self.checking {
                    self.check_text(&chunk[..skip as usize])?;
                }
                self.payload_left -= skip;
                chunk = &chunk[skip as usize..];
                continue;
            }
            self.header[self.header_len] = chunk[0];
            self.header_len += 1;
            chunk = &chunk[1..];
            if let Some(payload) = self.complete_header() {
                self.on_frame(payload)?;
                self.header_len = 0;
            }
        }
        Ok(())
    }

    /// The payload length once the header buffered so far is complete.
    fn complete_header(&self) -> Option<u64> {
        if self.header_len < 2 {
            return None;
        }
        let masked = self.header[1] & 0x80 != 0;
        let (extra, short) = match self.header[1] & 0x7F {
            126 => (2, None),
            127 => (8, None),
            len => (0, Some(u64::from(len))),
        };
        let total = 2 + extra + if masked { 4 } else { 0 };
        if self.header_len < total {
            return None;
        }
        Some(short.unwrap_or_else(|| self.header[2..2 + extra].iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))))
    }

    fn on_frame(&mut self, payload: u64) -> Result<(), CloseCode> {
        let fin = self.header[0] & 0x80 != 0;
        let opcode = self.header[0] & 0x0F;
        if opcode >= 0x8 {
            if payload > MAX_CONTROL_PAYLOAD {
                return Err(CloseCode::Protocol);
            }
            self.checking = false;
        } else {
            self.message_len = self.message_len.saturating_add(payload);
            if self.message_len > self.max_message {
                return Err(CloseCode::TooBig);
            }
            // A text or binary frame starts a message; a continuation (0) carries on the last.
            match opcode {
                0x1 => (self.text_message, self.pending_len) = (true, 0),
                0x2 => self.text_message = false,
                _ => {}
            }
            self.checking = self.text_message;
            if fin {
                self.message_len = 0;
            }
        }
        // The header is complete and held whole: a masked one ends with its key.
        let masked = self.header[1] & 0x80 != 0;
        let end = self.header_len;
        self.mask = if masked {
            [self.header[end - 4], self.header[end - 3], self.header[end - 2], self.header[end - 1]]
        } else {
            [0; 4]
        };
        self.payload_pos = 0;
        self.payload_left = payload;
        Ok(())
    }

    /// Unmasks and checks the next payload bytes of a text message for UTF-8.
    fn check_text(&mut self, masked: &[u8]) -> Result<(), CloseCode> {
        let mut buffer = [0u8; 3 + CHECK_CHUNK];
        for piece in masked.chunks(CHECK_CHUNK) {
            buffer[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
            for (i, byte) in piece.iter().enumerate() {
                let key = self.mask[((self.payload_pos + i as u64) % 4) as usize];
                buffer[self.pending_len + i] = byte ^ key;
            }
            self.payload_pos += piece.len() as u64;
            let filled = &buffer[..self.pending_len + piece.len()];
            let cut = match std::str::from_utf8(filled) {
                Ok(_) => filled.len(),
                // Only a character cut off at the end (`error_len` is `None`) can still become valid.
                Err(error) if error.error_len().is_none() => error.valid_up_to(),
                Err(_) => return Err(CloseCode::InvalidPayload),
            };
            let rest = &filled[cut..];
            self.pending[..rest.len()].copy_from_slice(rest);
            self.pending_len = rest.len();
        }
        Ok(())
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.verdict.get().is_some() {
            return Poll::Ready(None);
        }
        let item = std::task::ready!(Pin::new(&mut self.inner).poll_next(cx));
        if let Some(Ok(bytes)) = &item
            && let Err(code) = self.inspect(bytes)
        {
            self.verdict.set(Some(code));
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: usize) -> FrameGuard<()> {
        FrameGuard::new((), max, Rc::default())
    }

    /// A masked client frame header for `len` payload bytes.
    fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => h.push(0x80 | len as u8),
            126..=0xFFFF => {
                h.push(0x80 | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(0x80 | 127);
                h.extend_from_slice(&len.to_be_bytes());
            }
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    #[test]
    fn passes_frames_within_the_limit_split_anywhere() {
        let mut bytes = header(true, 1, 300);
        bytes.extend(vec![b'a'; 300]);
        bytes.extend(header(true, 9, 4));
        bytes.extend(b"ping");
        bytes.extend(header(true, 2, 1000));
        bytes.extend(vec![0; 1000]);
        for split in [1, 3, 7, 64, bytes.len()] {
            let mut g = guard(1000);
            for chunk in bytes.chunks(split) {
                assert_eq!(g.inspect(chunk), Ok(()), "split {split}");
            }
            assert_eq!((g.header_len, g.payload_left), (0, 0));
        }
    }

    #[test]
    fn stops_an_oversized_frame_at_its_header() {
        let mut g = guard(1000);
        assert_eq!(g.inspect(&header(true, 1, 1 << 40)), Err(CloseCode::TooBig));
    }

    #[test]
    fn counts_fragments_of_one_message_together() {
        let mut g = guard(1000);
        let mut bytes = header(false, 1, 600);
        bytes.extend(vec![b'a'; 600]);
        bytes.extend(header(true, 9, 0));
        assert_eq!(g.inspect(&bytes), Ok(()), "a ping between fragments is fine");
        assert_eq!(g.inspect(&header(true, 0, 600)), Err(CloseCode::TooBig));
    }

    /// A masked frame (mask 1, 2, 3, 4) carrying `payload`.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = header(fin, opcode, payload.len() as u64);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]));
        bytes
    }

    #[test]
    fn refuses_invalid_utf8_in_text_as_the_bytes_arrive() {
        // Valid text split anywhere, a character cut across frames, a ping in between: fine.
        let mut bytes = frame(false, 1, "κόσμε \u{e2}".as_bytes().split_last().map_or(&[][..], |(_, rest)| rest));
        bytes.extend(frame(true, 9, b"ping"));
        bytes.extend(frame(true, 0, &"\u{e2}".as_bytes()[1..]));
        bytes.extend(frame(true, 2, &[0xFF, 0xFE]));
        for split in [1, 2, 5, bytes.len()] {
            let mut g = guard(1000);
            for chunk in bytes.chunks(split) {
                assert_eq!(g.inspect(chunk), Ok(()), "split {split}");
            }
        }
        // A surrogate (ED A0 80) is refused at its bytes, before the frame's end arrives.
        let bad = frame(true, 1, &[b'a', 0xED, 0xA0, 0x80, b'b', b'c']);
        let mut g = guard(1000);
        assert_eq!(g.inspect(&bad[..bad.len() - 2]), Err(CloseCode::InvalidPayload));
    }

    #[test]
    fn rejects_control_frames_over_125_bytes() {
        assert_eq!(guard(1000).inspect(&header(true, 9, 126)), Err(CloseCode::Protocol));
    }
}
