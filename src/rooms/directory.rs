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
//! of the history), and it is where a catch-up starts.
//!
//! Every delivery is numbered (`seq`), and a join is told the number it came after. An event
//! sent before a member joined may still sit in its worker's mailbox when the member is added
//! there; the member's inbox drops it by its number, so a session gets exactly the events
//! delivered after it joined (what came before is in its join's reply and replay).

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{
    event,
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
    /// This node's id, for the delivery spans.
    node: Arc<str>,
    metrics: Metrics,
}

struct LocalRoom {
    /// The newest message id delivered to the room.
    delivered: std::sync::Mutex<MessageId>,
    /// Where `delivered` started: a time just before the room got its first local member.
    created: MessageId,
    /// The workers with members here, each with how many.
    workers: Vec<(WorkerAddr, usize)>,
    /// All local members (sessions) of the room.
    members: usize,
}

impl RoomDirectory {
    pub fn new(node: &str, metrics: Metrics) -> Self {
        Self { rooms: Arc::default(), deliveries: Arc::default(), node: Arc::from(node), metrics }
    }

    /// Adds a member on `worker` to `room`; the room's events reach that worker from now on.
    /// Returns the number of deliveries so far: the member takes only events numbered above it.
    pub fn join(&self, room: &RoomName, worker: &WorkerAddr) -> u64 {
        let mut rooms = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        let local = rooms.entry(room.clone()).or_insert_with(|| {
            self.metrics.rooms.inc();
            let created = MessageId::new(now_ms().saturating_sub(CREATION_MARGIN_MS), 0);
            LocalRoom { delivered: std::sync::Mutex::new(created), created, workers: Vec::new(), members: 0 }
        });
        local.members += 1;
        match local.workers.iter_mut().find(|(known, _)| known.id == worker.id) {
            Some((_, members)) => *members += 1,
            None => local.workers.push((worker.clone(), 1)),
        }
        self.deliveries.load(Ordering::Acquire)
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
}

impl Delivery for RoomDirectory {
    fn deliver(&self, event: BusEvent) {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        let Some(room) = rooms.get(event.room()) else {
            self.metrics.bus_event("no_local_members");
            return;
        };
        match &event {
            BusEvent::Message(message) => {
                let mut delivered = room.delivered.lock().unwrap_or_else(|p| p.into_inner());
                if message.id <= *delivered {
                    self.metrics.bus_event("duplicate");
                    return;
                }
                *delivered = message.id;
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

    fn catch_up_positions(&self) -> Vec<CatchUpFrom> {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        rooms
            .iter()
            .map(|(name, room)| {
                let after = *room.delivered.lock().unwrap_or_else(|p| p.into_inner());
                CatchUpFrom { room: name.clone(), after, delivered: after != room.created }
            })
            .collect()
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
