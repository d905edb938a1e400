//! Several real nodes on one real Redis act as one chat server.

use serde_json::json;

use crate::{
    helpers::{Endpoint, Client, TestApp, http, spawn_app},
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
