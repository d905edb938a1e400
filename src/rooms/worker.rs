//! The last hop of a room's fan-out: one [`WorkerRooms`] actor per HTTP worker thread.
//!
//! A session lives on the worker thread that accepted its connection, and the engine delivers
//! from the thread it reads on. Rather than one actor message per member, which crosses threads
//! and wakes the member's actor for every delivery, the room directory sends each event once to
//! every worker that has members of the room; the worker's actor then hands it to each of its
//! members in that room by a plain call, on the thread they live on (BENCHMARKS.md, change 13).
//!
//! A session adds itself to its worker's [`LocalMembers`] before it joins the room in the
//! directory, and removes itself before it leaves there, both synchronously on its own thread:
//! once the directory knows the worker, every event it sends there reaches the session, and none
//! reaches it after it left.

use std::{
    cell::RefCell,
    collections::HashMap,
    rc::Rc,
    sync::atomic::{AtomicU64, Ordering},
};

use actix::{Actor, Addr, Context, Handler, Message};

use super::RoomEvent;
use crate::{
    domain::{RoomName, SessionId, UserName},
    telemetry::Metrics,
};

/// A room member on a worker thread: a session, as far as rooms are concerned.
pub trait LocalMember {
    /// Who the member is; a presence change is not sent to the user it is about.
    fn user(&self) -> &UserName;

    /// Takes one of its room's events. Called on the member's own thread, and must not wait.
    fn deliver(&self, event: &RoomEvent);
}

/// The members of each room on one worker thread.
type Members = HashMap<RoomName, HashMap<SessionId, Rc<dyn LocalMember>>>;

/// Tells one worker's rooms apart from another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkerId(u64);

/// One worker thread's local members and its `WorkerRooms` actor, for the sessions on that
/// thread. Not `Send`: it stays on its thread.
#[derive(Clone)]
pub struct LocalMembers {
    worker: WorkerAddr,
    members: Rc<RefCell<Members>>,
}

/// What a room needs to reach one worker's members, from any thread.
#[derive(Clone)]
pub struct WorkerAddr {
    pub(super) id: WorkerId,
    pub(super) addr: Addr<WorkerRooms>,
}

impl LocalMembers {
    /// Starts the worker's actor on the current thread; call once on each worker thread.
    pub fn start(metrics: Metrics) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let members = Rc::new(RefCell::new(Members::new()));
        let addr = WorkerRooms { members: members.clone(), metrics }.start();
        let worker = WorkerAddr { id: WorkerId(NEXT_ID.fetch_add(1, Ordering::Relaxed)), addr };
        Self { worker, members }
    }

    /// Adds `member` to `room` on this worker (again, on a rejoin).
    pub fn add(&self, room: &RoomName, session: SessionId, member: Rc<dyn LocalMember>) {
        self.members.borrow_mut().entry(room.clone()).or_default().insert(session, member);
    }

    /// Removes a session from `room` on this worker; nothing of the room reaches it after this.
    pub fn remove(&self, room: &RoomName, session: SessionId) {
        let mut members = self.members.borrow_mut();
        if let Some(in_room) = members.get_mut(room) {
            in_room.remove(&session);
            if in_room.is_empty() {
                members.remove(room);
            }
        }
    }

    /// The address rooms send this worker's events to.
    pub fn addr(&self) -> WorkerAddr {
        self.worker.clone()
    }
}

/// Room -> worker: one event for the worker's members of the room, but those of `skip_user`.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Fanout {
    pub event: RoomEvent,
    pub skip_user: Option<UserName>,
}

/// Hands each event a room sends to this worker to its local members of that room.
pub struct WorkerRooms {
    members: Rc<RefCell<Members>>,
    metrics: Metrics,
}

impl Actor for WorkerRooms {
    type Context = Context<Self>;
}

impl Handler<Fanout> for WorkerRooms {
    type Result = ();

    fn handle(&mut self, Fanout { event, skip_user }: Fanout, _: &mut Context<Self>) {
        let members = self.members.borrow();
        let Some(in_room) = members.get(&event.room) else { return };
        let mut delivered = 0u64;
        for member in in_room.values() {
            if skip_user.as_ref() != Some(member.user()) {
                member.deliver(&event);
                delivered += 1;
            }
        }
        self.metrics.deliveries.inc_by(delivered);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    use bytestring::ByteString;

    use super::*;

    /// A member that counts what it is handed (the room tests' stand-in for a session).
    pub(in crate::rooms) struct Counting {
        pub user: UserName,
        pub got: Cell<usize>,
    }

    impl LocalMember for Counting {
        fn user(&self) -> &UserName {
            &self.user
        }

        fn deliver(&self, _: &RoomEvent) {
            self.got.set(self.got.get() + 1);
        }
    }

    pub(in crate::rooms) fn name(text: &str) -> UserName {
        UserName::parse(text).unwrap_or_else(|_| unreachable!("a valid name"))
    }

    #[actix_web::test]
    async fn hands_events_to_the_rooms_members_but_the_skipped_user_and_not_after_they_left() {
        let local = LocalMembers::start(Metrics::new());
        let (lobby, other) = (RoomName::parse("lobby").unwrap(), RoomName::parse("other").unwrap());
        let alice = Rc::new(Counting { user: name("alice"), got: Cell::new(0) });
        let bob = Rc::new(Counting { user: name("bob"), got: Cell::new(0) });
        let (alice_session, bob_session) = (SessionId::random(), SessionId::random());
        local.add(&lobby, alice_session, alice.clone());
        local.add(&lobby, bob_session, bob.clone());
        local.add(&other, bob_session, bob.clone());
        let event = |room: &RoomName| RoomEvent {
            room: room.clone(),
            seq: 1,
            id: None,
            frame: ByteString::from_static("{}"),
            trace: None,
        };
        let addr = local.addr().addr;
        addr.send(Fanout { event: event(&lobby), skip_user: None }).await.unwrap();
        addr.send(Fanout { event: event(&lobby), skip_user: Some(name("alice")) }).await.unwrap();
        assert_eq!((alice.got.get(), bob.got.get()), (1, 2));
        local.remove(&lobby, bob_session);
        addr.send(Fanout { event: event(&lobby), skip_user: None }).await.unwrap();
        addr.send(Fanout { event: event(&other), skip_user: None }).await.unwrap();
        assert_eq!((alice.got.get(), bob.got.get()), (2, 3), "bob left the lobby but is still in the other room");
    }
}
