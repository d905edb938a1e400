//! The cluster layer behind one seam: how a node stores, orders and spreads messages and presence.
//!
//! Split as centrifuge splits it: a [`Broker`] stores messages in per-room order and spreads them
//! to every node; a [`PresenceStore`] keeps who is in which room. An [`Engine`] is both. Nodes
//! never talk to each other directly: every message and presence change goes into the engine and
//! comes back out through the node's [`Delivery`], on the node that published it as on every
//! other, so single-node and cluster behaviour share one path.
//!
//! `memory` is the single-node engine (no Redis). The behaviour every engine must show is written
//! once as a test suite, `tests/node/contract.rs`.

pub mod idempotency;
mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

pub use memory::MemoryEngine;

use crate::{
    domain::{Member, Message, MessageId, PresenceChange, RoomName, RoomPresence, SessionId, UserName},
    protocol::HistoryQuery,
};

/// Rooms with more users than this have no presence events and list no members on join, unless
/// `ROOKERY_PRESENCE_MAX_USERS` says otherwise: announcing every join to every member costs
/// O(users) per join, O(users²) to fill a room.
pub const DEFAULT_PRESENCE_MAX_USERS: u64 = 100;

/// What an engine hands to a node: every event of every room, in each room's id order, or
/// numbered so the node can put them in it ([`Delivery::deliver_numbered`]).
#[derive(Debug, Clone)]
pub enum BusEvent {
    Message(Arc<Message>),
    Presence(PresenceChange),
    /// Messages of `room` after `after` were lost before they could be delivered.
    Gap {
        room: RoomName,
        after: Option<MessageId>,
    },
}

impl BusEvent {
    pub fn room(&self) -> &RoomName {
        match self {
            Self::Message(message) => &message.room,
            Self::Presence(change) => &change.room,
            Self::Gap { room, .. } => room,
        }
    }
}

/// Where an engine delivers events. Must not block: engines call [`Self::deliver`] while keeping
/// room order; numbered events may come from several threads in any order.
///
/// An engine delivers every event of each room where this node has sessions (joined through
/// [`PresenceStore::join`]), from the join on; it may deliver other rooms' events too (the memory
/// engine does), and the node drops those.
pub trait Delivery: Send + Sync + 'static {
    fn deliver(&self, event: BusEvent);

    /// Delivers event number `seq` of its room (an engine that numbers each room's events, see
    /// `rooms::order`): the node hands the room's numbered events on in number order, whichever
    /// thread each comes from.
    fn deliver_numbered(&self, seq: u64, event: BusEvent) {
        let _ = seq;
        self.deliver(event);
    }

    /// The rooms to catch up now, with their catch-up positions: those whose events have waited
    /// since before `before` for a number that did not come, those where too many wait, and
    /// those asked to be checked ([`Self::check_soon`]) before it. Each is taken off the list;
    /// the engine catches it up and calls [`Self::caught_up`], or asks again with `check_soon`.
    fn overdue(&self, before: std::time::Instant) -> Vec<CatchUpFrom> {
        let _ = before;
        Vec::new()
    }

    /// A catch-up of `room` read its history up to event number `seq` (in one call with it) and
    /// delivered what the node had not: the room's numbered events go on after `seq`.
    fn caught_up(&self, room: &RoomName, seq: u64) {
        let _ = (room, seq);
    }

    /// Redis lost its data and numbers every room anew: each room's numbered events wait for
    /// the catch-up that follows ([`Self::caught_up`]).
    fn renumbered(&self) {}

    /// A publish to `room` from this node may have stored a message whose reply never came (the
    /// node delivers its own messages from the reply): the room is to be caught up soon.
    fn check_soon(&self, room: &RoomName) {
        let _ = room;
    }

    /// The rooms with members on this node, each with the position an engine must catch up
    /// from after it may have missed events.
    fn catch_up_positions(&self) -> Vec<CatchUpFrom> {
        Vec::new()
    }
}

/// Where a room's catch-up starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUpFrom {
    pub room: RoomName,
    /// The newest message delivered to the room, or, before any, a time-based id from just
    /// before the room got its first local member.
    pub after: MessageId,
    /// Whether `after` is a delivered message (which the history must still hold) rather than
    /// a time.
    pub delivered: bool,
}

impl CatchUpFrom {
    /// Whether `recovery` (read after `after`) holds everything that followed it. A delivered
    /// message the history no longer holds was lost; a time is whole unless trimming passed it.
    pub fn is_whole(&self, recovery: &Recovery) -> bool {
        if self.delivered {
            recovery.recovered
        } else {
            recovery.trimmed_through.is_none_or(|trimmed| self.after >= trimmed)
        }
    }
}

/// Why an engine call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The backing store cannot be reached or is overloaded; the call had no effect.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The call was sent but no answer came in time: it may or may not have taken effect.
    #[error("no answer from the engine: {0}")]
    NoAnswer(String),
    /// The message was stored, but fewer replicas than asked for confirmed it in time: a
    /// failover may lose it. A retry with the same key stores nothing new.
    #[error("stored but not replicated in time: {0}")]
    NotReplicated(String),
    /// Anything else: a bug, or data the engine cannot understand.
    #[error("engine failure: {0}")]
    Internal(String),
}

