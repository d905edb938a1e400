//! The behaviour every engine must show, as a test suite any engine can be run against.
//!
//! `engine_contract.rs` runs it for each engine through [`engine_contract_tests!`]: the
//! engine is built with [`HISTORY_LEN`], [`PRESENCE_MAX_USERS`] and a [`Recorder`] as its delivery, and each check uses
//! rooms of its own, so the suite also runs against a shared backing store. It is test code:
//! a check fails by panicking, hence the `expect`s.
//!
//! An engine owes a node the events of the rooms where the node has sessions (a cluster engine
//! sends a room's events only to the nodes serving it), so a check that watches a room's events
//! first joins a [`LISTENER`] session there; the [`Recorder`] leaves out the listener's own
//! presence changes.

use std::{
    any::Any,
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;

use rookery::{
    domain::{Member, MessageId, PresenceKind, RoomName, RoomPresence, SessionId, UserName},
    engine::{BusEvent, Delivery, Engine, NewMessage},
    protocol::HistoryQuery,
    rooms::{EventOrder, JoinPoint},
};

mod history;
pub use history::*;

/// The history length engines under test are built with.
pub const HISTORY_LEN: usize = 20;
/// The presence limit engines under test are built with.
pub const PRESENCE_MAX_USERS: u64 = 3;
const WAIT: Duration = Duration::from_secs(10);
/// The user whose session keeps a room served while a check watches its events.
pub const LISTENER: &str = "listener";

/// A [`Delivery`] that keeps every event for inspection, numbered events in their rooms' order
/// (as a node's room directory puts them, with the same [`EventOrder`]).
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<BusEvent>>,
    orders: Mutex<HashMap<RoomName, EventOrder>>,
    arrived: Notify,
}

impl Delivery for Recorder {
    fn deliver(&self, event: BusEvent) {
        self.record(vec![event]);
    }

    fn deliver_numbered(&self, seq: u64, event: BusEvent) {
        let mut orders = self.orders.lock().unwrap_or_else(|p| p.into_inner());
        // Every check's rooms are new: a room nobody listens to is numbered from its start.
        let ready = orders.entry(event.room().clone()).or_insert_with(|| EventOrder::after(0)).admit(seq, event, false);
        self.record(ready);
    }
}

impl Recorder {
    fn record(&self, ready: Vec<BusEvent>) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).extend(ready);
        self.arrived.notify_waiters();
    }

    /// Joins a [`LISTENER`] session of `engine` to `room`, as a node's session joins: the
    /// room's numbered events wait for the join's answer, and start after it.
    pub async fn listen(&self, engine: &dyn Engine, room: &RoomName) {
        {
            let mut orders = self.orders.lock().unwrap_or_else(|p| p.into_inner());
            match orders.get_mut(room) {
                Some(order) => order.another_join(),
                None => {
                    orders.insert(room.clone(), EventOrder::joining());
                }
            }
        }
        let joined = engine.join(room, &user_name(LISTENER), SessionId::random()).await.expect("listener join");
        let point = joined.seq.map(|seq| JoinPoint { seq, newest: None });
        let mut delivered = MessageId::default();
        let ready = self
            .orders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(room)
            .map(|o| o.joined(point, &mut delivered));
        self.record(ready.unwrap_or_default());
    }

    /// The room's events, but the listener's own joins and leaves.
    fn of_room(&self, room: &RoomName) -> Vec<BusEvent> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let listener = |e: &BusEvent| matches!(e, BusEvent::Presence(c) if c.user.as_str() == LISTENER);
        events.iter().filter(|e| e.room() == room && !listener(e)).cloned().collect()
    }

    /// Waits until `room` has at least `count` events, and returns them all.
    pub async fn wait_for(&self, room: &RoomName, count: usize) -> Vec<BusEvent> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            let events = self.of_room(room);
            if events.len() >= count {
                return events;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("room {room}: {} of {count} events after {WAIT:?}", self.of_room(room).len());
            }
        }
    }
}

/// What an engine factory returns: the engine, and whatever must live as long as it (a
/// backing server the test started, say).
pub struct EngineUnderTest {
    pub engine: Arc<dyn Engine>,
    pub guard: Option<Box<dyn Any + Send>>,
}

impl From<Arc<dyn Engine>> for EngineUnderTest {
    fn from(engine: Arc<dyn Engine>) -> Self {
        Self { engine, guard: None }
    }
}

