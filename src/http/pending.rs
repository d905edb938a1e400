//! HTTP connections that have not finished their request, and the bound on them.
//!
//! actix-http times out only the first request head of a connection, never a body nor the head
//! of a later request, and every connection counts toward the server's limit of concurrent
//! connections, at which it stops accepting. A client that opens many connections and never
//! finishes a request would so lock every new client out, health checks and upgrades alike.
//!
//! So each accepted connection is a [`GuardedStream`], *pending* from accept until the app or
//! the upgrade has its whole request (head and body), and again from each answer until the next
//! request on a kept-alive connection. A pending connection is closed when its request takes
//! longer than `ROOKERY_REQUEST_TIMEOUT_MS`, and when a new connection finds
//! `ROOKERY_MAX_PENDING_REQUESTS` pending, the one pending longest is closed to make room. The
//! bound is apart from the WebSocket sessions (an upgraded connection is never pending), so a
//! flood of unfinished requests costs neither the sessions nor new clients their place.
//!
//! Closing ends the stream at its next read that finds nothing to read: a request already in
//! the socket's buffer (a handshake queued in a connection storm) is still read and served.

use std::{
    collections::BTreeMap,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use actix_web::{
    Error, HttpRequest,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    middleware::Next,
    web::{self, Bytes, BytesMut},
};
use bytes::Buf;
use futures_util::{StreamExt, task::AtomicWaker};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};

use super::ApiError;
use crate::telemetry::Metrics;

/// The node's pending connections.
#[derive(Clone)]
pub struct PendingRequests(Arc<Tracker>);

struct Tracker {
    max: usize,
    timeout: Duration,
    metrics: Metrics,
    waiting: Mutex<Waiting>,
}

/// Pending connections, oldest first (keys only grow).
#[derive(Default)]
struct Waiting {
    next: u64,
    order: BTreeMap<u64, Arc<ConnState>>,
}

/// One connection's place among the pending ones; what the app sees of its connection.
struct ConnState {
    tracker: Arc<Tracker>,
    /// Its key in `Waiting::order` and its deadline while pending; changed only under the
    /// tracker's lock, so the two always agree.
    slot: Mutex<Slot>,
    /// Set to close the connection at its next read that finds nothing.
    closing: AtomicBool,
    /// The connection's reader, woken when it is to close.
    reader: AtomicWaker,
}

#[derive(Default)]
struct Slot {
    pending: Option<(u64, Instant)>,
    /// The stream is gone (dropped or upgraded): never pending again.
    gone: bool,
}

impl PendingRequests {
    pub fn new(max: usize, timeout: Duration, metrics: Metrics) -> Self {
        Self(Arc::new(Tracker { max, timeout, metrics, waiting: Mutex::default() }))
    }

    /// Wraps a freshly accepted connection, pending at once. When `max` are already pending,
    /// the oldest is closed first.
    pub fn accept(&self, io: TcpStream) -> GuardedStream {
        let conn = Arc::new(ConnState {
            tracker: self.0.clone(),
            slot: Mutex::default(),
            closing: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        });
        {
            let mut waiting = self.0.lock();
            while waiting.order.len() >= self.0.max {
                let Some((_, oldest)) = waiting.order.pop_first() else { break };
                oldest.lock_slot().pending = None;
                self.0.metrics.pending_requests.dec();
                self.0.metrics.pending_closed("evicted");
                oldest.close();
            }
            self.0.insert(&mut waiting, &conn);
        }
        let deadline = Instant::now() + self.0.timeout;
        GuardedStream {
            io,
            conn: Registration(ConnHandle(conn)),
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            replacement: None,
        }
    }

    /// Connections pending now.
    pub fn count(&self) -> usize {
        self.0.lock().order.len()
    }
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A panic while holding the lock leaves the map consistent (each step is one call).
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, waiting: &mut Waiting, conn: &Arc<ConnState>) {
        let mut slot = conn.lock_slot();
        if slot.gone || slot.pending.is_some() || conn.closing.load(Ordering::Acquire) {
            return;
        }
        let key = waiting.next;
        waiting.next += 1;
        waiting.order.insert(key, conn.clone());
        slot.pending = Some((key, Instant::now() + self.timeout));
        self.metrics.pending_requests.inc();
    }

    fn remove(&self, waiting: &mut Waiting, conn: &ConnState) {
        if let Some((key, _)) = conn.lock_slot().pending.take() {
            waiting.order.remove(&key);
            self.metrics.pending_requests.dec();
        }
    }
}

impl ConnState {
    fn lock_slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.reader.wake();
    }

    fn deadline(&self) -> Option<Instant> {
        self.lock_slot().pending.map(|(_, deadline)| deadline)
    }
}

/// A connection as the app and the upgrade see it (in the request's connection data).
#[derive(Clone)]
pub struct ConnHandle(Arc<ConnState>);

