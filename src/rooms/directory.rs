//! The room directory: which rooms have an actor on this node. The engine's [`Delivery`].
//!
//! Only the registry adds and removes rooms; the engine reads the directory for every event,
//! from whatever thread it delivers on. An event for a room with no local members is dropped
//! right here. Per room it keeps the newest message id handed to the room: a message at or
//! below it is dropped (a cluster engine may deliver an entry twice, from the bus and from a
//! catch-up read of the history), and it is where a catch-up starts.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use actix::Addr;

use super::Room;
use crate::{
    domain::{MessageId, RoomName, now_ms},
    engine::{BusEvent, Delivery},
    telemetry::Metrics,
};

/// How far before a room's creation a catch-up looks when the room has had no message yet:
/// covers clock skew between this node and Redis. Sessions drop what they already have.
const CREATION_MARGIN_MS: u64 = 5_000;

/// Shared map from room name to the room's actor on this node.
#[derive(Clone)]
pub struct RoomDirectory {
    rooms: Arc<RwLock<HashMap<RoomName, LocalRoom>>>,
    metrics: Metrics,
}

struct LocalRoom {
    addr: Addr<Room>,
    /// The newest message id delivered to the room.
    delivered: Mutex<MessageId>,
}

impl RoomDirectory {
    pub fn new(metrics: Metrics) -> Self {
        Self { rooms: Arc::default(), metrics }
    }

    pub(super) fn insert(&self, room: RoomName, addr: Addr<Room>) {
        let start = MessageId::new(now_ms().saturating_sub(CREATION_MARGIN_MS), 0);
        let local = LocalRoom { addr, delivered: Mutex::new(start) };
        self.rooms.write().unwrap_or_else(|p| p.into_inner()).insert(room, local);
    }

    pub(super) fn remove(&self, room: &RoomName) {
        self.rooms.write().unwrap_or_else(|p| p.into_inner()).remove(room);
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
        if let BusEvent::Message(message) = &event {
            let mut delivered = room.delivered.lock().unwrap_or_else(|p| p.into_inner());
            if message.id <= *delivered {
                self.metrics.bus_event("duplicate");
                return;
            }
            *delivered = message.id;
        }
        self.metrics.bus_event("delivered");
        room.addr.do_send(event);
    }

    fn catch_up_positions(&self) -> Vec<(RoomName, MessageId)> {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        rooms
            .iter()
            .map(|(name, room)| (name.clone(), *room.delivered.lock().unwrap_or_else(|p| p.into_inner())))
            .collect()
    }
}
