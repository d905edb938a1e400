//! Resume across lost data: a position from before Redis lost its data (or before an in-memory
//! node restarted) is not vouched for (`recovered: false`) on any node, and one from the current
//! data still is.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    helpers::{Client, Endpoint, TestApp, spawn_app, wait_ready},
    node_process::NodeProcess,
    redis_server::RedisServer,
};

async fn node(redis: &RedisServer, id: &str) -> TestApp {
    spawn_app(&[("ROOKERY_REDIS_URL", redis.url().as_str()), ("ROOKERY_NODE_ID", id)]).await
}

/// Joins `room` with `since`, retrying while the node answers `unavailable` (Redis coming back).
async fn join_since(client: &mut Client, room: &str, since: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = client.request(json!({"type":"join","room":room,"since":since})).await;
        if reply["type"] == "joined" {
            return reply;
        }
        assert!(Instant::now() < deadline, "the join never worked: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn a_position_from_before_redis_lost_its_data_is_not_recovered_on_any_node() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut alice = a.client("alice").await;
    alice.join("e").await;
    let old = alice.say("e", "old").await;
    let mut carol = b.client("carol").await;
    assert_eq!(join_since(&mut carol, "e", &old).await["recovered"], true, "the same data: recovered");

    redis.restart(); // empty: no persistence
    wait_ready(&a).await;
    wait_ready(&b).await;
    for node in [&a, &b] {
        let mut late = node.client("bob").await;
        let joined = join_since(&mut late, "e", &old).await;
        assert_eq!(joined["recovered"], false, "what was acked after `old` may be gone: {joined}");
    }
    let new = alice.say_when_back("e", "new").await;
    let mut erin = b.client("erin").await;
    assert_eq!(join_since(&mut erin, "e", &new).await["recovered"], true, "a position from the new data resumes");
}

#[actix_web::test]
async fn a_position_from_before_an_in_memory_node_restarted_is_not_recovered() {
    let mut node = NodeProcess::start(&[]).await;
    let mut alice = node.client("alice").await;
    alice.join("e").await;
    let old = alice.say("e", "old").await;
    node.kill();
    node.restart().await;
    let mut bob = node.client("bob").await;
    assert_eq!(join_since(&mut bob, "e", &old).await["recovered"], false, "the node's history is gone");
    let new = bob.say("e", "new").await;
    let mut carol = node.client("carol").await;
    assert_eq!(join_since(&mut carol, "e", &new).await["recovered"], true);
}
