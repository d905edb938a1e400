//! The `Room` actor: a room's members on this node, and the fan-out of its events to them.
//!
//! An event is encoded once and sent once to each HTTP worker with members in the room
//! (`worker`), which hands it to them on their own thread.
//!
//! A traced message gets a `bus.deliver` span here, a child of its publish on whichever node
//! that was. Each receiving session records its own `ws.send` span under it while the room has
//! at most [`SEND_SPANS_PER_SESSION_UP_TO`] local members; a larger room records one `ws.send`
//! span for the whole fan-out, with the recipient count, so tracing stays cheap.

use std::{collections::HashMap, sync::Arc};

use super::{
    messages::RoomEvent,
    worker::{Fanout, WorkerAddr, WorkerId, WorkerRooms},
};
use crate::{
    domain::{Message, RoomName, SessionId, UserName, now_ms},
    engine::BusEvent,
    protocol::{ServerFrame, encode_message},
    telemetry::{
        Metrics,
        traces::{self, DELIVERY_TARGET},
    },
};
use actix::{Actor, Addr, Context, Handler};

/// Rooms with at most this many local members get a `ws.send` span per receiving session.
pub const SEND_SPANS_PER_SESSION_UP_TO: usize = 16;

/// One room's local members. Created and stopped by the registry.
pub struct Room {
    name: RoomName,
    node: Arc<str>,
    /// Each local member's worker.
    members: HashMap<SessionId, WorkerId>,
    /// The workers with members here, and how many each has.
    workers: HashMap<WorkerId, LocalWorker>,
    metrics: Metrics,
}

struct LocalWorker {
    addr: Addr<WorkerRooms>,
    members: usize,
}

impl Room {
    pub(super) fn new(name: RoomName, node: Arc<str>, metrics: Metrics) -> Self {
        Self { name, node, members: HashMap::new(), workers: HashMap::new(), metrics }
    }

    /// The `bus.deliver` span of a traced message; `None` when it carries no trace context.
    fn deliver_span(&self, message: &Message) -> Option<tracing::Span> {
        let parent = traces::remote_context(&message.trace)?;
        let span = tracing::info_span!(
            target: DELIVERY_TARGET,
            "bus.deliver",
            otel.kind = "consumer",
            messaging.operation.type = "process",
            messaging.destination.name = self.name.as_str(),
            rookery.node = &*self.node,
            rookery.room = self.name.as_str(),
            rookery.message_id = %message.id,
            rookery.local_members = self.members.len(),
            rookery.lag_ms = now_ms().saturating_sub(message.id.millis()),
        );
        traces::set_parent(&span, Some(parent));
        Some(span)
    }

    /// Sends `event` to every worker with members here; each delivers it to its own.
    fn fan_out(&self, event: RoomEvent, skip_user: Option<&UserName>) {
        for worker in self.workers.values() {
            worker.addr.do_send(Fanout { event: event.clone(), skip_user: skip_user.cloned() });
        }
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
    pub worker: WorkerAddr,
}

/// Registry -> room: a session left on this node.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(super) struct RemoveMember(pub SessionId);

impl Handler<AddMember> for Room {
    type Result = ();

    fn handle(&mut self, AddMember { session, worker }: AddMember, _: &mut Context<Self>) {
        // A rejoin adds a member that is already here.
        if self.members.insert(session, worker.id).is_none() {
            self.workers.entry(worker.id).or_insert(LocalWorker { addr: worker.addr, members: 0 }).members += 1;
        }
    }
}

impl Handler<RemoveMember> for Room {
    type Result = ();

    fn handle(&mut self, RemoveMember(session): RemoveMember, _: &mut Context<Self>) {
        let Some(worker) = self.members.remove(&session) else { return };
        if let Some(local) = self.workers.get_mut(&worker) {
            local.members -= 1;
            if local.members == 0 {
                self.workers.remove(&worker);
            }
        }
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
                let deliver = self.deliver_span(message);
                let _entered = deliver.as_ref().map(tracing::Span::enter);
                let per_session = self.members.len() <= SEND_SPANS_PER_SESSION_UP_TO;
                let trace = deliver.as_ref().filter(|_| per_session).map(traces::context);
                let one_send_span = deliver.as_ref().filter(|_| !per_session).map(|_| {
                    tracing::info_span!(target: DELIVERY_TARGET, "ws.send", otel.kind = "producer", rookery.recipients = self.members.len())
                });
                let _sending = one_send_span.as_ref().map(tracing::Span::enter);
                self.fan_out(RoomEvent { room: self.name.clone(), id: Some(message.id), frame, trace }, None);
            }
            // The user whose presence changed is not told about it: on join that is the
            // joining session; on leave the user has no session left in the room.
            BusEvent::Presence(change) => {
                let frame =
                    ServerFrame::Presence { room: &change.room, event: change.kind, user: &change.user }.encode();
                self.fan_out(RoomEvent { room: self.name.clone(), id: None, frame, trace: None }, Some(&change.user));
            }
            BusEvent::Gap { room, after } => {
                self.metrics.gaps.inc();
                let frame = ServerFrame::Gap { room, after: *after }.encode();
                self.fan_out(RoomEvent { room: self.name.clone(), id: None, frame, trace: None }, None);
            }
        }
    }
}
