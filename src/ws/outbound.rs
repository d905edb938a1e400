//! The session's bounded outbound queue.
//!
//! The session actor pushes its replies, and its rooms' deliveries are pushed by its inbox
//! (`inbox`), on the same thread, through an [`OutboundSender`]. The connection's driver polls the other end, the
//! [`OutboundBody`], whenever the socket can take more, and encodes every frame waiting into one
//! write. No task or channel sits between the session and the socket: a delivery costs one push
//! and, when the connection was idle, one wake of its driver. A socket that does not keep up
//! stops being polled, so frames wait here, where the bound is: pushing never waits, and when the
//! queue is over its frame or byte bound the push fails and the session closes as a slow
//! consumer, so one stalled socket never holds up its rooms. Close frames always fit, and end
//! the body. Every byte queued, and every byte taken for a write until the write is done, also
//! counts against the node-wide budget (`budget`), which may evict the session: the driver then
//! drops what is queued and closes (see [`OutboundBody::evict`]).

use std::{
    cell::RefCell,
    collections::VecDeque,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

use actix_codec::Encoder;
use actix_http::ws::{CloseCode, CloseReason, Codec, Message, ProtocolError};
use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;

use super::budget::{Eviction, Share};

/// The queue was over its bound; the frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// A close frame's reason must fit in a control frame: 125 bytes, minus the code.
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// What one poll of the body encodes at most (a single larger frame still goes whole): the
/// driver polls again once the socket took it, and the rest waits here meanwhile.
const MAX_WRITE_BYTES: usize = 16 * 1024;

struct Queue {
    frames: VecDeque<Message>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    /// Set once a close frame is queued or the session is gone: nothing more is accepted.
    finished: bool,
    /// The connection dropped the body: frames have nowhere to go, and are discarded.
    body_gone: bool,
    /// The driver's waker, while the body is waiting for frames.
    waker: Option<Waker>,
    /// This session's part of the node's budget: what is queued plus the write in progress.
    share: Share,
}

impl Queue {
    /// Drops every queued frame, giving its bytes back.
    fn discard(&mut self) {
        self.frames.clear();
        self.share.give_back(self.bytes);
        self.bytes = 0;
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// The session's handle on its queue. Dropping it ends the body once the queue is written.
pub struct Outbound {
    sender: OutboundSender,
}

/// Another handle on a session's queue, for its inbox: it pushes as [`Outbound`] does, but
/// dropping it ends nothing.
#[derive(Clone)]
pub struct OutboundSender {
    queue: Rc<RefCell<Queue>>,
}

/// The driver's end of the queue: its frames, encoded, as a stream of writes.
pub struct OutboundBody {
    queue: Rc<RefCell<Queue>>,
    codec: Codec,
    /// The close frame went out: the body is over.
    done: bool,
    /// Payload bytes of the last write handed to the driver, counted until it asks for more.
    writing: usize,
}

fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        _ => 0,
    }
}

impl Outbound {
    /// A queue bounded by `max_frames` and `max_bytes` of payload, counted in `share` of the
    /// node's budget, and the body that drains it.
    pub fn new(max_frames: usize, max_bytes: usize, share: Share) -> (Self, OutboundBody) {
        let queue = Rc::new(RefCell::new(Queue {
            frames: VecDeque::new(),
            bytes: 0,
            max_frames,
            max_bytes,
            finished: false,
            body_gone: false,
            waker: None,
            share,
        }));
        let body = OutboundBody { queue: queue.clone(), codec: Codec::new(), done: false, writing: 0 };
        (Self { sender: OutboundSender { queue } }, body)
    }

    /// Queues a frame, or fails when the queue is full or closed (see [`OutboundSender::push`]).
    pub fn push(&self, message: Message) -> Result<(), QueueFull> {
        self.sender.push(message)
    }

    pub fn text(&self, frame: ByteString) -> Result<(), QueueFull> {
        self.sender.push(Message::Text(frame))
    }

    /// A handle for the session's inbox.
    pub fn sender(&self) -> OutboundSender {
        self.sender.clone()
    }

    /// Queues a close frame after what is queued (or instead of it, with `discard`), and
    /// accepts nothing after it.
    pub fn close(&self, code: u16, reason: &str, discard: bool) {
        let mut queue = self.sender.queue.borrow_mut();
        if queue.finished {
            return;
        }
        if discard {
            queue.discard();
        }
        let mut end = reason.len().min(MAX_CLOSE_REASON_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason =
            CloseReason { code: CloseCode::from(code), description: (end > 0).then(|| reason[..end].to_owned()) };
        queue.frames.push_back(Message::Close(Some(reason)));
        queue.finished = true;
        queue.wake();
    }
}

impl OutboundSender {
    /// Queues a frame, or fails when the queue is full or closed. Once the connection is gone
    /// frames are dropped without complaint: the reader reports the end.
    pub fn push(&self, message: Message) -> Result<(), QueueFull> {
        let mut queue = self.queue.borrow_mut();
        if queue.body_gone {
            return Ok(());
        }
        let len = payload_len(&message);
        if queue.finished || queue.frames.len() >= queue.max_frames || queue.bytes + len > queue.max_bytes {
            return Err(QueueFull);
        }
        queue.bytes += len;
        queue.share.take(len);
        queue.frames.push_back(message);
        queue.wake();
        Ok(())
    }

    pub fn text(&self, frame: ByteString) -> Result<(), QueueFull> {
        self.push(Message::Text(frame))
    }

    /// Whether a frame of `len` bytes fits while keeping the queue at most one `share`-th full
    /// (in frames and bytes); an empty queue takes any frame its bound allows.
    pub fn fits_within_share(&self, len: usize, share: usize) -> bool {
        let queue = self.queue.borrow();
        let share = share.max(1);
        queue.frames.is_empty()
            || (queue.frames.len() < queue.max_frames / share && queue.bytes + len <= queue.max_bytes / share)
    }

    /// The queue's byte bound.
    pub fn max_bytes(&self) -> usize {
        self.queue.borrow().max_bytes
    }

    /// Whether the queue takes no more frames: a close frame is queued, the session is gone,
    /// or the connection is.
    pub fn is_closed(&self) -> bool {
        let queue = self.queue.borrow();
        queue.finished || queue.body_gone
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        let mut queue = self.sender.queue.borrow_mut();
        queue.finished = true;
        queue.wake();
    }
}

impl Stream for OutboundBody {
    type Item = Result<Bytes, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ProtocolError>>> {
        let this = self.get_mut();
        let mut queue = this.queue.borrow_mut();
        // The driver asks again once the last write is done: its bytes are out.
        queue.share.give_back(std::mem::take(&mut this.writing));
        if this.done {
            return Poll::Ready(None);
        }
        if queue.frames.is_empty() {
            if queue.finished {
                return Poll::Ready(None);
            }
            if !queue.waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                queue.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        // A frame's header is at most 10 bytes from the server (it does not mask).
        let mut buf = BytesMut::with_capacity((queue.bytes + 10 * queue.frames.len()).min(MAX_WRITE_BYTES));
        while buf.len() < MAX_WRITE_BYTES {
            let Some(frame) = queue.frames.pop_front() else { break };
            let len = payload_len(&frame);
            queue.bytes -= len;
            this.writing += len;
            let is_close = matches!(frame, Message::Close(_));
            this.codec.encode(frame, &mut buf)?;
            if is_close {
                this.done = true;
                queue.discard();
                break;
            }
        }
        Poll::Ready(Some(Ok(buf.freeze())))
    }
}

impl OutboundBody {
    /// What tells the driver that the node's budget evicted this session.
    pub fn eviction(&self) -> Eviction {
        self.queue.borrow().share.eviction()
    }

    /// Evicted: drops everything queued and the write in progress, takes nothing more, and
    /// returns the close frame to send (1013), for a driver that was not in the middle of a
    /// write.
    pub fn evict(&mut self) -> Result<Bytes, ProtocolError> {
        let mut queue = self.queue.borrow_mut();
        queue.discard();
        queue.share.give_back(std::mem::take(&mut self.writing));
        queue.body_gone = true;
        self.done = true;
        let reason = CloseReason {
            code: CloseCode::Again,
            description: Some("slow consumer: node over its outbound budget".into()),
        };
        let mut buf = BytesMut::new();
        self.codec.encode(Message::Close(Some(reason)), &mut buf)?;
        Ok(buf.freeze())
    }
}

impl Drop for OutboundBody {
    fn drop(&mut self) {
        let mut queue = self.queue.borrow_mut();
        queue.body_gone = true;
        queue.discard();
        queue.share.give_back(std::mem::take(&mut self.writing));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll(body: &mut OutboundBody) -> Poll<Option<Result<Bytes, ProtocolError>>> {
        Pin::new(body).poll_next(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn encodes_everything_waiting_into_one_write_and_ends_after_the_close_frame() {
        let (outbound, mut body) = Outbound::new(10, 1000, crate::ws::budget::unbounded_share());
        assert!(poll(&mut body).is_pending());
        outbound.text("ab".into()).unwrap();
        outbound.text("cd".into()).unwrap();
        outbound.close(1000, "", false);
        let Poll::Ready(Some(Ok(bytes))) = poll(&mut body) else { panic!("expected a write") };
        // Two unmasked text frames (0x81, length, payload) and a close frame with its code.
        assert_eq!(&bytes[..], b"\x81\x02ab\x81\x02cd\x88\x02\x03\xe8");
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert_eq!(outbound.text("late".into()), Err(QueueFull));
    }

    #[test]
    fn refuses_frames_over_either_bound_but_always_takes_the_close_frame() {
        let (outbound, mut body) = Outbound::new(2, 5, crate::ws::budget::unbounded_share());
        outbound.text("abc".into()).unwrap();
        assert_eq!(outbound.text("def".into()), Err(QueueFull), "over the byte bound");
        outbound.text("gh".into()).unwrap();
        assert_eq!(outbound.text("".into()), Err(QueueFull), "over the frame bound");
        outbound.close(1013, "slow consumer", true);
        let Poll::Ready(Some(Ok(bytes))) = poll(&mut body) else { panic!("expected a write") };
        assert_eq!(&bytes[..4], b"\x88\x0f\x03\xf5", "only the close frame, the rest discarded");
    }

    #[test]
    fn drops_frames_quietly_once_the_connection_is_gone() {
        let (outbound, body) = Outbound::new(1, 10, crate::ws::budget::unbounded_share());
        drop(body);
        for _ in 0..3 {
            assert_eq!(outbound.text("x".into()), Ok(()));
        }
    }

    #[test]
    fn cuts_a_long_close_reason_to_fit_a_control_frame() {
        let (outbound, mut body) = Outbound::new(1, 10, crate::ws::budget::unbounded_share());
        outbound.close(1000, &"é".repeat(100), false);
        let Poll::Ready(Some(Ok(bytes))) = poll(&mut body) else { panic!("expected a write") };
        assert_eq!(bytes[1] as usize, 2 + 122, "122 bytes of whole characters plus the code");
    }
}
