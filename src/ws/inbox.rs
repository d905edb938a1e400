//! A session's inbox: its rooms, and what of their events it writes to the client.
//!
//! The session and its worker's rooms (`rooms::LocalMembers`) share it on the session's thread:
//! the session's commands join and leave rooms here, and the worker hands every event of a room
//! straight to [`Inbox::deliver`], without a message to the session actor. Per room it keeps
//! the last message id written: a message at or below it is dropped, which makes delivery
//! exactly-once per session across replays and engine redeliveries. While a join is in
//! progress, the room's live events are held back until the replay is written, so they come
//! after it.
//!
//! An event the outbound queue (or a join's held events) cannot take tells the session, which
//! closes as a slow consumer; until then the inbox takes nothing more.

use std::{
    cell::{Cell, RefCell, RefMut},
    collections::HashMap,
    time::Duration,
};

use actix::{Message, WeakRecipient};

use super::{outbound::OutboundSender, session_trace};
use crate::{
    domain::{MessageId, RoomName, SessionId, UserName, now_ms},
    rooms::{LocalMember, RoomEvent},
    telemetry::Metrics,
};

/// Inbox -> session: the client does not keep up; close it as a slow consumer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Overflowed;

/// This session's state in one room.
#[derive(Default)]
pub struct Membership {
    /// The room directory's delivery count when the session joined: events numbered up to it
    /// were delivered before the join (see `rooms::RoomDirectory::join`) and are not for it.
    pub joined_at: u64,
    /// The newest message id written to the client for this room.
    pub last_delivered: Option<MessageId>,
    /// While the join is in progress: live events held back until the replay is written.
    pub held: Option<Vec<RoomEvent>>,
    /// The engine has not answered the join yet (the room directory waits for its answer).
    pub unanswered: bool,
}

pub struct Inbox {
    session: SessionId,
    user: UserName,
    rooms: RefCell<HashMap<RoomName, Membership>>,
    outbound: OutboundSender,
    /// How many events a join may hold back (the outbound queue's frame bound).
    max_held: usize,
    /// Messages written to the client, live and replayed.
    received: Cell<u64>,
    /// Set once the session was told it overflowed.
    overflowed: Cell<bool>,
    on_overflow: WeakRecipient<Overflowed>,
    metrics: Metrics,
}

impl Inbox {
    pub fn new(
        session: SessionId,
        user: UserName,
        outbound: OutboundSender,
        max_held: usize,
        on_overflow: WeakRecipient<Overflowed>,
        metrics: Metrics,
    ) -> Self {
        Self {
            session,
            user,
            rooms: RefCell::default(),
            outbound,
            max_held,
            received: Cell::new(0),
            overflowed: Cell::new(false),
            on_overflow,
            metrics,
        }
    }

    /// The session's rooms. Do not hold across an await or a delivery.
    pub fn rooms(&self) -> RefMut<'_, HashMap<RoomName, Membership>> {
        self.rooms.borrow_mut()
    }

    /// Counts `count` messages written to the client by the session itself (a join's replay).
    pub fn count_received(&self, count: u64) {
        self.received.set(self.received.get() + count);
    }

    /// Messages written to the client so far.
    pub fn received(&self) -> u64 {
        self.received.get()
    }

    fn overflow(&self) {
        if !self.overflowed.replace(true)
            && let Some(session) = self.on_overflow.upgrade()
        {
            session.do_send(Overflowed);
        }
    }
}

impl LocalMember for Inbox {
    fn user(&self) -> &UserName {
        &self.user
    }

    fn deliver(&self, event: &RoomEvent) {
        if self.overflowed.get() || self.outbound.is_closed() {
            return;
        }
        let mut rooms = self.rooms.borrow_mut();
        let Some(membership) = rooms.get_mut(&event.room) else { return };
        if event.seq <= membership.joined_at {
            return;
        }
        if let Some(held) = &mut membership.held {
            if held.len() < self.max_held {
                held.push(event.clone());
            } else {
                self.overflow();
            }
            return;
        }
        if let Some(id) = event.id {
            if membership.last_delivered.is_some_and(|last| id <= last) {
                return;
            }
            membership.last_delivered = Some(id);
            self.count_received(1);
            self.metrics.delivered_after(Duration::from_millis(now_ms().saturating_sub(id.millis())));
        }
        drop(rooms);
        let send =
            event.trace.as_ref().map(|parent| session_trace::send_span(self.session, parent, &event.room, event.id));
        let _entered = send.as_ref().map(tracing::Span::enter);
        if self.outbound.text(event.frame.clone()).is_err() {
            self.overflow();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::{Context, Poll, Waker},
    };

    use actix::{Actor, Handler};
    use actix_web::web::Bytes;
    use bytestring::ByteString;
    use futures_util::Stream;

    use super::*;
    use crate::ws::outbound::{Outbound, OutboundBody};

    /// Stands in for the session: counts the overflows it is told of.
    struct Session(Arc<AtomicUsize>);

    impl Actor for Session {
        type Context = actix::Context<Self>;
    }

    impl Handler<Overflowed> for Session {
        type Result = ();

        fn handle(&mut self, _: Overflowed, _: &mut Self::Context) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap_or_else(|_| unreachable!("a valid name"))
    }

    /// An event delivered after every join these tests make.
    fn event(room_name: &str, id: Option<u64>, text: &'static str) -> RoomEvent {
        RoomEvent {
            room: room(room_name),
            seq: 100,
            id: id.map(|seq| MessageId::new(1_700_000_000_000, seq)),
            frame: ByteString::from_static(text),
            trace: None,
        }
    }

    /// Everything queued for the client, encoded as the driver would write it.
    fn written(body: &mut OutboundBody) -> Bytes {
        match Pin::new(body).poll_next(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Some(Ok(bytes))) => bytes,
            _ => Bytes::new(),
        }
    }

