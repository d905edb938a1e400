//! The `Registry` actor: the one place that creates and stops room actors on this node.
//!
//! Joins and leaves are serialized here, so a room is stopped only when its last local member
//! has left and a join never lands in a room that is going away.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use actix::{Actor, Addr, Context, Handler};

use super::{
    RoomDirectory,
    messages::{JoinRoom, LeaveRoom},
    room::{AddMember, RemoveMember, Room},
};
use crate::{
    domain::{RoomName, SessionId},
    telemetry::Metrics,
};

/// Tracks the local members of every room with an actor on this node.
pub struct Registry {
    rooms: HashMap<RoomName, LocalRoom>,
    directory: RoomDirectory,
    /// This node's id, for the rooms' spans.
    node: Arc<str>,
    metrics: Metrics,
}

struct LocalRoom {
    addr: Addr<Room>,
    sessions: HashSet<SessionId>,
}

impl Registry {
    pub fn new(directory: RoomDirectory, node: &str, metrics: Metrics) -> Self {
        Self { rooms: HashMap::new(), directory, node: Arc::from(node), metrics }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<JoinRoom> for Registry {
    type Result = ();

    fn handle(&mut self, join: JoinRoom, _: &mut Context<Self>) {
        let local = self.rooms.entry(join.room.clone()).or_insert_with(|| {
            let addr = Room::new(join.room.clone(), self.node.clone(), self.metrics.clone()).start();
            self.directory.insert(join.room.clone(), addr.clone());
            LocalRoom { addr, sessions: HashSet::new() }
        });
        local.sessions.insert(join.session);
        local.addr.do_send(AddMember { session: join.session, worker: join.worker });
    }
}

impl Handler<LeaveRoom> for Registry {
    type Result = ();

    fn handle(&mut self, leave: LeaveRoom, _: &mut Context<Self>) {
        let Some(local) = self.rooms.get_mut(&leave.room) else { return };
        local.sessions.remove(&leave.session);
        local.addr.do_send(RemoveMember(leave.session));
        if local.sessions.is_empty() {
            // Dropping the room's last address stops it once its mailbox is drained.
            self.directory.remove(&leave.room);
            self.rooms.remove(&leave.room);
        }
    }
}
