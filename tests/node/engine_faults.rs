//! What clients see when the engine fails: `unavailable` or `internal`, nothing published,
//! `/readyz` 503, and the node serving again once the engine is back.
//!
//! The engine here is the real memory engine behind a switch that makes every call fail, the
//! way a cluster engine fails when its store is unreachable.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rookery::{
    domain::{Member, Message, MessageId, RoomName, RoomPresence, SessionId, UserName},
    engine::{Broker, Delivery, Engine, EngineError, MemoryEngine, NewMessage, PresenceStore, Recovery},
    protocol::HistoryQuery,
};
use serde_json::json;

use crate::helpers::{Endpoint, TestApp, http, spawn_app_with};

/// The memory engine, failing with `fault` while one is set.
struct Switched {
    inner: MemoryEngine,
    fault: Mutex<Option<EngineError>>,
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
        let engine =
            Arc::new(Switched { inner: MemoryEngine::new(settings.history_len, delivery), fault: Mutex::new(None) });
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
