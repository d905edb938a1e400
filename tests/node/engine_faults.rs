//! What clients see when the engine fails: `unavailable` or `internal`, nothing published,
//! `/readyz` 503, and the node serving again once the engine is back.
//!
//! The engine here is the real memory engine behind a switch that makes every call fail, the
//! way a cluster engine fails when its store is unreachable.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rookery::{
    domain::{Member, Message, MessageId, RoomName, RoomPresence, SessionId, UserName},
    engine::{Broker, Delivery, Engine, EngineError, MemoryEngine, NewMessage, PresenceStore, Recovery},
    protocol::HistoryQuery,
};
use serde_json::json;

use crate::helpers::{Endpoint, TestApp, http, spawn_app_with};

/// The memory engine, failing with `fault` while one is set; `recover` alone fails while
/// `recover_fails` (a join whose presence change went through, then failed), and the next
/// `leave_failures` leaves fail.
struct Switched {
    inner: MemoryEngine,
    fault: Mutex<Option<EngineError>>,
    recover_fails: Mutex<bool>,
    leave_failures: AtomicU32,
}

impl Switched {
    fn check(&self) -> Result<(), EngineError> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone().map_or(Ok(()), Err)
    }

    fn set(&self, fault: Option<EngineError>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }
}

#[async_trait]
impl Broker for Switched {
    async fn publish(&self, message: NewMessage) -> Result<MessageId, EngineError> {
        self.check()?;
        self.inner.publish(message).await
    }
    async fn history(&self, room: &RoomName, query: HistoryQuery) -> Result<Vec<Message>, EngineError> {
        self.check()?;
        self.inner.history(room, query).await
    }
    async fn recover(&self, room: &RoomName, since: Option<MessageId>) -> Result<Recovery, EngineError> {
        self.check()?;
        if *self.recover_fails.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(EngineError::Unavailable("recover failed".into()));
        }
        self.inner.recover(room, since).await
    }
}

#[async_trait]
impl PresenceStore for Switched {
    async fn join(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<RoomPresence, EngineError> {
        self.check()?;
        self.inner.join(room, user, session).await
    }
    async fn leave(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<(), EngineError> {
        self.check()?;
        if self.leave_failures.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok() {
            return Err(EngineError::Unavailable("leave failed".into()));
        }
        self.inner.leave(room, user, session).await
    }
    async fn members(&self, room: &RoomName) -> Result<Vec<Member>, EngineError> {
        self.check()?;
        self.inner.members(room).await
    }
}

#[async_trait]
impl Engine for Switched {
    fn kind(&self) -> &'static str {
        "switched-memory"
    }
    async fn check_ready(&self) -> Result<(), EngineError> {
        self.check()
    }
}

async fn switched_app() -> (TestApp, Arc<Switched>) {
    let slot: Arc<Mutex<Option<Arc<Switched>>>> = Arc::default();
    let keep = slot.clone();
    let app = spawn_app_with(&[("ROOKERY_API_KEY", "k")], move |settings, delivery: Arc<dyn Delivery>| {
        let engine = Arc::new(Switched {
            inner: MemoryEngine::new(settings.history_len, delivery),
            fault: Mutex::new(None),
            recover_fails: Mutex::new(false),
            leave_failures: AtomicU32::new(0),
        });
        *keep.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine.clone());
        engine
    })
    .await;
    let engine = slot.lock().unwrap_or_else(|p| p.into_inner()).clone().expect("engine built");
    (app, engine)
}

