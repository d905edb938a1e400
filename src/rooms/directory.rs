//! The room directory: the node's one record of which rooms have members here, on which worker
//! threads; the engine's [`Delivery`].
//!
//! Sessions join and leave through it on their own thread (after adding themselves to their
//! worker's [`LocalMembers`](super::LocalMembers), and after removing themselves); the engine
//! delivers every event through it from whatever thread it reads on. An event is encoded once
//! (`event`) and sent once to each worker thread with members in the room, whose
//! [`WorkerRooms`](super::worker) hands it to them: no actor of its own per room, so a delivery
//! costs one hop to the members' thread. An event for a room with no local members is dropped
//! right here. Per room it keeps the newest message id delivered: a message at or below it is
//! dropped (a cluster engine may deliver an entry twice, from its inbox and from a catch-up read
//! of the history), and it is where a catch-up starts. Per room it also keeps the room's event
//! numbering ([`EventOrder`]): the Redis engine delivers a room's numbered events from the bus
//! and from this node's publishes, on different threads, and the room's lock hands them on in
//! number order; the rooms whose events wait too long are listed for the engine to catch up.
//!
//! Every delivery is numbered (`seq`), and a join is told the number it came after. An event
//! sent before a member joined may still sit in its worker's mailbox when the member is added
//! there; the member's inbox drops it by its number, so a session gets exactly the events
//! delivered after it joined (what came before is in its join's reply and replay).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use super::{
    event,
    order::{EventOrder, JoinPoint},
    waiting::WaitingRooms,
    worker::{Fanout, WorkerAddr},
};
use crate::{
    domain::{MessageId, RoomName, now_ms},
    engine::{BusEvent, CatchUpFrom, Delivery},
    telemetry::Metrics,
};

/// How far before a room's creation a catch-up looks when the room has had no message yet:
/// covers clock skew between this node and Redis. Sessions drop what they already have.
const CREATION_MARGIN_MS: u64 = 5_000;

/// Shared map from room name to the room's local members, by worker thread.
#[derive(Clone)]
pub struct RoomDirectory {
    rooms: Arc<RwLock<HashMap<RoomName, LocalRoom>>>,
    /// Deliveries so far, over all rooms: numbered under the map's read lock, read under its
    /// write lock by a join, so every event is plainly before or after each join.
    deliveries: Arc<AtomicU64>,
    /// Rooms where events wait for a lower number (see `order`), or asked to be checked.
    waiting: Arc<WaitingRooms>,
    /// This node's id, for the delivery spans.
    node: Arc<str>,
    metrics: Metrics,
}

struct LocalRoom {
    /// What was delivered, and what waits; locked while an event is handed on, so the room's
    /// events leave in one order whichever thread delivers them.
    state: Mutex<RoomState>,
    /// Where `delivered` started: a time just before the room got its first local member.
    created: MessageId,
    /// The workers with members here, each with how many.
    workers: Vec<(WorkerAddr, usize)>,
    /// All local members (sessions) of the room.
    members: usize,
}

struct RoomState {
    /// The newest message id delivered to the room.
    delivered: MessageId,
    order: EventOrder,
}

impl RoomDirectory {
    pub fn new(node: &str, metrics: Metrics) -> Self {
        Self {
            rooms: Arc::default(),
            deliveries: Arc::default(),
            waiting: Arc::default(),
            node: Arc::from(node),
            metrics,
        }
    }

