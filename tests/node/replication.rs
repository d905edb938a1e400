//! `ROOKERY_REDIS_MIN_REPLICAS`: a message is acked only once Redis replicas have it; short of
//! them the sender hears `not_replicated` (stored, at risk), and a retry with the same key
//! stores nothing new and is acked once a replica has it.

use serde_json::json;

use crate::{
    helpers::{Endpoint, TestApp, http, spawn_app},
    redis_server::RedisServer,
};

async fn node(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    spawn_app(&[("ROOKERY_REDIS_URL", &url), ("ROOKERY_REDIS_MIN_REPLICAS", "1"), ("ROOKERY_API_KEY", "k")]).await
}

#[actix_web::test]
async fn without_a_replica_a_send_is_not_replicated_and_its_retries_store_it_once() {
    let primary = RedisServer::start();
    let app = node(&primary).await;
    let mut alice = app.client("alice").await;
    alice.join("lobby").await;
    let send = json!({"type":"send","room":"lobby","body":"at risk","key":"k-1"});
    for attempt in 0..2 {
        let reply = alice.request(send.clone()).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some("not_replicated")),
            "{attempt}: {reply}"
        );
    }
    let headers = [("Authorization", "Bearer k"), ("Idempotency-Key", "k-2")];
    let (status, error) =
        http(&app, "POST", "/api/v1/rooms/lobby/messages", &headers, Some(json!({"body":"posted"}))).await;
    assert_eq!((status, error["code"].as_str()), (504, Some("not_replicated")), "{error}");

    // A replica attaches: retries with the same keys are acked (once the replica confirms in
    // time) with the ids stored the first time.
    let _replica = tokio::task::spawn_blocking(move || {
        let replica = RedisServer::start_replica_of(&primary);
        (replica, primary)
    })
    .await
    .expect("start a replica");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ack = loop {
        let reply = alice.request(send.clone()).await;
        if reply["type"] == "ack" {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "never acked: {reply}");
    };
    let posted = loop {
        let (status, reply) =
            http(&app, "POST", "/api/v1/rooms/lobby/messages", &headers, Some(json!({"body":"posted"}))).await;
        if status == 201 {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "never stored: {reply}");
    };
    let (_, history) = http(&app, "GET", "/api/v1/rooms/lobby/messages", &[("Authorization", "Bearer k")], None).await;
    let stored: Vec<(&str, &str)> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["id"].as_str().unwrap_or_default(), m["body"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        stored,
        [(ack["id"].as_str().unwrap_or_default(), "at risk"), (posted["id"].as_str().unwrap_or_default(), "posted")],
        "each message is stored once, under the id its ack gave"
    );
}
