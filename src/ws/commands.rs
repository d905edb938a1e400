//! The client commands of a chat session: join, leave, send, history, ping.
//!
//! Each command checks what it can on the actor, then runs its engine calls as a future whose
//! result comes back to the actor; the reader waits for that before reading the next frame, so a
//! session's commands run one at a time, in order, while room events keep flowing to it.
//!
//! Commands run inside the frame's `ws.receive` span; each engine call gets a span of its own
//! (`room.publish`, `room.join`, `presence.leave`, `room.history`).

use std::{collections::VecDeque, sync::Arc, time::Duration};

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use tracing::{Instrument, field::Empty};

use super::{
    inbox::Membership,
    replay::{self, Replay},
    session::{Reply, Session, done},
};
use crate::{
    domain::{MessageId, RoomName, RoomPresence, SessionId, UserName},
    engine::{Engine, EngineError, NewMessage, Recovery},
    protocol::{ClientFrame, ErrorCode, HistoryQuery, MessageList, Request, ServerFrame, encode_message},
    rooms::JoinPoint,
    telemetry::{Metrics, traces},
};

/// The pauses before each attempt to undo the presence of a join that failed after its presence
/// change may have gone through. One failed leave would leave a ghost member listed in the room
/// for as long as the session lasts; a blip of the store passes within these.
const UNDO_JOIN_PAUSES: [Duration; 3] = [Duration::ZERO, Duration::from_millis(200), Duration::from_secs(1)];

/// Undoes a failed join's presence, retrying; when every attempt fails, counts it and says so.
async fn undo_join(engine: Arc<dyn Engine>, metrics: Metrics, room: RoomName, user: UserName, session: SessionId) {
    let mut last_error = None;
    for pause in UNDO_JOIN_PAUSES {
        tokio::time::sleep(pause).await;
        match engine.leave(&room, &user, session).await {
            Ok(()) => return,
            Err(error) => last_error = Some(error),
        }
    }
    metrics.presence_undo_failures.inc();
    if let Some(error) = last_error {
        tracing::warn!(
            %session, %room, %user, %error,
            "a failed join's presence could not be undone; the user may stay listed in the room"
        );
    }
}

/// The span of one engine call made for a command (a child of the current `ws.receive`).
fn engine_span(name: &'static str, engine: &'static str, room: &RoomName) -> tracing::Span {
    let span = tracing::info_span!(
        "engine",
        otel.name = name,
        otel.kind = "client",
        otel.status_code = Empty,
        db.system = Empty,
        rookery.engine = engine,
        rookery.room = room.as_str(),
        rookery.message_id = Empty,
        rookery.replayed = Empty,
    );
    if engine == "redis" {
        span.record("db.system", "redis");
    }
    span
}

/// Marks `span` failed when `result` is an error.
fn record_outcome<T>(span: &tracing::Span, result: &Result<T, EngineError>) {
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
}

impl Session {
    pub(super) fn run(&mut self, request: Request, ctx: &mut Context<Self>) -> Reply {
        let reference = request.reference;
        match request.frame {
            ClientFrame::Ping => {
                let pong = ServerFrame::Pong { reference: reference.as_deref() }.encode();
                self.write(pong, ctx);
                done()
            }
            ClientFrame::Join { room, since } => self.join(reference, room, since, ctx),
            ClientFrame::Leave { room } => self.leave(reference, room, ctx),
            ClientFrame::Send { room, body, key } => self.send(reference, room, body, key, ctx),
            ClientFrame::History { room, query } => self.history(reference, room, query, ctx),
        }
    }

    /// Answers a failed engine call; the command had no effect.
    fn engine_failed(&mut self, ctx: &mut Context<Self>, reference: Option<&str>, error: &EngineError) {
        tracing::warn!(session = %self.id, %error, "engine call failed");
        self.error(ctx, reference, ErrorCode::from(error), error.client_message());
    }

