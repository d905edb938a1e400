//! Drives one upgraded connection from start to end: reads frames and hands each to the
//! connection's actor, writes the actor's outbound queue, keeps the heartbeat and drain timers,
//! and closes the TCP stream.
//!
//! It is one future per connection, the one actix-http's dispatcher polls after the upgrade.
//! Reading and writing run side by side in it (`race`), each polled only when woken: a
//! delivery wakes the writer alone, and never waits for an inbound frame to be handled, and an inbound frame waits for the actor to finish with the previous one, so
//! frames of one session are handled strictly in order and a client that sends faster than its
//! session works is slowed by TCP.
//!
//! The connection ends when the outbound queue has written its close frame (or the socket
//! fails). When reading ends first (the peer closed, broke the protocol, vanished, or the actor
//! is gone) the writer gets one heartbeat interval to finish: a peer that takes nothing for that
//! long is reset, so a socket nobody reads never holds the connection. Otherwise the stream is
//! shut down and lingers for the peer's close.

use std::{
    future::Future,
    pin::{Pin, pin},
    time::{Duration, Instant},
};

use actix::{Actor, Addr, Handler, Message};
use actix_web::web::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpStream;

use crate::telemetry::Metrics;

use super::{
    frame_guard::{FrameGuard, Verdict},
    outbound::OutboundBody,
    race::{Finished, race},
    reader::{FrameReader, Inbound, InboundFrame},
    socket::{self, SocketBytes},
};

/// How long a closed connection waits for the peer to close its side.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How long an evicted connection's close frame may take to go out before it is reset.
const EVICTED_CLOSE_WAIT: Duration = Duration::from_millis(100);

/// Driver -> actor: a timer went off.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Timer {
    /// Time for a heartbeat.
    Beat,
    /// The node drains, and this connection's turn to close is at this instant.
    DrainAt(Instant),
}

/// What the driver watches besides the socket.
pub struct Timers {
    pub heartbeat: Duration,
    /// Resolves, once the node drains, with when to close.
    pub drain: Pin<Box<dyn Future<Output = Instant>>>,
}

/// An upgraded connection, handed to [`drive`].
pub struct Upgraded {
    pub stream: TcpStream,
    /// Bytes the client sent right behind its handshake.
    pub early: Bytes,
    pub max_frame_bytes: usize,
    pub outbound: OutboundBody,
    pub timers: Timers,
    pub metrics: Metrics,
}

/// Runs `connection` for `actor` until it ends; see the module docs.
///
/// The timers live here rather than in the actor's context because actix polls every future
/// of a context each time the actor wakes, which is once per delivered message.
pub async fn drive<A>(connection: Upgraded, actor: Addr<A>)
where
    A: Actor<Context = actix::Context<A>> + Handler<InboundFrame> + Handler<Timer>,
{
    let Upgraded { stream, early, max_frame_bytes, outbound, timers, metrics } = connection;
    let flush_grace = timers.heartbeat;
    let flushed = {
        let verdict = Verdict::default();
        let bytes = FrameGuard::new(SocketBytes::new(&stream, early), max_frame_bytes, verdict.clone());
        let mut reader = FrameReader::new(bytes, max_frame_bytes, verdict);
        let mut writing = pin!(write(&stream, outbound));
        let reading = pin!(read(&mut reader, timers, &actor));
        match race(writing.as_mut(), reading).await {
            Finished::First(ended_cleanly) => ended_cleanly,
            Finished::Second(()) => tokio::time::timeout(flush_grace, writing).await.unwrap_or(false),
        }
    };
    // When the socket failed under the writer, the actor has not heard of it yet.
    actor.do_send(InboundFrame(Inbound::Gone));
    if flushed {
        socket::close(stream, CLOSE_LINGER).await;
    } else {
        metrics.connections_reset.inc();
        socket::reset(stream);
    }
}

/// Writes the outbound queue until its close frame is out, it is dropped, or the socket fails
/// (then the connection is closed), or the node's outbound budget evicts the session: then what
/// is queued is dropped and, between two writes, a 1013 close frame gets a moment to go out;
/// a connection evicted mid-write, or whose close frame does not go out, is reset. Returns
/// whether the connection ends cleanly (closed rather than reset).
async fn write(stream: &TcpStream, mut outbound: OutboundBody) -> bool {
    let eviction = outbound.eviction();
    let mut evicted = pin!(eviction.wait());
    loop {
        let bytes = tokio::select! {
            next = outbound.next() => match next {
                Some(Ok(bytes)) => bytes,
                _ => return true,
            },
            () = &mut evicted => break,
        };
        tokio::select! {
            written = socket::write_all(stream, &bytes) => if written.is_err() { return true },
            () = &mut evicted => {
                // Part of a frame may be out: nothing valid can follow it.
                let _ = outbound.evict();
                return false;
            }
        }
    }
    match outbound.evict() {
        Ok(close) => tokio::time::timeout(EVICTED_CLOSE_WAIT, socket::write_all(stream, &close))
            .await
            .is_ok_and(|written| written.is_ok()),
        Err(_) => false,
    }
}

/// Hands the actor every item read and the timers, until the last item or the actor is gone.
async fn read<A, S>(reader: &mut FrameReader<S>, timers: Timers, actor: &Addr<A>)
where
    A: Actor<Context = actix::Context<A>> + Handler<InboundFrame> + Handler<Timer>,
    S: futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    let Timers { heartbeat, mut drain } = timers;
    let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut drain_seen = false;
    loop {
        // Reading is cancel-safe: what it has read is kept in the reader.
        let item = tokio::select! {
            item = reader.next() => item,
            _ = beats.tick() => {
                // A stopped actor stops the writer too, unless the socket is stuck: this is
                // how a stuck socket is noticed.
                if !actor.connected() {
                    return;
                }
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
}