impl<G: Any + Send> From<(Arc<dyn Engine>, G)> for EngineUnderTest {
    fn from((engine, guard): (Arc<dyn Engine>, G)) -> Self {
        Self { engine, guard: Some(Box::new(guard)) }
    }
}

/// An engine under test and what it delivered. Fields drop in order: the engine before its guard.
pub struct Harness {
    pub engine: Arc<dyn Engine>,
    pub events: Arc<Recorder>,
    _guard: Option<Box<dyn Any + Send>>,
}

impl Harness {
    pub async fn new<F, Fut, T>(make: F) -> Self
    where
        F: FnOnce(usize, Arc<dyn Delivery>) -> Fut,
        Fut: Future<Output = T>,
        T: Into<EngineUnderTest>,
    {
        let events = Arc::new(Recorder::default());
        let made: EngineUnderTest = make(HISTORY_LEN, events.clone()).await.into();
        Self { engine: made.engine, events, _guard: made.guard }
    }

    /// Joins a listener session to `room`, so this node is owed the room's events from now on.
    pub async fn listen(&self, room: &RoomName) {
        self.events.listen(self.engine.as_ref(), room).await;
    }

    async fn publish(&self, room: &RoomName, user: &str, body: &str) -> MessageId {
        let message = NewMessage {
            room: room.clone(),
            user: user_name(user),
            body: body.into(),
            trace: String::new(),
            key: None,
        };
        self.engine.publish(message).await.expect("publish")
    }
}

/// A room name no other check (or earlier run against the same store) uses.
pub fn unique_room(prefix: &str) -> RoomName {
    RoomName::parse(&format!("{prefix}-{}", uuid::Uuid::new_v4().simple())).expect("room name")
}

fn user_name(name: &str) -> UserName {
    UserName::parse(name).expect("user name")
}

fn message_ids(events: &[BusEvent]) -> Vec<MessageId> {
    events
        .iter()
        .filter_map(|e| match e {
            BusEvent::Message(m) => Some(m.id),
            _ => None,
        })
        .collect()
}

/// Concurrent publishers: every message is delivered once, in id order, each publisher's in
/// the order it published them, and ids are the acked ones.
pub async fn publish_delivers_every_message_once_in_id_order(h: &Harness) {
    let room = unique_room("order");
    h.listen(&room).await;
    let publishers = (0..3).map(|p| {
        let room = room.clone();
        async move {
            let mut acked = Vec::new();
            for n in 0..15 {
                acked.push(h.publish(&room, &format!("user{p}"), &format!("{p}:{n}")).await);
            }
            acked
        }
    });
    let acked: Vec<Vec<MessageId>> = futures_util::future::join_all(publishers).await;
    let events = h.events.wait_for(&room, 45).await;
    let delivered = message_ids(&events);
    assert_eq!(delivered.len(), 45, "each message delivered exactly once");
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "ids strictly increase: {delivered:?}");
    let acked_all: HashSet<MessageId> = acked.iter().flatten().copied().collect();
    assert_eq!(acked_all, delivered.iter().copied().collect(), "delivered ids are the acked ids");
    for own in &acked {
        assert!(own.windows(2).all(|w| w[0] < w[1]), "a publisher's messages keep its order");
    }
    for event in &events {
        if let BusEvent::Message(m) = event {
            let (p, _) = m.body.split_once(':').expect("body");
            assert_eq!(m.user.as_str(), format!("user{p}"), "user travels with the body");
        }
    }
}