    /// Join: register with the local room first, so no live event can be missed, then add
    /// presence and read what to replay. Live events arriving meanwhile are held back and
    /// written after the replay and the `joined` reply.
    fn join(
        &mut self,
        reference: Option<String>,
        room: RoomName,
        since: Option<MessageId>,
        ctx: &mut Context<Self>,
    ) -> Reply {
        if !self.identity.rooms.allows(&room) {
            self.error(ctx, reference.as_deref(), ErrorCode::Forbidden, "your credentials do not allow this room");
            return done();
        }
        let (rejoin, joined_rooms) = {
            let rooms = self.inbox.rooms();
            (rooms.contains_key(&room), rooms.len())
        };
        if !rejoin && joined_rooms >= self.node.settings.max_rooms_per_session {
            self.error(
                ctx,
                reference.as_deref(),
                ErrorCode::RoomLimit,
                "this session is in as many rooms as it may be",
            );
            return done();
        }
        if !rejoin {
            // Before the engine's join: what it delivers after the presence change reaches the
            // inbox (held there until the replay is written). Nothing is delivered to the inbox
            // between these two lines: both run on this thread, as the worker's fan-out does.
            let joined_at = self.join_locally(&room);
            let membership = Membership { joined_at, last_delivered: None, held: Some(Vec::new()), unanswered: true };
            self.inbox.rooms().insert(room.clone(), membership);
        }
        let (engine, user, session) = (self.node.engine.clone(), self.identity.user.clone(), self.id);
        let target = room.clone();
        let work = async move {
            let span = engine_span("room.join", engine.kind(), &target);
            let joined = engine.join_and_recover(&target, &user, session, since).instrument(span.clone()).await;
            record_outcome(&span, &joined);
            if let Ok((_, recovery)) = &joined {
                span.record("rookery.replayed", recovery.messages.len());
            }
            joined
        }
        .in_current_span();
        Box::pin(work.into_actor(self).map(move |result, act, ctx| {
            if !rejoin {
                // Where the room's numbered events start for this node (see `rooms::order`).
                let point = result.as_ref().ok().and_then(|(presence, recovery)| {
                    presence.seq.map(|seq| JoinPoint { seq, newest: recovery.last_id })
                });
                act.node.directory.joined(&room, point);
                if let Some(membership) = act.inbox.rooms().get_mut(&room) {
                    membership.unanswered = false;
                }
            }
            act.joined(ctx, reference, room, since, rejoin, result);
        }))
    }

    /// The engine's answer to a join: the replay and the reply, or the error and the undoing.
    fn joined(
        &mut self,
        ctx: &mut Context<Self>,
        reference: Option<String>,
        room: RoomName,
        since: Option<MessageId>,
        rejoin: bool,
        result: Result<(RoomPresence, Recovery), EngineError>,
    ) {
        match result {
            Ok((presence, recovery)) => self.finish_join(ctx, reference.as_deref(), room, since, &presence, recovery),
            Err(error) => {
                if !rejoin {
                    self.inbox.rooms().remove(&room);
                    self.leave_locally(&room);
                    // Undo a presence join that may have gone through before the failure.
                    let (engine, metrics) = (self.node.engine.clone(), self.node.metrics.clone());
                    actix_web::rt::spawn(undo_join(engine, metrics, room, self.identity.user.clone(), self.id));
                }
                self.engine_failed(ctx, reference.as_deref(), &error);
            }
        }
    }

    /// Queues the replay and the `joined` reply to be written as the outbound queue drains
    /// (`replay`); the room's live events stay held until they are.
    fn finish_join(
        &mut self,
        ctx: &mut Context<Self>,
        reference: Option<&str>,
        room: RoomName,
        since: Option<MessageId>,
        presence: &RoomPresence,
        recovery: Recovery,
    ) {
        let Some(mut last) = self.inbox.rooms().get_mut(&room).map(|membership| {
            // A rejoin's live events are held too, so they come after its replay.
            membership.held.get_or_insert_with(Vec::new);
            membership.last_delivered
        }) else {
            return;
        };
        let mut frames = VecDeque::new();
        for message in &recovery.messages {
            if Some(message.id) > last {
                frames.push_back(encode_message(message));
                last = Some(message.id);
            }
        }
        self.inbox.count_received(frames.len() as u64);
        frames.push_back(
            ServerFrame::Joined {
                reference,
                room: &room,
                members: presence.members.as_deref().unwrap_or_default(),
                member_count: presence.user_count,
                presence: presence.members.is_some(),
                last_id: recovery.last_id,
                recovered: since.map(|_| recovery.recovered),
            }
            .encode(),
        );
        // The join point: anything up to the room's last id was replayed or predates the join.
        self.replays.push(Replay { room, frames, join_point: last.max(recovery.last_id) });
        self.write_replays(ctx);
    }

    /// Writes waiting replays while the queue has room for them, then each room's held events;
    /// looks again shortly when the queue is too full.
    pub(super) fn write_replays(&mut self, ctx: &mut Context<Self>) {
        let outbound = self.connection.outbound_sender();
        while let Some(replay) = self.replays.front_mut() {
            while let Some(frame) = replay.frames.front() {
                if outbound.is_closed() {
                    return;
                }
                if !outbound.fits_within_share(frame.len(), replay::QUEUE_SHARE) {
                    if !self.replays.scheduled {
                        self.replays.scheduled = true;
                        ctx.run_later(replay::RETRY, |act, ctx| {
                            act.replays.scheduled = false;
                            act.write_replays(ctx);
                        });
                    }
                    return;
                }
                let Some(frame) = replay.frames.pop_front() else { break };
                if self.connection.send(frame, ctx).is_err() {
                    return;
                }
            }
            if let Some(Replay { room, join_point, .. }) = self.replays.pop_front()
                && !self.replays.pending(&room)
            {
                self.release_held(&room, join_point, ctx);
            }
        }
    }

