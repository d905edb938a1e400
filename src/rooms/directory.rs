//! The room directory: which rooms have an actor on this node. The engine's [`Delivery`].
//!
//! Only the registry writes it; the engine reads it for every event, from whatever thread it
//! delivers on. An event for a room with no local members is dropped right here.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use actix::Addr;

use super::Room;
use crate::{
    domain::RoomName,
    engine::{BusEvent, Delivery},
};

/// Shared map from room name to the room's actor on this node.
#[derive(Clone, Default)]
pub struct RoomDirectory {
    rooms: Arc<RwLock<HashMap<RoomName, Addr<Room>>>>,
}

impl RoomDirectory {
    pub(super) fn insert(&self, room: RoomName, addr: Addr<Room>) {
        self.rooms.write().unwrap_or_else(|p| p.into_inner()).insert(room, addr);
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
        if let Some(room) = rooms.get(event.room()) {
            room.do_send(event);
        }
    }
}