impl ConnHandle {
    /// The request is complete: the connection is no longer pending.
    pub fn request_complete(&self) {
        let tracker = &self.0.tracker;
        tracker.remove(&mut tracker.lock(), &self.0);
    }

    /// The answer is out: the connection waits for its next request, pending again.
    pub fn awaiting_next(&self) {
        let tracker = &self.0.tracker;
        tracker.insert(&mut tracker.lock(), &self.0);
    }

    /// The connection was closed for its request's timeout or to make room.
    pub fn is_closing(&self) -> bool {
        self.0.closing.load(Ordering::Acquire)
    }

    fn gone(&self) {
        let tracker = &self.0.tracker;
        let mut waiting = tracker.lock();
        tracker.remove(&mut waiting, &self.0);
        self.0.lock_slot().gone = true;
    }
}

/// An accepted TCP connection that ends itself when closed as a pending connection.
pub struct GuardedStream {
    io: TcpStream,
    conn: Registration,
    timer: Pin<Box<Sleep>>,
    /// What goes out instead of an error answer actix-http wrote with an empty body.
    replacement: Option<Bytes>,
}

/// Leaves the pending connections when the stream goes.
struct Registration(ConnHandle);

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.gone();
    }
}

impl GuardedStream {
    pub fn handle(&self) -> ConnHandle {
        self.conn.0.clone()
    }

    /// The TCP stream, for an upgraded connection: no longer pending, ever.
    pub fn into_inner(self) -> TcpStream {
        let Self { io, .. } = self;
        io
    }

    /// Whether a read that found nothing should end the stream, registering the reader to be
    /// woken when that changes.
    fn should_end(&mut self, cx: &mut Context<'_>) -> bool {
        let conn = &self.conn.0.0;
        conn.reader.register(cx.waker());
        if conn.closing.load(Ordering::Acquire) {
            return true;
        }
        let Some(deadline) = conn.deadline() else { return false };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let tracker = &conn.tracker;
        tracker.remove(&mut tracker.lock(), conn);
        tracker.metrics.pending_closed("timeout");
        conn.close();
        true
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending if this.should_end(cx) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl GuardedStream {
    /// Writes what is left of a replaced error answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self.replacement.as_mut() {
            if rest.is_empty() {
                self.replacement = None;
                break;
            }
            match Pin::new(&mut self.io).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => rest.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.poll_replacement(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        if let Some(replacement) = json_error_answer(buf) {
            // The dispatcher's bytes are taken whole; flush and shutdown write what is left.
            this.replacement = Some(replacement);
            if let Poll::Ready(Err(e)) = this.poll_replacement(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn is_write_vectored(&self) -> bool {
        // One buffer at a time, so every answer head passes `poll_write` whole.
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// actix-http answers a request it cannot parse (400), a head over its buffer (431) and a head
/// that came too late (408) itself, with an empty body; every error of a node is JSON
/// (`{"code","message"}`), so such an answer is rewritten on its way out. The app's own answers
/// always have a body, so an empty one of these statuses is actix-http's.
fn json_error_answer(buf: &[u8]) -> Option<Bytes> {
    let head = std::str::from_utf8(buf).ok()?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    if !head.ends_with("\r\n\r\n") || !head.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let (code, message) = match status {
        "400" => ("bad_request", "the request is not valid HTTP/1.1"),
        "408" => ("request_timeout", "the request did not arrive in time"),
        "431" => ("headers_too_large", "the request head is too large"),
        _ => return None,
    };
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let length = format!("\r\ncontent-length: {}\r\ncontent-type: application/json\r\n", body.len());
    Some(Bytes::from(head.replacen("\r\ncontent-length: 0\r\n", &length, 1) + &body))
}

/// Middleware around the whole app: a request without a body is complete as it arrives (one
/// with a body completes in the handler that reads it, see `read_body`); once answered, the
/// connection waits for its next request.
pub async fn track(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let conn = req.conn_data::<ConnHandle>().cloned();
    if let Some(conn) = &conn
        && matches!(req.parts_mut().1, Payload::None)
    {
        conn.request_complete();
    }
    let response = next.call(req).await;
    if let Some(conn) = conn {
        conn.awaiting_next();
    }
    response
}

/// Reads a request body of at most `limit` bytes; the request is then complete. A body that
/// says it is longer is refused before any of it is read; one that does not arrive within the
/// request timeout ends with its connection.
pub async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(format!("the request body is over {limit} bytes"));
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let conn = req.conn_data::<ConnHandle>();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match conn {
            Some(conn) if conn.is_closing() => ApiError::request_timeout(),
            _ => ApiError::bad_request(format!("cannot read the request body: {e}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if let Some(conn) = conn {
        conn.request_complete();
    }
    Ok(body.freeze())
}