/// Presence counts sessions per user and announces a user once in, once out.
pub async fn presence_counts_sessions_and_announces_once(h: &Harness) {
    let room = unique_room("presence");
    let (alice, bob) = (user_name("alice"), user_name("bob"));
    let (a1, a2, b1) = (SessionId::random(), SessionId::random(), SessionId::random());
    h.listen(&room).await;
    let p = &h.engine;
    p.join(&room, &alice, a1).await.expect("join");
    let presence = p.join(&room, &alice, a2).await.expect("join");
    let listener = Member { user: user_name(LISTENER), sessions: 1 };
    assert_eq!(
        RoomPresence { seq: None, ..presence },
        RoomPresence {
            user_count: 2,
            members: Some(vec![Member { user: alice.clone(), sessions: 2 }, listener.clone()]),
            seq: None,
        }
    );
    let presence = p.join(&room, &bob, b1).await.expect("join");
    let members = presence.members.expect("a small room lists its members");
    assert_eq!(
        members.iter().map(|m| (m.user.as_str(), m.sessions)).collect::<Vec<_>>(),
        [("alice", 2), ("bob", 1), (LISTENER, 1)]
    );
    p.join(&room, &bob, b1).await.expect("joining twice is a no-op");
    p.leave(&room, &alice, a1).await.expect("leave");
    p.leave(&room, &bob, b1).await.expect("leave");
    p.leave(&room, &bob, b1).await.expect("leaving twice is a no-op");
    assert_eq!(
        p.members(&room).await.expect("members"),
        vec![Member { user: alice.clone(), sessions: 1 }, listener.clone()]
    );
    p.leave(&room, &alice, a2).await.expect("leave");
    assert_eq!(p.members(&room).await.expect("members"), vec![listener]);

    let events = h.events.wait_for(&room, 4).await;
    let changes: Vec<(String, PresenceKind)> = events
        .iter()
        .filter_map(|e| match e {
            BusEvent::Presence(c) => Some((c.user.to_string(), c.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("alice".to_string(), PresenceKind::Join),
            ("bob".to_string(), PresenceKind::Join),
            ("bob".to_string(), PresenceKind::Leave),
            ("alice".to_string(), PresenceKind::Leave),
        ]
    );
}

/// A room over the presence limit lists no members on join and announces no joins or leaves;
/// back at the limit, it announces again.
pub async fn rooms_over_the_presence_limit_announce_nothing(h: &Harness) {
    let room = unique_room("crowded");
    let users: Vec<(UserName, SessionId)> =
        (0..=PRESENCE_MAX_USERS).map(|n| (user_name(&format!("user{n}")), SessionId::random())).collect();
    for (n, (user, session)) in users.iter().enumerate() {
        let presence = h.engine.join(&room, user, *session).await.expect("join");
        let count = n as u64 + 1;
        assert_eq!(presence.user_count, count);
        assert_eq!(presence.members.map(|m| m.len() as u64), (count <= PRESENCE_MAX_USERS).then_some(count));
    }
    let second_session = h.engine.join(&room, &users[0].0, SessionId::random()).await.expect("join");
    assert_eq!((second_session.user_count, second_session.members), (PRESENCE_MAX_USERS + 1, None));
    // Leaving a room over the limit is silent; leaving one at the limit is announced.
    h.engine.leave(&room, &users[1].0, users[1].1).await.expect("leave");
    h.engine.leave(&room, &users[2].0, users[2].1).await.expect("leave");
    let marker = h.publish(&room, "user0", "marker").await;
    let events = h.events.wait_for(&room, PRESENCE_MAX_USERS as usize + 2).await;
    let seen: Vec<String> = events
        .iter()
        .map(|e| match e {
            BusEvent::Presence(c) => format!("{:?} {}", c.kind, c.user),
            BusEvent::Message(m) => format!("message {}", m.id),
            BusEvent::Gap { .. } => "gap".into(),
        })
        .collect();
    let mut expected: Vec<String> = (0..PRESENCE_MAX_USERS).map(|n| format!("Join user{n}")).collect();
    expected.extend(["Leave user2".to_string(), format!("message {marker}")]);
    assert_eq!(seen, expected);
}

/// A session's join replays what `recover` would, and its disconnect leaves every room it was in
/// (each leave announced).
pub async fn a_sessions_join_recovers_and_its_disconnect_leaves_every_room(h: &Harness) {
    let (first_room, second_room) = (unique_room("visit"), unique_room("visit"));
    let (dave, session) = (user_name("dave"), SessionId::random());
    h.listen(&first_room).await;
    h.listen(&second_room).await;
    let first = h.publish(&first_room, "erin", "one").await;
    let second = h.publish(&first_room, "erin", "two").await;
    h.engine.connect(session, &dave).await.expect("connect");
    let (presence, recovery) = h.engine.join_and_recover(&first_room, &dave, session, Some(first)).await.expect("join");
    assert_eq!(presence.user_count, 2, "dave and the listener");
    assert_eq!(recovery.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [second]);
    assert_eq!((recovery.last_id, recovery.recovered), (Some(second), true));
    let (_, empty) = h.engine.join_and_recover(&second_room, &dave, session, None).await.expect("join");
    assert_eq!((empty.messages.len(), empty.last_id), (0, None));

    h.engine.disconnect(session, &dave, &[first_room.clone(), second_room.clone()]).await.expect("disconnect");
    // Two messages, then dave's join and leave; in the second room only the presence events.
    for (room, events) in [(&first_room, 4), (&second_room, 2)] {
        let members = h.engine.members(room).await.expect("members");
        assert!(members.iter().all(|m| m.user.as_str() == LISTENER), "{room} still has dave: {members:?}");
        let announced: Vec<PresenceKind> = h
            .events
            .wait_for(room, events)
            .await
            .iter()
            .filter_map(|e| match e {
                BusEvent::Presence(c) => Some(c.kind),
                _ => None,
            })
            .collect();
        assert_eq!(announced, [PresenceKind::Join, PresenceKind::Leave], "{room}");
    }
}

/// Presence changes travel with the room's messages, in the order they happened.
pub async fn presence_is_ordered_with_messages(h: &Harness) {
    let room = unique_room("mixed");
    let carol = user_name("carol");
    let session = SessionId::random();
    h.listen(&room).await;
    h.engine.join(&room, &carol, session).await.expect("join");
    let id = h.publish(&room, "carol", "hello").await;
    h.engine.leave(&room, &carol, session).await.expect("leave");
    let events = h.events.wait_for(&room, 3).await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            BusEvent::Presence(c) => format!("{:?}", c.kind),
            BusEvent::Message(m) => format!("message {}", m.id),
            BusEvent::Gap { .. } => "gap".into(),
        })
        .collect();
    assert_eq!(kinds, ["Join".to_string(), format!("message {id}"), "Leave".to_string()]);
    // An engine that numbers a room's events tells each join the latest number: the listener's
    // join, carol's, the message and her leave were four, dave's join is the fifth.
    let dave = h.engine.join(&room, &user_name("dave"), SessionId::random()).await.expect("join");
    let erin = h.engine.join(&room, &user_name("erin"), SessionId::random()).await.expect("join");
    if dave.seq.is_some() {
        assert_eq!((dave.seq, erin.seq), (Some(5), Some(6)));
    } else {
        assert_eq!(erin.seq, None, "an engine numbers every join's answer or none");
    }
}