impl EngineError {
    /// What a client is told (the details stay in the log): what is known of the call's effect,
    /// and what a retry does.
    pub fn client_message(&self) -> &'static str {
        match self {
            EngineError::Unavailable(_) => "the message store is unavailable; nothing was done, try again",
            EngineError::NoAnswer(_) => {
                "the message store did not answer in time: it may have been done; \
                 a message retried with the same key is stored once"
            }
            EngineError::NotReplicated(_) => {
                "the message was stored but not confirmed by enough replicas in time: a failover may lose it; \
                 a message retried with the same key stores nothing new"
            }
            EngineError::Internal(_) => "internal error",
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub room: RoomName,
    pub user: UserName,
    pub body: String,
    /// The publish's W3C `traceparent` (empty when not traced).
    pub trace: String,
    /// The client's idempotency key, if it gave one (see [`idempotency`]).
    pub key: Option<String>,
}

/// What a session needs to (re)join a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Messages after `since` still retained, in id order (empty without `since`).
    pub messages: Vec<Message>,
    /// The room's newest id at the time of the call.
    pub last_id: Option<MessageId>,
    /// False when the history cannot vouch that it holds everything after `since` (see
    /// [`vouches_for`]).
    pub recovered: bool,
    /// The newest id trimmed from the history, `None` while nothing was: a position from before
    /// the room had a message (not a message id) is whole unless trimming passed it.
    pub trimmed_through: Option<MessageId>,
    /// The number of the room's latest event, read in the same call (see `rooms::order`);
    /// `None` from an engine that does not number events.
    pub seq: Option<u64>,
}

/// How far a room's history may grow past `history_len` before it is trimmed back to exactly
/// `history_len`: an eighth of it, at most [`MAX_TRIM_STEP`]. A history holds between
/// `history_len` and `history_len` plus this many of the room's newest messages, the same in
/// every engine.
///
/// Why not trim to exactly `history_len` on every publish: on Redis, taking one entry off the
/// head of a stream rewrites the head node, and finding the id trimmed reads it; once a room's
/// history is full that was a quarter of Redis's CPU per message (BENCHMARKS.md, change 21).
/// Trimming a step at a time costs about the same once per step.
pub fn history_trim_step(history_len: usize) -> usize {
    (history_len / 8).min(MAX_TRIM_STEP)
}

/// The largest trim step: the publish that trims reads the entries it trims (to record the
/// newest id), bodies and all, so a step of a large history would hold Redis for long.
pub const MAX_TRIM_STEP: usize = 64;

/// Whether a room's history can vouch that nothing after `since` is missing from it, given the
/// newest id trimmed from it (`None`: nothing ever was) and whether it holds `since` itself.
///
/// `since` is a message id the client received, so the history held it: it still does, or it
/// was trimmed (then only the trimmed end itself loses nothing after it). A position the history
/// neither holds nor trimmed was lost (a Redis failover that promoted a replica without the
/// newest writes) or never stored here: either way what followed it is unknown. `0-0` asks for
/// everything, which is whole while nothing was trimmed.
pub fn vouches_for(since: MessageId, trimmed_through: Option<MessageId>, holds_since: bool) -> bool {
    if since == MessageId::default() {
        return trimmed_through.is_none();
    }
    holds_since || trimmed_through == Some(since)
}

/// Stores messages in per-room order and spreads them to every node.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Stores `message` and returns its id once stored. Delivery to members goes through the
    /// engine's [`Delivery`] on every node, this one included. A message whose key the room has
    /// seen within the key window is not stored or delivered again: the call returns the id it
    /// was stored with.
    async fn publish(&self, message: NewMessage) -> Result<MessageId, EngineError>;

    /// A page of retained history, in id order (see [`HistoryQuery`]).
    async fn history(&self, room: &RoomName, query: HistoryQuery) -> Result<Vec<Message>, EngineError>;

    /// The retained messages after `since`, and the room's newest id.
    async fn recover(&self, room: &RoomName, since: Option<MessageId>) -> Result<Recovery, EngineError>;
}

/// Keeps which users are in which room, with their session counts, and which sessions exist.
#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// A session opened on this node. A cluster engine records it, so the cluster can tell who
    /// is connected where and remove the session if this node dies.
    async fn connect(&self, _session: SessionId, _user: &UserName) -> Result<(), EngineError> {
        Ok(())
    }

    /// The session ended: it leaves `rooms` (announced as [`leave`](Self::leave) announces) and
    /// is forgotten. A cluster engine does all of it in one round trip.
    async fn disconnect(&self, session: SessionId, user: &UserName, rooms: &[RoomName]) -> Result<(), EngineError> {
        for room in rooms {
            self.leave(room, user, session).await?;
        }
        Ok(())
    }

    /// Adds `session` to `room`; announces a `join` when it is the user's first session there,
    /// unless the room then has more users than the presence limit. Returns the room's presence
    /// afterwards (its members only up to the limit).
    async fn join(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<RoomPresence, EngineError>;

    /// Removes `session` from `room`; announces a `leave` when it was the user's last session,
    /// unless the room had more users than the presence limit.
    async fn leave(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<(), EngineError>;

    /// The room's members, sorted by user name.
    async fn members(&self, room: &RoomName) -> Result<Vec<Member>, EngineError>;
}

/// A complete cluster layer.
#[async_trait]
pub trait Engine: Broker + PresenceStore {
    /// A short name for logs and `/readyz`.
    fn kind(&self) -> &'static str;

    /// Ok when the engine can serve; the error says why not.
    async fn check_ready(&self) -> Result<(), EngineError>;

    /// Stops background work at the end of a drain: what was read from the cluster is
    /// delivered and acknowledged first.
    async fn shutdown(&self) {}

    /// A session's join: [`join`](PresenceStore::join), then [`recover`](Broker::recover) what
    /// it replays and the room's last id. A cluster engine does both in one round trip.
    async fn join_and_recover(
        &self,
        room: &RoomName,
        user: &UserName,
        session: SessionId,
        since: Option<MessageId>,
    ) -> Result<(RoomPresence, Recovery), EngineError> {
        let presence = self.join(room, user, session).await?;
        Ok((presence, self.recover(room, since).await?))
    }
}
