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
    /// The newest message id written to the client for this room.
    pub last_delivered: Option<MessageId>,
    /// While the join is in progress: live events held back until the replay is written.
    pub held: Option<Vec<RoomEvent>>,
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
        let send = event.trace.as_ref().map(|parent| session_trace::send_span(self.session, parent, &event.room, event.id));
        let _entered = send.as_ref().map(tracing::Span::enter);
        if self.outbound.text(event.frame.clone()).is_err() {
            self.overflow();
        }
    }
}
