//! Interest routing: a node receives from Redis only the events of rooms where it has members.
//! Real nodes on a real redis-server; what a node read is its `rookery_bus_entries_read_total`, and
//! which nodes serve a room is the room's node set in Redis.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use rookery::{domain::RoomName, engine::redis::Keys, settings::DEFAULT_BUS_SHARDS};
use serde_json::{Value, json};

use crate::{
    helpers::{Client, Endpoint, TestApp, spawn_app},
    node_process::NodeProcess,
    redis_server::RedisServer,
};

pub(crate) async fn node(redis: &RedisServer, id: &str) -> TestApp {
    let url = redis.url();
    // Senders here outpace the default rate limit.
    let rate = [("ROOKERY_RATE_PER_SEC", "1000"), ("ROOKERY_RATE_BURST", "1000")];
    spawn_app(&[[("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", id)], rate].concat()).await
}

pub(crate) async fn joined(node: &impl Endpoint, user: &str, room: &str) -> Client {
    let mut client = node.client(user).await;
    client.join(room).await;
    client
}

/// Every bus entry the node has read, whatever became of it.
pub(crate) fn entries_read(node: &TestApp) -> f64 {
    node.node
        .metrics
        .render()
        .lines()
        .filter(|line| line.starts_with("rookery_bus_entries_read_total "))
        .map(|line| line.rsplit(' ').next().and_then(|value| value.parse::<f64>().ok()).unwrap_or(f64::NAN))
        .sum()
}

fn keys() -> Keys {
    Keys::new(DEFAULT_BUS_SHARDS)
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).expect("room name")
}

/// The nodes in the room's node set.
async fn serving(redis: &RedisServer, name: &str) -> BTreeSet<String> {
    let mut conn = redis.connection().await;
    redis::cmd("HKEYS").arg(keys().room_nodes(&room(name))).query_async(&mut conn).await.expect("HKEYS")
}

