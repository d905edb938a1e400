//! Several real nodes on one real Redis act as one chat server.

use serde_json::json;

use crate::{
    helpers::{Client, TestApp, http, spawn_app},
    redis_server::RedisServer,
};

async fn node(redis: &RedisServer, id: &str) -> TestApp {
    let url = redis.url();
    spawn_app(&[("ROOKERY_REDIS_URL", &url), ("ROOKERY_NODE_ID", id), ("ROOKERY_API_KEY", "k")]).await
}

#[actix_web::test]
async fn clients_on_different_nodes_share_rooms_presence_and_history() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut alice = a.client("alice").await;
    let mut bob = b.client("bob").await;
    assert_eq!((alice.welcome["node"].as_str(), bob.welcome["node"].as_str()), (Some("node-a"), Some("node-b")));

    alice.join("lobby").await;
    let joined = bob.join("lobby").await;
    assert_eq!(joined["members"], json!([{"user":"alice","sessions":1},{"user":"bob","sessions":1}]), "members are cluster-wide");
    assert_eq!(alice.recv().await, json!({"type":"presence","room":"lobby","event":"join","user":"bob"}));

    let id = alice.say("lobby", "hello from a").await;
    let (message, _) = bob.recv_until("message").await;
    assert_eq!((message["id"].as_str(), message["body"].as_str()), (Some(id.as_str()), Some("hello from a")));
    let history = bob.request(json!({"type":"history","room":"lobby"})).await;
    assert_eq!(history["messages"][0]["id"], id.as_str());

    let (status, members) = http(&a, "GET", "/api/v1/rooms/lobby/members", &[("Authorization", "Bearer k")], None).await;
    assert_eq!((status, members["members"].as_array().map(Vec::len)), (200, Some(2)));
    let (status, _) = http(&a, "GET", "/readyz", &[], None).await;
    assert_eq!(status, 200);

    drop(bob);
    let (leave, _) = alice.recv_until("presence").await;
    assert_eq!(leave, json!({"type":"presence","room":"lobby","event":"leave","user":"bob"}));
}

#[actix_web::test]
async fn a_client_resumes_on_another_node_without_losing_messages() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut alice = a.client("alice").await;
    alice.join("lobby").await;
    let mut carol = b.client("carol").await;
    carol.join("lobby").await;
    let last_seen = carol.say("lobby", "before").await;
    drop(carol);
    for n in 0..3 {
        alice.say("lobby", &format!("missed {n}")).await;
    }
    let mut carol = Client::connect(&a.ws_url("?user=carol")).await;
    carol.send(json!({"type":"join","room":"lobby","since":last_seen})).await;
    let (joined, replayed) = carol.recv_until("joined").await;
    let bodies: Vec<&str> = replayed.iter().map(|m| m["body"].as_str().unwrap_or("")).collect();
    assert_eq!(bodies, ["missed 0", "missed 1", "missed 2"]);
    assert_eq!(joined["recovered"], true);
}

#[actix_web::test]
async fn a_redis_outage_refuses_sends_and_the_node_recovers_when_redis_returns_empty() {
    let redis = RedisServer::start();
    let port = redis.port;
    let a = node(&redis, "node-a").await;
    let mut alice = a.client("alice").await;
    alice.join("lobby").await;
    drop(redis);

    let reply = alice.request(json!({"type":"send","room":"lobby","body":"lost"})).await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("unavailable")));
    assert_eq!(alice.request(json!({"type":"ping"})).await["type"], "pong", "the connection stays open");
    let (status, ready) = http(&a, "GET", "/readyz", &[], None).await;
    assert_eq!((status, ready["status"].as_str()), (503, Some("unavailable")));

    let _back = RedisServer::start_on(port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let reply = alice.request(json!({"type":"send","room":"lobby","body":"back"})).await;
        if reply["type"] == "ack" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the node never recovered: {reply}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The copy of "back" may have come before its ack (and been skipped); watch for a new one.
    alice.send(json!({"type":"send","room":"lobby","body":"delivered"})).await;
    loop {
        let (message, _) = alice.recv_until("message").await;
        if message["body"] == "delivered" {
            break; // delivery works again through the recreated groups
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while http(&a, "GET", "/readyz", &[], None).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "readiness never came back");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
