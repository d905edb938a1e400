//! The `Room` actor: a room's members on this node, and the fan-out of its events to them.

use std::collections::HashMap;

use actix::{Actor, Context, Handler, Recipient};

use super::messages::RoomEvent;
use crate::{
    domain::{RoomName, SessionId, UserName},
    engine::BusEvent,
    protocol::{ServerFrame, encode_message},
    telemetry::Metrics,
};

/// One room's local members. Created and stopped by the registry.
pub struct Room {
    name: RoomName,
    members: HashMap<SessionId, Member>,
    metrics: Metrics,
}

struct Member {
    user: UserName,
    recipient: Recipient<RoomEvent>,
}

impl Room {
    pub(super) fn new(name: RoomName, metrics: Metrics) -> Self {
        Self { name, members: HashMap::new(), metrics }
    }

    fn fan_out(&self, event: &RoomEvent, skip_user: Option<&UserName>) {
        let mut sent = 0u64;
        for member in self.members.values() {
            if skip_user != Some(&member.user) {
                member.recipient.do_send(event.clone());
                sent += 1;
            }
        }
        self.metrics.deliveries.inc_by(sent);
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.metrics.rooms.inc();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.metrics.rooms.dec();
    }
}

/// Registry -> room: a session joined on this node.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(super) struct AddMember {
    pub session: SessionId,
    pub user: UserName,
    pub recipient: Recipient<RoomEvent>,
}

/// Registry -> room: a session left on this node.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(super) struct RemoveMember(pub SessionId);

impl Handler<AddMember> for Room {
    type Result = ();

    fn handle(&mut self, add: AddMember, _: &mut Context<Self>) {
        self.members.insert(add.session, Member { user: add.user, recipient: add.recipient });
    }
}

impl Handler<RemoveMember> for Room {
    type Result = ();

    fn handle(&mut self, RemoveMember(session): RemoveMember, _: &mut Context<Self>) {
        self.members.remove(&session);
    }
}

impl actix::Message for BusEvent {
    type Result = ();
}

impl Handler<BusEvent> for Room {
    type Result = ();

    fn handle(&mut self, event: BusEvent, _: &mut Context<Self>) {
        match &event {
            BusEvent::Message(message) => {
                let frame = encode_message(message);
                self.fan_out(&RoomEvent { room: self.name.clone(), id: Some(message.id), frame }, None);
            }
            // The user whose presence changed is not told about it: on join that is the
            // joining session; on leave the user has no session left in the room.
            BusEvent::Presence(change) => {
                let frame = ServerFrame::Presence {
                    room: &change.room,
                    event: change.kind,
                    user: &change.user,
                }
                .encode();
                self.fan_out(&RoomEvent { room: self.name.clone(), id: None, frame }, Some(&change.user));
            }
            BusEvent::Gap { room, after } => {
                self.metrics.gaps.inc();
                let frame = ServerFrame::Gap { room, after: *after }.encode();
                self.fan_out(&RoomEvent { room: self.name.clone(), id: None, frame }, None);
            }
        }
    }
}