/// A send repeated with the same idempotency key is stored and delivered once, and answered with
/// the first id; the same key in another room is another message.
pub async fn a_repeated_key_is_stored_and_delivered_once_per_room(h: &Harness) {
    let (room, other) = (unique_room("keyed"), unique_room("keyed"));
    h.listen(&room).await;
    let keyed = |room: &RoomName, key: &str, body: &str| NewMessage {
        room: room.clone(),
        user: user_name("alice"),
        body: body.into(),
        trace: String::new(),
        key: Some(key.into()),
    };
    let first = h.engine.publish(keyed(&room, "k-1", "once")).await.expect("publish");
    let again = h.engine.publish(keyed(&room, "k-1", "once, retried")).await.expect("publish");
    assert_eq!(again, first, "the retry is answered with the stored id");
    let next = h.engine.publish(keyed(&room, "k-2", "next")).await.expect("publish");
    h.engine.publish(keyed(&other, "k-1", "elsewhere")).await.expect("publish");
    assert!(next > first);
    let there = h.engine.history(&other, HistoryQuery::default()).await.expect("history");
    assert_eq!(there.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["elsewhere"], "keys are per room");
    let delivered = message_ids(&h.events.wait_for(&room, 2).await);
    assert_eq!(delivered, [first, next], "delivered once, in order");
    let stored = h.engine.history(&room, HistoryQuery::default()).await.expect("history");
    assert_eq!(stored.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["once", "next"]);
}

/// Defines one `#[tokio::test]` per contract check for the engine that `$make` builds
/// (`async fn(history_len: usize, delivery: Arc<dyn Delivery>) -> impl Into<EngineUnderTest>`).
#[macro_export]
macro_rules! engine_contract_tests {
    ($make:path) => {
        $crate::engine_contract_tests!(@each $make;
            publish_delivers_every_message_once_in_id_order,
            history_matches_delivery_per_room,
            history_pages_in_id_order,
            history_is_bounded,
            recover_replays_after_since,
            history_and_recover_take_the_extreme_ids,
            presence_counts_sessions_and_announces_once,
            presence_is_ordered_with_messages,
            rooms_over_the_presence_limit_announce_nothing,
            a_sessions_join_recovers_and_its_disconnect_leaves_every_room,
            a_repeated_key_is_stored_and_delivered_once_per_room,
        );
    };
    (@each $make:path; $($check:ident,)*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let harness = $crate::contract::Harness::new($make).await;
                $crate::contract::$check(&harness).await;
            }
        )*
    };
}
