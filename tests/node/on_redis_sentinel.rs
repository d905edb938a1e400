//! Real nodes behind real Redis Sentinels (`ROOKERY_REDIS_SENTINELS`): they find the primary
//! through Sentinel and follow it when its replica is promoted.

use serde_json::json;

use crate::{
    helpers::{Endpoint, TestApp, spawn_app, wait_ready},
    redis_sentinel::{MASTER, Sentinels},
    redis_server::RedisServer,
};

async fn node(sentinels: &Sentinels, id: &str) -> TestApp {
    let urls = sentinels.urls();
    spawn_app(&[
        ("ROOKERY_REDIS_SENTINELS", &urls),
        ("ROOKERY_REDIS_SENTINEL_MASTER", MASTER),
        ("ROOKERY_REDIS_MIN_REPLICAS", "1"),
        ("ROOKERY_NODE_ID", id),
    ])
    .await
}

/// A primary, its replica and three Sentinels; the nodes ack only what the replica has. The
/// primary is killed: the Sentinels promote the replica, the nodes follow it, and nothing acked
/// is lost; sends are `not_replicated` until the old primary is back as the new one's replica.
#[actix_web::test]
async fn nodes_behind_sentinel_follow_a_failover_and_lose_nothing_acked() {
    let (mut primary, replica, sentinels) = tokio::task::spawn_blocking(|| {
        let primary = RedisServer::start();
        let replica = RedisServer::start_replica_of(&primary);
        let sentinels = Sentinels::start(primary.port);
        (primary, replica, sentinels)
    })
    .await
    .expect("start Redis and the Sentinels");
    let (a, b) = (node(&sentinels, "node-a").await, node(&sentinels, "node-b").await);
    let (mut alice, mut bob) = (a.client("alice").await, b.client("bob").await);
    alice.join("lobby").await;
    bob.join("lobby").await;
    let mut acked = Vec::new();
    for n in 0..5 {
        acked.push(alice.say_until_acked("lobby", &format!("before {n}"), &format!("b-{n}")).await);
    }

    primary.kill();
    let old = primary.port;
    let (primary, sentinels) = tokio::task::spawn_blocking(move || {
        let promoted = sentinels.wait_for_failover(old);
        assert_ne!(promoted, old);
        (primary, sentinels)
    })
    .await
    .expect("failover");
    assert_eq!(sentinels.primary(), replica.port.to_string(), "the replica was promoted");
    let refused = alice.request(json!({"type":"send","room":"lobby","body":"after","key":"a-1"})).await;
    assert_eq!(refused["type"], "error", "no replica confirms it yet: {refused}");

    // The old primary comes back empty, as the new primary's replica (the Sentinels would make
    // it one too, in their own time).
    let promoted = replica.port.to_string();
    let _primary = tokio::task::spawn_blocking(move || {
        let mut primary = primary;
        primary.restart();
        crate::redis_cluster::cli(primary.port, &["REPLICAOF", "127.0.0.1", &promoted]).expect("REPLICAOF");
        primary.wait_until_synced();
        primary
    })
    .await
    .expect("restart the old primary");
    acked.push(alice.say_until_acked("lobby", "after", "a-1").await);

    // The promoted replica has everything acked.
    bob.expect_exactly_acked("lobby", &acked).await;
    wait_ready(&a).await;
    wait_ready(&b).await;
}
