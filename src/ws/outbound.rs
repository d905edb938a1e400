//! The session's bounded outbound queue, and the task that drains it into the socket.
//!
//! Only the session actor pushes; a task on the same thread moves frames into actix-ws's writer
//! as the socket accepts them. Pushing never waits: when the queue is over its frame or byte
//! bound the push fails and the session closes as a slow consumer, so one stalled socket never
//! holds up its rooms. Close frames always fit, and end the queue.

use std::{
    cell::RefCell,
    collections::VecDeque,
    future::poll_fn,
    pin::Pin,
    rc::Rc,
    task::{Poll, Waker},
};

use actix_ws::{CloseReason, Message};
use bytestring::ByteString;
use futures_util::Sink;

/// The queue was over its bound; the frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

struct Queue {
    frames: VecDeque<Message>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    /// Set once a close frame is queued or the session is gone: nothing more is accepted.
    finished: bool,
    waker: Option<Waker>,
}

impl Queue {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// The session's handle on its queue. Dropping it ends the drain task.
pub struct Outbound {
    queue: Rc<RefCell<Queue>>,
}

fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        _ => 0,
    }
}

impl Outbound {
    /// Creates the queue and spawns its drain task on the current thread.
    pub fn start(socket: actix_ws::Session, max_frames: usize, max_bytes: usize) -> Self {
        let queue = Rc::new(RefCell::new(Queue {
            frames: VecDeque::new(),
            bytes: 0,
            max_frames,
            max_bytes,
            finished: false,
            waker: None,
        }));
        actix_web::rt::spawn(drain(queue.clone(), socket));
        Self { queue }
    }

    /// Queues a frame, or fails when the queue is full or closed.
    pub fn push(&self, message: Message) -> Result<(), QueueFull> {
        let mut queue = self.queue.borrow_mut();
        let len = payload_len(&message);
        if queue.finished
            || queue.frames.len() >= queue.max_frames
            || queue.bytes + len > queue.max_bytes
        {
            return Err(QueueFull);
        }
        queue.bytes += len;
        queue.frames.push_back(message);
        queue.wake();
        Ok(())
    }

    pub fn text(&self, frame: ByteString) -> Result<(), QueueFull> {
        self.push(Message::Text(frame))
    }

    /// Queues a close frame after what is queued (or instead of it, with `discard`), and
    /// accepts nothing after it.
    pub fn close(&self, code: u16, reason: &str, discard: bool) {
        let mut queue = self.queue.borrow_mut();
        if queue.finished {
            return;
        }
        if discard {
            queue.frames.clear();
            queue.bytes = 0;
        }
        let reason = CloseReason {
            code: actix_ws::CloseCode::from(code),
            description: (!reason.is_empty()).then(|| reason.to_owned()),
        };
        queue.frames.push_back(Message::Close(Some(reason)));
        queue.finished = true;
        queue.wake();
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        let mut queue = self.queue.borrow_mut();
        queue.finished = true;
        queue.wake();
    }
}

/// Moves frames from the queue into the socket until a close frame is written, the socket is
/// gone, or the session dropped its handle with nothing left to write.
async fn drain(queue: Rc<RefCell<Queue>>, mut socket: actix_ws::Session) {
    poll_fn(|cx| {
        loop {
            let mut q = queue.borrow_mut();
            if q.frames.is_empty() {
                if q.finished {
                    return Poll::Ready(());
                }
                q.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            match Pin::new(&mut socket).poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            let Some(message) = q.frames.pop_front() else { continue };
            q.bytes -= payload_len(&message);
            let is_close = matches!(message, Message::Close(_));
            if Pin::new(&mut socket).start_send(message).is_err() || is_close {
                return Poll::Ready(());
            }
        }
    })
    .await;
}