    /// Adds a member on `worker` to `room`; the room's events reach that worker from now on.
    /// Returns the number of deliveries so far: the member takes only events numbered above it.
    /// The member's engine join is to be reported with [`Self::joined`].
    pub fn join(&self, room: &RoomName, worker: &WorkerAddr) -> u64 {
        let mut rooms = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        let local = match rooms.entry(room.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => {
                let local = entry.into_mut();
                local.state.get_mut().unwrap_or_else(|p| p.into_inner()).order.another_join();
                local
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                self.metrics.rooms.inc();
                let created = MessageId::new(now_ms().saturating_sub(CREATION_MARGIN_MS), 0);
                let state = RoomState { delivered: created, order: EventOrder::joining() };
                entry.insert(LocalRoom { state: Mutex::new(state), created, workers: Vec::new(), members: 0 })
            }
        };
        local.members += 1;
        match local.workers.iter_mut().find(|(known, _)| known.id == worker.id) {
            Some((_, members)) => *members += 1,
            None => local.workers.push((worker.clone(), 1)),
        }
        self.deliveries.load(Ordering::Acquire)
    }

    /// A member's engine join was answered with where the room stood (`None`: the join failed,
    /// or the engine does not number events).
    pub fn joined(&self, room: &RoomName, point: Option<JoinPoint>) {
        self.in_order(room, |state| state.order.joined(point, &mut state.delivered));
    }

    /// Removes a member on `worker` from `room`; the room goes with its last local member.
    pub fn leave(&self, room: &RoomName, worker: &WorkerAddr) {
        let mut rooms = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        let Some(local) = rooms.get_mut(room) else { return };
        let Some(index) = local.workers.iter().position(|(known, _)| known.id == worker.id) else { return };
        local.members -= 1;
        local.workers[index].1 -= 1;
        if local.workers[index].1 == 0 {
            local.workers.swap_remove(index);
        }
        if local.members == 0 {
            rooms.remove(room);
            self.metrics.rooms.dec();
        }
    }

    /// How many rooms have local members.
    pub fn len(&self) -> usize {
        self.rooms.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `step` on the state of `room`, if it has local members (returns whether it has).
    fn in_order<I: IntoIterator<Item = BusEvent>>(
        &self,
        room: &RoomName,
        step: impl FnOnce(&mut RoomState) -> I,
    ) -> bool {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        let Some(local) = rooms.get(room) else { return false };
        self.step(room, local, step);
        true
    }

    /// Hands `event` to its room in order; false when the room has no local members. The room
    /// is looked up by the event's own name: nothing is copied per event.
    fn deliver_in_order<I: IntoIterator<Item = BusEvent>>(
        &self,
        event: BusEvent,
        step: impl FnOnce(&mut RoomState, &RoomName, BusEvent) -> I,
    ) -> bool {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        let Some((room, local)) = rooms.get_key_value(event.room()) else { return false };
        self.step(room, local, |state| step(state, room, event));
        true
    }

    /// Runs `step` on the room's state and hands on what it returns, in order; lists the room
    /// when its events start waiting anew (see `waiting`), or when they crowd.
    fn step<I: IntoIterator<Item = BusEvent>>(
        &self,
        room: &RoomName,
        local: &LocalRoom,
        step: impl FnOnce(&mut RoomState) -> I,
    ) {
        let mut state = local.state.lock().unwrap_or_else(|p| p.into_inner());
        let (waited, crowded) = (state.order.waiting_since(), state.order.is_crowded());
        for event in step(&mut state) {
            self.hand_on(local, &mut state, event);
        }
        if let Some(since) = state.order.waiting_since()
            && (waited != Some(since) || state.order.is_crowded() != crowded)
        {
            self.waiting.wait(room, since, state.order.is_crowded());
        }
    }

    /// Encodes the event once and sends it to each worker with members in the room; a message
    /// at or below the newest delivered is dropped.
    fn hand_on(&self, room: &LocalRoom, state: &mut RoomState, event: BusEvent) {
        match &event {
            BusEvent::Message(message) => {
                if message.id <= state.delivered {
                    self.metrics.bus_event("duplicate");
                    return;
                }
                state.delivered = message.id;
            }
            BusEvent::Gap { .. } => {
                self.metrics.gaps.inc();
            }
            BusEvent::Presence(_) => {}
        }
        self.metrics.bus_event("delivered");
        let seq = self.deliveries.fetch_add(1, Ordering::AcqRel) + 1;
        let outgoing = event::outgoing(&event, seq, &self.node, room.members);
        let _entered: Vec<_> = outgoing.spans.iter().map(tracing::Span::enter).collect();
        for (worker, _) in &room.workers {
            worker.addr.do_send(Fanout { event: outgoing.event.clone(), skip_user: outgoing.skip_user.clone() });
        }
    }

    fn position(name: &RoomName, room: &LocalRoom) -> CatchUpFrom {
        let after = room.state.lock().unwrap_or_else(|p| p.into_inner()).delivered;
        CatchUpFrom { room: name.clone(), after, delivered: after != room.created }
    }
}

impl Delivery for RoomDirectory {
    fn deliver(&self, event: BusEvent) {
        if !self.deliver_in_order(event, |_, _, event| Some(event)) {
            self.metrics.bus_event("no_local_members");
        }
    }