#[actix_web::test]
async fn an_unavailable_engine_publishes_nothing_and_turns_readiness_off() {
    let (app, engine) = switched_app().await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    engine.set(Some(EngineError::Unavailable("store unreachable".into())));

    let reply = alice.request(json!({"type":"send","room":"lobby","body":"lost?"})).await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("unavailable")));
    let reply = alice.request(json!({"type":"join","room":"other"})).await;
    assert_eq!(reply["code"], "unavailable");
    let reply = alice.request(json!({"type":"send","room":"other","body":"x"})).await;
    assert_eq!(reply["code"], "not_joined", "a failed join leaves the session outside the room");
    assert_eq!(alice.request(json!({"type":"history","room":"lobby"})).await["code"], "unavailable");
    let (status, ready) = http(&app, "GET", "/readyz", &[], None).await;
    assert_eq!((status, ready["status"].as_str()), (503, Some("unavailable")));
    assert!(ready["reason"].as_str().is_some_and(|r| r.contains("store unreachable")), "{ready}");
    let (status, body) =
        http(&app, "POST", "/api/v1/rooms/lobby/messages", &[("Authorization", "Bearer k")], Some(json!({"body":"x"})))
            .await;
    assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")));

    engine.set(None);
    assert_eq!(http(&app, "GET", "/readyz", &[], None).await.0, 200);
    let history = alice.request(json!({"type":"history","room":"lobby"})).await;
    assert_eq!(history["messages"], json!([]), "nothing was published while the engine was down");
    alice.say("lobby", "back").await;
    assert!(app.node.metrics.render().contains("rookery_error_frames_total{code=\"unavailable\"} 3"));
}

#[actix_web::test]
async fn internal_engine_failures_answer_internal() {
    let (app, engine) = switched_app().await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    engine.set(Some(EngineError::Internal("corrupt entry".into())));
    let reply = alice.request(json!({"type":"send","room":"lobby","body":"x"})).await;
    assert_eq!((reply["code"].as_str(), reply["message"].as_str()), (Some("internal"), Some("internal error")));
    let (status, body) =
        http(&app, "POST", "/api/v1/rooms/lobby/messages", &[("Authorization", "Bearer k")], Some(json!({"body":"x"})))
            .await;
    assert_eq!((status, body["code"].as_str()), (500, Some("internal")));
    engine.set(None);
    assert_eq!(alice.request(json!({"type":"ping"})).await["type"], "pong", "the session survives");
}

/// Waits until `room`'s members in the engine are `expected`.
async fn members_become(engine: &Switched, room: &str, expected: &[&str]) {
    let room = RoomName::parse(room).expect("a room name");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = engine.inner.members(&room).await.expect("members");
        let users: Vec<&str> = members.iter().map(|m| m.user.as_str()).collect();
        if users == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{room}: {users:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A join whose presence change went through before it failed is undone, and a leave that fails
/// on the way is tried again, so no ghost member stays listed.
#[actix_web::test]
async fn a_failed_joins_presence_is_undone_even_when_the_first_undo_fails() {
    let (app, engine) = switched_app().await;
    let mut alice = app.client("alice").await;
    *engine.recover_fails.lock().unwrap_or_else(|p| p.into_inner()) = true;
    engine.leave_failures.store(1, Ordering::Release);
    assert_eq!(alice.request(json!({"type":"join","room":"lobby"})).await["code"], "unavailable");
    members_become(&engine, "lobby", &[]).await;
    assert_eq!(engine.leave_failures.load(Ordering::Acquire), 0, "the first undo failed and was retried");
    assert!(app.node.metrics.render().contains("rookery_presence_undo_failures_total 0"));
}

/// When every undo fails, the ghost is counted (and logged) rather than ignored.
#[actix_web::test]
async fn a_presence_that_cannot_be_undone_is_counted() {
    let (app, engine) = switched_app().await;
    let mut alice = app.client("alice").await;
    *engine.recover_fails.lock().unwrap_or_else(|p| p.into_inner()) = true;
    engine.leave_failures.store(u32::MAX, Ordering::Release);
    assert_eq!(alice.request(json!({"type":"join","room":"lobby"})).await["code"], "unavailable");
    app.eventually("the failed undo counted", |node| {
        node.metrics.render().contains("rookery_presence_undo_failures_total 1")
    })
    .await;
    members_become(&engine, "lobby", &["alice"]).await;
}