    /// Lets the stand-in session handle what was sent to it.
    async fn settle() {
        for _ in 0..10 {
            actix_web::rt::task::yield_now().await;
        }
    }

    fn inbox(outbound: &Outbound, max_held: usize) -> (Inbox, Arc<AtomicUsize>) {
        let overflows = Arc::new(AtomicUsize::new(0));
        let session = Session(overflows.clone()).start();
        let user = UserName::parse("alice").unwrap_or_else(|_| unreachable!("a valid name"));
        let inbox = Inbox::new(
            SessionId::random(),
            user,
            outbound.sender(),
            max_held,
            session.downgrade().recipient(),
            Metrics::new(),
        );
        (inbox, overflows)
    }

    #[actix_web::test]
    async fn writes_each_message_of_its_rooms_once_and_nothing_of_other_rooms() {
        let (outbound, mut body) = Outbound::new(16, 1024, crate::ws::budget::unbounded_share());
        let (inbox, _) = inbox(&outbound, 16);
        inbox.rooms().insert(room("lobby"), Membership::default());
        inbox.deliver(&event("lobby", Some(2), "m2"));
        inbox.deliver(&event("lobby", Some(1), "m1"));
        inbox.deliver(&event("lobby", Some(2), "m2"));
        inbox.deliver(&event("other", Some(3), "o3"));
        inbox.deliver(&event("lobby", None, "p"));
        assert_eq!(&written(&mut body)[..], b"\x81\x02m2\x81\x01p", "older and repeated ids dropped");
        assert_eq!(inbox.received(), 1);
    }

    #[actix_web::test]
    async fn drops_what_was_delivered_before_its_join() {
        let (outbound, mut body) = Outbound::new(16, 1024, crate::ws::budget::unbounded_share());
        let (inbox, _) = inbox(&outbound, 16);
        inbox.rooms().insert(room("lobby"), Membership { joined_at: 100, ..Membership::default() });
        inbox.deliver(&RoomEvent { seq: 99, ..event("lobby", None, "before") });
        inbox.deliver(&RoomEvent { seq: 100, ..event("lobby", None, "at") });
        inbox.deliver(&RoomEvent { seq: 101, ..event("lobby", None, "after") });
        assert_eq!(&written(&mut body)[..], b"\x81\x05after");
    }

    #[actix_web::test]
    async fn holds_events_back_during_a_join_and_tells_the_session_once_when_over_the_bound() {
        let (outbound, mut body) = Outbound::new(16, 1024, crate::ws::budget::unbounded_share());
        let (inbox, overflows) = inbox(&outbound, 2);
        inbox.rooms().insert(room("lobby"), Membership { held: Some(Vec::new()), ..Membership::default() });
        for seq in 1..=4 {
            inbox.deliver(&event("lobby", Some(seq), "m"));
        }
        assert!(written(&mut body).is_empty(), "nothing written while the join is in progress");
        let held = inbox.rooms().get_mut(&room("lobby")).and_then(|membership| membership.held.take());
        assert_eq!(held.map(|events| events.len()), Some(2));
        // The session hears of it by message, once.
        settle().await;
        assert_eq!(overflows.load(Ordering::Relaxed), 1);
        inbox.deliver(&event("lobby", Some(5), "m"));
        assert!(written(&mut body).is_empty(), "an overflowed inbox takes nothing more");
    }

    #[actix_web::test]
    async fn a_full_queue_tells_the_session() {
        let (outbound, _body) = Outbound::new(1, 1024, crate::ws::budget::unbounded_share());
        let (inbox, overflows) = inbox(&outbound, 16);
        inbox.rooms().insert(room("lobby"), Membership::default());
        inbox.deliver(&event("lobby", Some(1), "m1"));
        inbox.deliver(&event("lobby", Some(2), "m2"));
        settle().await;
        assert_eq!(overflows.load(Ordering::Relaxed), 1);
    }
}