    /// The room's replay is written: its held live events follow, but those it already covered.
    fn release_held(&mut self, room: &RoomName, join_point: Option<MessageId>, ctx: &mut Context<Self>) {
        let frames = {
            let mut rooms = self.inbox.rooms();
            let Some(membership) = rooms.get_mut(room) else { return };
            let mut last = join_point.max(membership.last_delivered);
            let mut frames = Vec::new();
            for event in membership.held.take().into_iter().flatten() {
                match event.id {
                    Some(id) if Some(id) <= last => continue,
                    Some(id) => last = Some(id),
                    None => {}
                }
                frames.push(event.frame);
            }
            membership.last_delivered = last;
            frames
        };
        for frame in frames {
            if self.connection.send(frame, ctx).is_err() {
                return;
            }
        }
    }

    fn leave(&mut self, reference: Option<String>, room: RoomName, ctx: &mut Context<Self>) -> Reply {
        if self.inbox.rooms().remove(&room).is_none() {
            self.error(ctx, reference.as_deref(), ErrorCode::NotJoined, "you are not in this room");
            return done();
        }
        self.replays.forget(&room);
        self.leave_locally(&room);
        let (engine, user, session) = (self.node.engine.clone(), self.identity.user.clone(), self.id);
        let target = room.clone();
        let work = async move {
            let span = engine_span("presence.leave", engine.kind(), &target);
            let left = engine.leave(&target, &user, session).instrument(span.clone()).await;
            record_outcome(&span, &left);
            left
        }
        .in_current_span();
        Box::pin(work.into_actor(self).map(move |result, act, ctx| {
            if let Err(error) = result {
                // The session has left locally either way; presence catches up when the
                // engine does (the cluster engine expires stale sessions).
                tracing::warn!(session = %act.id, %room, %error, "presence leave failed");
            }
            let left = ServerFrame::Left { reference: reference.as_deref(), room: &room }.encode();
            act.write(left, ctx);
        }))
    }

    fn send(
        &mut self,
        reference: Option<String>,
        room: RoomName,
        body: String,
        key: Option<String>,
        ctx: &mut Context<Self>,
    ) -> Reply {
        let reference_str = reference.as_deref();
        if !self.inbox.rooms().contains_key(&room) {
            self.error(ctx, reference_str, ErrorCode::NotJoined, "join the room before sending to it");
            return done();
        }
        if body.len() > self.node.settings.max_body_bytes {
            self.error(ctx, reference_str, ErrorCode::TooLarge, "the body is over max_body_bytes");
            return done();
        }
        if !self.bucket.try_take() {
            self.error(ctx, reference_str, ErrorCode::RateLimited, "too many messages; slow down");
            return done();
        }
        let engine = self.node.engine.clone();
        let (target, user) = (room.clone(), self.identity.user.clone());
        let work = async move {
            // The publish span's context goes into the message, so every node's delivery
            // becomes its child.
            let span = engine_span("room.publish", engine.kind(), &target);
            span.record("otel.kind", "producer");
            let message = NewMessage { trace: traces::traceparent(&span), room: target, user, body, key };
            let published = engine.publish(message).instrument(span.clone()).await;
            record_outcome(&span, &published);
            if let Ok(id) = &published {
                span.record("rookery.message_id", tracing::field::display(id));
            }
            published
        }
        .in_current_span();
        Box::pin(work.into_actor(self).map(move |result, act, ctx| match result {
            Ok(id) => {
                act.trace.published += 1;
                act.node.metrics.messages_published.inc();
                let ack = ServerFrame::Ack { reference: reference.as_deref(), room: &room, id }.encode();
                act.write(ack, ctx);
            }
            Err(error) => act.engine_failed(ctx, reference.as_deref(), &error),
        }))
    }

    fn history(
        &mut self,
        reference: Option<String>,
        room: RoomName,
        query: HistoryQuery,
        ctx: &mut Context<Self>,
    ) -> Reply {
        if !self.identity.rooms.allows(&room) {
            self.error(ctx, reference.as_deref(), ErrorCode::Forbidden, "your credentials do not allow this room");
            return done();
        }
        let engine = self.node.engine.clone();
        let target = room.clone();
        let work = async move {
            let span = engine_span("room.history", engine.kind(), &target);
            let page = engine.history(&target, query).instrument(span.clone()).await;
            record_outcome(&span, &page);
            page
        }
        .in_current_span();
        Box::pin(work.into_actor(self).map(move |result, act, ctx| match result {
            Ok(messages) => {
                // One frame: cut to half the queue, so the page can always be written.
                let budget = act.connection.outbound_sender().max_bytes() / replay::QUEUE_SHARE;
                let (page, truncated) = replay::fit_page(&messages, budget, query.after.is_some());
                let frame = ServerFrame::History {
                    reference: reference.as_deref(),
                    room: &room,
                    messages: MessageList(page),
                    truncated,
                }
                .encode();
                act.write(frame, ctx);
            }
            Err(error) => act.engine_failed(ctx, reference.as_deref(), &error),
        }))
    }
}
