//! The single-node engine: history, ids and presence in this process, no Redis.
//!
//! One lock guards everything, and events are handed to the [`Delivery`] while it is held: that
//! is what makes a room's deliveries come out in id order, presence changes included, exactly as
//! a node's Redis inbox orders them. The critical sections are short and never wait on I/O.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;

use super::{
    Broker, BusEvent, Delivery, Engine, EngineError, NewMessage, PresenceStore, Recovery, idempotency::SentKeys,
};
use crate::{
    domain::{
        Member, Message, MessageId, PresenceChange, PresenceKind, RoomName, RoomPresence, SessionId, UserName, now_ms,
    },
    protocol::HistoryQuery,
};

/// The in-memory engine. History lives until the process exits, `history_len` messages per room
/// (trimmed as [`super::history_trim_step`] says).
pub struct MemoryEngine {
    state: Mutex<State>,
    history_len: usize,
    presence_max_users: u64,
    /// How long a room remembers a send's idempotency key.
    key_window_ms: u64,
    /// When this engine started (ms): its history begins here, so a resume position from
    /// before it (a previous run of the node) cannot be vouched for.
    started_ms: u64,
    delivery: Arc<dyn Delivery>,
}

/// How long rooms remember idempotency keys unless `with_key_window` says otherwise: as long as
/// the Redis engine's default bus retention.
pub const DEFAULT_KEY_WINDOW_MS: u64 = 600_000;

#[derive(Default)]
struct State {
    logs: HashMap<RoomName, RoomLog>,
    presence: HashMap<RoomName, BTreeMap<UserName, Vec<SessionId>>>,
}

#[derive(Default)]
struct RoomLog {
    messages: VecDeque<Message>,
    last_id: Option<MessageId>,
    /// The newest id trimmed away: `since` older than this cannot be fully recovered.
    trimmed_through: Option<MessageId>,
    /// The idempotency keys of recent sends.
    sent: SentKeys,
}