    fn deliver_numbered(&self, seq: u64, event: BusEvent) {
        let found = self.deliver_in_order(event, |state, room, event| {
            let seen = matches!(&event, BusEvent::Message(message) if message.id <= state.delivered);
            if !state.order.is_full() {
                return state.order.admit(seq, event, seen);
            }
            // The room's events came faster than a catch-up could fill what they wait for: the
            // members hear of the loss, and the room goes on.
            let mut ready = vec![BusEvent::Gap { room: room.clone(), after: Some(state.delivered) }];
            ready.extend(state.order.give_up());
            ready.extend(state.order.admit(seq, event, seen));
            ready
        });
        if !found {
            self.metrics.bus_event("no_local_members");
        }
    }

    fn renumbered(&self) {
        let rooms: Vec<RoomName> = self.rooms.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for room in rooms {
            self.in_order(&room, |state| state.order.restart());
        }
    }

    fn overdue(&self, before: Instant) -> Vec<CatchUpFrom> {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        let still_waits = |name: &RoomName| {
            let room = rooms.get(name)?;
            let waits = room.state.lock().unwrap_or_else(|p| p.into_inner()).order.waiting_since();
            Some((Self::position(name, room), waits))
        };
        self.waiting.take_overdue(before, still_waits)
    }

    /// What still waits after the catch-up waits anew, and the room is listed again (it was
    /// taken off the list for the catch-up).
    fn caught_up(&self, room: &RoomName, seq: u64) {
        self.in_order(room, |state| state.order.caught_up(seq));
    }

    fn check_soon(&self, room: &RoomName) {
        if self.rooms.read().unwrap_or_else(|p| p.into_inner()).contains_key(room) {
            self.waiting.check_soon(room);
        }
    }

