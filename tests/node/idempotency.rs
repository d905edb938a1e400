//! Idempotent sends: a retry with the same key after an answer that could not say whether the
//! message was stored (`timeout`) is stored once, over WebSocket and over the server API, and
//! keys are per room and expire. Real nodes on a real redis-server, frozen with SIGSTOP.

use std::time::Duration;

use serde_json::json;

use crate::{
    helpers::{Endpoint, TestApp, http, spawn_app},
    redis_server::RedisServer,
};

async fn node(redis: &RedisServer, id: &str, retention_ms: &str) -> TestApp {
    let url = redis.url();
    spawn_app(&[
        ("ROOKERY_REDIS_URL", url.as_str()),
        ("ROOKERY_NODE_ID", id),
        ("ROOKERY_API_KEY", "k"),
        ("ROOKERY_BUS_RETENTION_MS", retention_ms),
    ])
    .await
}

#[actix_web::test]
async fn a_send_retried_with_its_key_after_a_timeout_is_stored_and_delivered_once() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a", "600000").await, node(&redis, "node-b", "600000").await);
    let mut alice = a.client("alice").await;
    alice.join("o").await;
    let mut bob = b.client("bob").await;
    bob.join("o").await;

    redis.pause();
    let reply = alice.request(json!({"type":"send","room":"o","body":"while-down","key":"k-1"})).await;
    redis.resume();
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("timeout")), "{reply}");
    assert!(reply["message"].as_str().unwrap_or_default().contains("same key"), "{reply}");

    // Redis carried out the send it was given while frozen; the retry finds it.
    let (stored, _) = bob.recv_until("message").await;
    assert_eq!(stored["body"], "while-down");
    let retry = alice.request(json!({"type":"send","room":"o","body":"while-down","key":"k-1"})).await;
    assert_eq!((retry["type"].as_str(), retry["id"].as_str()), (Some("ack"), stored["id"].as_str()), "{retry}");
    bob.expect_silence(Duration::from_millis(300)).await;
    let history = bob.request(json!({"type":"history","room":"o"})).await;
    let bodies: Vec<&str> =
        history["messages"].as_array().into_iter().flatten().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["while-down"], "stored exactly once");
}

#[actix_web::test]
async fn an_api_post_retried_with_its_idempotency_key_is_stored_once_per_room() {
    let redis = RedisServer::start();
    let app = node(&redis, "node-a", "600000").await;
    let post = |room: &'static str, key: String| {
        let app = app.clone();
        async move {
            let headers = [("Authorization", "Bearer k"), ("Idempotency-Key", key.as_str())];
            http(&app, "POST", &format!("/api/v1/rooms/{room}/messages"), &headers, Some(json!({"body":"hi"}))).await
        }
    };
    let (status, first) = post("lobby", "k-1".into()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = post("lobby", "k-1".into()).await;
    assert_eq!((status, &again["id"]), (201, &first["id"]), "the retry is answered with the first id");
    // Ids are per room (two rooms' first messages in one millisecond share `<ms>-0`), so what
    // each room stored is read from its history.
    let stored = |room: &'static str| {
        let app = app.clone();
        async move {
            let path = format!("/api/v1/rooms/{room}/messages");
            let (_, history) = http(&app, "GET", &path, &[("Authorization", "Bearer k")], None).await;
            history["messages"].as_array().map_or(0, Vec::len)
        }
    };
    post("other", "k-1".into()).await;
    assert_eq!(stored("other").await, 1, "keys are per room");
    // Room names may hold `:`, keys anything: room `lobby:x` with key `k` is not room `lobby`
    // with key `x:k`.
    post("lobby", "x:k".into()).await;
    post("lobby:x", "k".into()).await;
    assert_eq!(stored("lobby:x").await, 1, "no room's key is another room's");
    assert_eq!(stored("lobby").await, 2);
    let (status, error) = post("lobby", "k".repeat(65)).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("bad_request")), "{error}");
}

#[actix_web::test]
async fn keys_are_forgotten_after_the_bus_retention_on_either_engine() {
    let redis = RedisServer::start();
    let url = redis.url();
    let short = [("ROOKERY_API_KEY", "k"), ("ROOKERY_BUS_RETENTION_MS", "1000")];
    let on_redis = spawn_app(&[short[0], short[1], ("ROOKERY_REDIS_URL", url.as_str())]).await;
    let in_memory = spawn_app(&short).await;
    for app in [on_redis, in_memory] {
        let headers = [("Authorization", "Bearer k"), ("Idempotency-Key", "k-1")];
        let post = || http(&app, "POST", "/api/v1/rooms/lobby/messages", &headers, Some(json!({"body":"hi"})));
        let (_, first) = post().await;
        assert_eq!(post().await.1["id"], first["id"], "remembered within the window");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (status, later) = post().await;
        assert_eq!(status, 201);
        assert_ne!(later["id"], first["id"], "forgotten after it: stored again");
    }
}

/// A send whose connection breaks after it went out (Redis frozen, then killed) may have been
/// stored as far as the node can tell: `timeout`, never `unavailable`.
#[actix_web::test]
async fn a_send_cut_off_after_it_went_out_is_answered_timeout() {
    let mut redis = RedisServer::start();
    let app = node(&redis, "node-a", "600000").await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    redis.pause();
    alice.send(json!({"type":"send","room":"lobby","body":"in flight","key":"k-1","ref":"s"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    redis.kill();
    let (reply, _) = alice.recv_until("error").await;
    assert_eq!((reply["ref"].as_str(), reply["code"].as_str()), (Some("s"), Some("timeout")), "{reply}");
}