impl MemoryEngine {
    pub fn new(history_len: usize, delivery: Arc<dyn Delivery>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            history_len: history_len.max(1),
            presence_max_users: super::DEFAULT_PRESENCE_MAX_USERS,
            key_window_ms: DEFAULT_KEY_WINDOW_MS,
            started_ms: now_ms(),
            delivery,
        }
    }

    /// Rooms with more users than `max_users` have no presence events (see [`PresenceStore`]).
    pub fn with_presence_max_users(mut self, max_users: u64) -> Self {
        self.presence_max_users = max_users;
        self
    }

    /// Rooms remember a send's idempotency key for `window_ms`.
    pub fn with_key_window(mut self, window_ms: u64) -> Self {
        self.key_window_ms = window_ms;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than refusing all service would, so keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn members_of(users: Option<&BTreeMap<UserName, Vec<SessionId>>>) -> Vec<Member> {
    users
        .into_iter()
        .flatten()
        .map(|(user, sessions)| Member { user: user.clone(), sessions: sessions.len() as u32 })
        .collect()
}

/// The page of `messages` (in id order) that `query` asks for.
fn page(messages: &VecDeque<Message>, query: HistoryQuery) -> Vec<Message> {
    let in_range = |m: &&Message| query.after.is_none_or(|after| m.id > after) && query.before.is_none_or(|b| m.id < b);
    if query.after.is_some() {
        messages.iter().filter(in_range).take(query.limit).cloned().collect()
    } else {
        let mut newest: Vec<Message> = messages.iter().rev().filter(in_range).take(query.limit).cloned().collect();
        newest.reverse();
        newest
    }
}

#[async_trait]
impl Broker for MemoryEngine {
    async fn publish(&self, message: NewMessage) -> Result<MessageId, EngineError> {
        let mut state = self.state();
        let log = state.logs.entry(message.room.clone()).or_default();
        let now = now_ms();
        if let Some(stored) = message.key.as_deref().and_then(|key| log.sent.find(key, now, self.key_window_ms)) {
            return Ok(stored);
        }
        let id = log.last_id.unwrap_or_default().next_after(now);
        log.last_id = Some(id);
        if let Some(key) = message.key {
            log.sent.remember(key, id, now);
        }
        let stored = Message { room: message.room, id, user: message.user, body: message.body, trace: String::new() };
        log.messages.push_back(stored.clone());
        if log.messages.len() > self.history_len + super::history_trim_step(self.history_len) {
            while log.messages.len() > self.history_len {
                log.trimmed_through = log.messages.pop_front().map(|m| m.id);
            }
        }
        // The trace context travels with the delivery only, as on the Redis bus.
        self.delivery.deliver(BusEvent::Message(Arc::new(Message { trace: message.trace, ..stored })));
        Ok(id)
    }

    async fn history(&self, room: &RoomName, query: HistoryQuery) -> Result<Vec<Message>, EngineError> {
        Ok(self.state().logs.get(room).map(|log| page(&log.messages, query)).unwrap_or_default())
    }

    async fn recover(&self, room: &RoomName, since: Option<MessageId>) -> Result<Recovery, EngineError> {
        let state = self.state();
        let before_this_run = since.is_some_and(|since| since.millis() < self.started_ms);
        let Some(log) = state.logs.get(room) else {
            let recovered = !before_this_run && since.is_none_or(|since| super::vouches_for(since, None, false));
            return Ok(Recovery { messages: Vec::new(), last_id: None, recovered, trimmed_through: None, seq: None });
        };
        let Some(since) = since else {
            return Ok(Recovery {
                messages: Vec::new(),
                last_id: log.last_id,
                recovered: true,
                trimmed_through: log.trimmed_through,
                seq: None,
            });
        };
        Ok(Recovery {
            messages: log.messages.iter().filter(|m| m.id > since).cloned().collect(),
            last_id: log.last_id,
            recovered: !before_this_run
                && super::vouches_for(since, log.trimmed_through, log.messages.iter().any(|m| m.id == since)),
            trimmed_through: log.trimmed_through,
            seq: None,
        })
    }
}

#[async_trait]
impl PresenceStore for MemoryEngine {
    async fn join(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<RoomPresence, EngineError> {
        let mut state = self.state();
        let users = state.presence.entry(room.clone()).or_default();
        let sessions = users.entry(user.clone()).or_default();
        let first_session = sessions.is_empty();
        if !sessions.contains(&session) {
            sessions.push(session);
        }
        let user_count = users.len() as u64;
        let listed = user_count <= self.presence_max_users;
        if first_session && listed {
            self.delivery.deliver(BusEvent::Presence(PresenceChange {
                room: room.clone(),
                user: user.clone(),
                kind: PresenceKind::Join,
            }));
        }
        Ok(RoomPresence { user_count, members: listed.then(|| members_of(Some(users))), seq: None })
    }

    async fn leave(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<(), EngineError> {
        let mut state = self.state();
        let Some(users) = state.presence.get_mut(room) else { return Ok(()) };
        let Some(sessions) = users.get_mut(user) else { return Ok(()) };
        let before = sessions.len();
        sessions.retain(|s| *s != session);
        if sessions.is_empty() {
            let users_before = users.len() as u64;
            users.remove(user);
            if before > 0 && users_before <= self.presence_max_users {
                self.delivery.deliver(BusEvent::Presence(PresenceChange {
                    room: room.clone(),
                    user: user.clone(),
                    kind: PresenceKind::Leave,
                }));
            }
        }
        if users.is_empty() {
            state.presence.remove(room);
        }
        Ok(())
    }

    async fn members(&self, room: &RoomName) -> Result<Vec<Member>, EngineError> {
        Ok(members_of(self.state().presence.get(room)))
    }
}

#[async_trait]
impl Engine for MemoryEngine {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn check_ready(&self) -> Result<(), EngineError> {
        Ok(())
    }
}