    fn catch_up_positions(&self) -> Vec<CatchUpFrom> {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        rooms.iter().map(|(name, room)| Self::position(name, room)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::Cell, rc::Rc, sync::Arc};

    use super::*;
    use crate::{
        domain::{Message, SessionId},
        rooms::{
            LocalMembers,
            worker::tests::{Counting, name},
        },
    };

    /// A message with id `<base>-<seq>`: one millisecond for all, so `seq` alone orders them.
    fn message(room: &RoomName, base: u64, seq: u64) -> BusEvent {
        let id = MessageId::new(base, seq);
        BusEvent::Message(Arc::new(Message {
            room: room.clone(),
            id,
            user: name("bob"),
            body: "hi".into(),
            trace: String::new(),
        }))
    }

    /// Lets the worker's actor handle what was sent to it.
    async fn settle() {
        for _ in 0..10 {
            actix_web::rt::task::yield_now().await;
        }
    }

    /// A directory with alice, on this thread's worker, joining `room` (her join unanswered).
    /// Bind `_local`: the worker goes with it.
    struct OneMember {
        metrics: Metrics,
        directory: RoomDirectory,
        room: RoomName,
        alice: Rc<Counting>,
        _local: LocalMembers,
    }

    fn one_member(room: &str) -> OneMember {
        let metrics = Metrics::new();
        let directory = RoomDirectory::new("node", metrics.clone());
        let local = LocalMembers::start(metrics.clone());
        let room = RoomName::parse(room).unwrap_or_else(|_| unreachable!("a valid name"));
        let alice = Rc::new(Counting { user: name("alice"), got: Cell::new(0) });
        local.add(&room, SessionId::random(), alice.clone());
        directory.join(&room, &local.addr());
        OneMember { metrics, directory, room, alice, _local: local }
    }

    #[actix_web::test]
    async fn a_message_from_before_the_rooms_first_join_read_late_is_not_new() {
        let OneMember { directory, room, alice, _local, .. } = one_member("late");
        let base = now_ms();
        // The join was told number 5, when message 5 was the room's newest; the node was still
        // listed from an earlier member, so message 4 is still on its way from the inbox.
        directory.joined(&room, Some(JoinPoint { seq: 5, newest: Some(MessageId::new(base, 5)) }));
        directory.deliver_numbered(4, message(&room, base, 4));
        directory.deliver_numbered(6, message(&room, base, 6));
        directory.deliver_numbered(7, message(&room, base, 7));
        settle().await;
        assert_eq!(alice.got.get(), 2, "6 and 7 at once; 4 was from before the join");
    }

    #[actix_web::test]
    async fn a_room_full_of_events_waiting_for_a_number_is_crowded_then_gives_up_after_a_gap() {
        let OneMember { metrics, directory, room, alice, _local } = one_member("busy");
        directory.joined(&room, Some(JoinPoint { seq: 0, newest: None }));
        let base = now_ms();
        let full = super::super::order::FULL as u64;
        let before_waiting = Instant::now();
        // Number 1 never comes.
        for n in 2..=full + 1 {
            directory.deliver_numbered(n, message(&room, base, n));
        }
        settle().await;
        assert_eq!(alice.got.get(), 0, "everything waits for number 1");
        let overdue = directory.overdue(before_waiting);
        assert_eq!(overdue.len(), 1, "crowded: caught up without waiting out the time");
        directory.deliver_numbered(full + 2, message(&room, base, full + 2));
        for _ in 0..1000 {
            if alice.got.get() == full as usize + 2 {
                break;
            }
            actix_web::rt::task::yield_now().await;
        }
        assert_eq!(alice.got.get(), full as usize + 2, "a gap, then every event in order");
        assert_eq!(metrics.gaps.get(), 1);
    }

    #[actix_web::test]
    async fn delivers_each_message_once_to_the_rooms_workers_until_the_last_member_leaves() {
        let metrics = Metrics::new();
        let directory = RoomDirectory::new("node", metrics.clone());
        let local = LocalMembers::start(metrics);
        let room = RoomName::parse("lobby").unwrap_or_else(|_| unreachable!("a valid name"));
        let alice = Rc::new(Counting { user: name("alice"), got: Cell::new(0) });
        let (first, second) = (SessionId::random(), SessionId::random());
        local.add(&room, first, alice.clone());
        directory.join(&room, &local.addr());
        local.add(&room, second, alice.clone());
        directory.join(&room, &local.addr());
        let base = now_ms();
        directory.deliver(message(&room, base, 2));
        directory.deliver(message(&room, base, 1));
        directory.deliver(message(&room, base, 2));
        settle().await;
        assert_eq!(alice.got.get(), 2, "one message, once per session: the older and repeated ids were dropped");

        local.remove(&room, first);
        directory.leave(&room, &local.addr());
        assert_eq!(directory.len(), 1, "one member is left");
        local.remove(&room, second);
        directory.leave(&room, &local.addr());
        assert!(directory.is_empty(), "the room went with its last member");
        directory.deliver(message(&room, base, 3));
        settle().await;
        assert_eq!(alice.got.get(), 2);
    }
}