/// Waits until the room's node set is `expected`.
async fn wait_serving(redis: &RedisServer, name: &str, expected: &[&str], within: Duration) {
    let expected: BTreeSet<String> = expected.iter().map(|node| node.to_string()).collect();
    let deadline = Instant::now() + within;
    loop {
        let now = serving(redis, name).await;
        if now == expected {
            return;
        }
        assert!(Instant::now() < deadline, "room {name} is served by {now:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn inbox_len(redis: &RedisServer, node: &str) -> usize {
    let mut conn = redis.connection().await;
    redis::cmd("XLEN").arg(keys().inbox(0, node)).query_async(&mut conn).await.expect("XLEN")
}

async fn epoch(redis: &RedisServer) -> Option<String> {
    let mut conn = redis.connection().await;
    redis::cmd("GET").arg(Keys::epoch()).query_async(&mut conn).await.expect("GET")
}

pub(crate) fn ids(frames: &[Value]) -> Vec<String> {
    frames.iter().map(|frame| frame["id"].as_str().unwrap_or_default().to_owned()).collect()
}

#[actix_web::test]
async fn a_node_with_no_member_in_a_room_reads_none_of_its_events() {
    let redis = RedisServer::start();
    let (a, b, c) = (node(&redis, "node-a").await, node(&redis, "node-b").await, node(&redis, "node-c").await);
    let mut alice = joined(&a, "alice", "busy").await;
    let mut bob = joined(&b, "bob", "busy").await;
    let mut carol = joined(&c, "carol", "quiet").await;
    for n in 0..20 {
        bob.say("busy", &format!("m{n}")).await;
    }
    let (got, _) = alice.messages(20).await;
    assert_eq!(got.len(), 20);
    // node-c reads its own room's events: carol's join. Her message is node-c's own, which it
    // delivers from the publish's reply: it goes to no inbox of node-c's.
    carol.say("quiet", "alone").await;
    c.eventually("node-c read the quiet room", |_| entries_read(&c) >= 1.0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(entries_read(&c), 1.0, "node-c read only the quiet room: {}", c.node.metrics.render());
    assert_eq!(inbox_len(&redis, "node-c").await, 1);
    assert!(entries_read(&a) >= 20.0, "node-a read bob's messages from its inbox");
    assert_eq!(entries_read(&b), 1.0, "node-b read its member's join, and none of its own messages");
    assert_eq!(serving(&redis, "busy").await, BTreeSet::from(["node-a".into(), "node-b".into()]));
}

#[actix_web::test]
async fn the_first_local_member_joining_while_messages_flow_gets_each_message_once_in_order() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut sender = joined(&a, "sender", "flow").await;
    const COUNT: usize = 150;
    let sending = async {
        let mut acked = Vec::new();
        for n in 0..COUNT {
            acked.push(sender.say("flow", &format!("m{n}")).await);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        acked
    };
    // bob is node-b's first member of the room, and joins while the sender is at it.
    let joining = async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut bob = b.client("bob").await;
        let joined = bob.join("flow").await;
        (bob, joined)
    };
    let (acked, (mut bob, joined)) = futures_util::join!(sending, joining);
    let join_point = joined["last_id"].as_str().map(str::to_owned);
    let expected: Vec<String> = match &join_point {
        Some(point) => acked.iter().skip_while(|id| *id != point).skip(1).cloned().collect(),
        None => acked.clone(),
    };
    assert!(!expected.is_empty() && expected.len() < COUNT, "bob joined mid-stream: {} after the join", expected.len());
    let (got, _) = bob.messages(expected.len()).await;
    assert_eq!(ids(&got), expected, "every message after the join point, once, in order");
    bob.expect_silence(Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn the_last_local_member_leaving_stops_the_nodes_intake_of_the_room() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut alice = joined(&a, "alice", "room").await;
    let mut bob = joined(&b, "bob", "room").await;
    // Reads what node-a delivers, so the test knows when every message went through.
    let mut watcher = joined(&a, "watcher", "room").await;
    alice.say("room", "before").await;
    bob.recv_until("message").await;
    wait_serving(&redis, "room", &["node-a", "node-b"], Duration::ZERO).await;

    let left = bob.request(json!({"type":"leave","room":"room"})).await;
    assert_eq!(left["type"], "left");
    wait_serving(&redis, "room", &["node-a"], Duration::ZERO).await;
    let (read_before, inbox_before) = (entries_read(&b), inbox_len(&redis, "node-b").await);
    for n in 0..10 {
        alice.say("room", &format!("after {n}")).await;
    }
    watcher.messages(11).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(entries_read(&b), read_before, "node-b read nothing more of the room");
    assert_eq!(inbox_len(&redis, "node-b").await, inbox_before, "and nothing more was put in its inbox");
}

#[actix_web::test]
async fn the_reaper_removes_a_killed_node_from_every_rooms_node_set() {
    const TTL_MS: u64 = 2500;
    let redis = RedisServer::start();
    let (url, ttl) = (redis.url(), TTL_MS.to_string());
    let vars =
        |id| [("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", id), ("ROOKERY_NODE_TTL_MS", ttl.as_str())];
    let mut a = NodeProcess::start(&vars("node-a")).await;
    let b = NodeProcess::start(&vars("node-b")).await;
    let mut alice = joined(&a, "alice", "both").await;
    alice.join("only-a").await;
    let _bob = joined(&b, "bob", "both").await;
    wait_serving(&redis, "both", &["node-a", "node-b"], Duration::ZERO).await;
    wait_serving(&redis, "only-a", &["node-a"], Duration::ZERO).await;

    a.kill();
    let within = Duration::from_millis(TTL_MS * 2);
    wait_serving(&redis, "both", &["node-b"], within).await;
    wait_serving(&redis, "only-a", &[], within).await;
    let mut conn = redis.connection().await;
    let inboxes: Vec<String> =
        redis::cmd("KEYS").arg("rookery:*:inbox:node-a").query_async(&mut conn).await.expect("KEYS");
    assert!(inboxes.is_empty(), "node-a's inboxes are deleted: {inboxes:?}");
}

#[actix_web::test]
async fn a_redis_restarted_empty_gets_the_node_sets_back_and_delivery_resumes() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis, "node-a").await, node(&redis, "node-b").await);
    let mut alice = joined(&a, "alice", "lobby").await;
    let mut bob = joined(&b, "bob", "lobby").await;
    wait_serving(&redis, "lobby", &["node-a", "node-b"], Duration::ZERO).await;

    let before = epoch(&redis).await;
    redis.restart();
    wait_serving(&redis, "lobby", &["node-a", "node-b"], Duration::from_secs(15)).await;
    assert_ne!(epoch(&redis).await, before, "Redis came back empty, and the nodes gave it a new epoch");
    let id = bob.say_when_back("lobby", "back").await;
    let (message, _) = alice.recv_until("message").await;
    assert_eq!(message["id"].as_str(), Some(id.as_str()), "node-a gets the room's events again");
}
