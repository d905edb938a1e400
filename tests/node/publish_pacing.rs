//! Publishes paced per worker thread: while a thread is busy, its publishes reach Redis
//! together, in one request Redis reads at once. A real node on a real redis-server, real
//! WebSocket clients; Redis's own count of the reads it made is the measure.

use std::time::Duration;

use serde_json::json;

use crate::{
    helpers::{Client, TestApp, spawn_app},
    redis_server::RedisServer,
    routing::{entries_read, joined},
};

const SENDERS: u64 = 20;

/// `total_reads_processed` from `INFO stats`: every read Redis made from a client's socket.
fn reads(redis: &RedisServer) -> u64 {
    let stats = redis.info("stats");
    let line = stats.lines().find_map(|line| line.strip_prefix("total_reads_processed:"));
    line.and_then(|value| value.trim().parse().ok()).expect("total_reads_processed in INFO stats")
}

async fn node_with_interval(redis: &RedisServer, interval_ms: &str) -> TestApp {
    let url = redis.url();
    let vars = [("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", "node-a")];
    spawn_app(&[&vars[..], &[("ROOKERY_PUBLISH_INTERVAL_MS", interval_ms)]].concat()).await
}

/// Sends one message from each sender at once and waits for the acks.
async fn burst(senders: &mut [Client], reference: &str) {
    for (n, sender) in senders.iter_mut().enumerate() {
        sender.send(json!({"type": "send", "room": format!("room{n}"), "body": "hi", "ref": reference})).await;
    }
    for sender in senders {
        let (ack, _) = sender.recv_until("ack").await;
        assert_eq!(ack["ref"], reference, "{ack}");
    }
}

/// Twenty senders, each in a room of its own on the node's one worker thread, send 2 ms apart,
/// right after a burst made the thread busy; returns how many reads Redis made meanwhile.
async fn reads_for_spaced_sends(redis: &RedisServer, node: &TestApp) -> u64 {
    let mut senders: Vec<Client> = Vec::new();
    for n in 0..SENDERS {
        senders.push(joined(node, &format!("user{n}"), &format!("room{n}")).await);
    }
    // The node has read and acknowledged the joins its inbox brought: its bus is quiet.
    node.eventually("the joins read", |_| entries_read(node) >= SENDERS as f64).await;
    while redis.pending("node-a").await > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The thread is busy (two publishes an interval or more, on average), and a batch has just
    // gone.
    burst(&mut senders, "getting busy").await;
    burst(&mut senders, "busy").await;
    let before = reads(redis);
    for (n, sender) in senders.iter_mut().enumerate() {
        sender.send(json!({"type": "send", "room": format!("room{n}"), "body": "hi", "ref": "s"})).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for sender in &mut senders {
        let (ack, _) = sender.recv_until("ack").await;
        assert_eq!(ack["ref"], "s", "{ack}");
    }
    reads(redis) - before
}

#[actix_web::test]
async fn publishes_of_a_busy_thread_reach_redis_together() {
    let redis = RedisServer::start();
    let node = node_with_interval(&redis, "100").await;
    let reads = reads_for_spaced_sends(&redis, &node).await;
    // One or two for the publishes, one for the `INFO` that counts, and room for a heartbeat
    // or a blocking read renewed.
    assert!(reads <= 5, "Redis made {reads} reads for {SENDERS} publishes paced together");
}

#[actix_web::test]
async fn with_no_interval_each_publish_is_a_request_of_its_own() {
    let redis = RedisServer::start();
    let node = node_with_interval(&redis, "0").await;
    let reads = reads_for_spaced_sends(&redis, &node).await;
    assert!(reads >= SENDERS, "Redis made {reads} reads for {SENDERS} publishes sent 2 ms apart");
}
