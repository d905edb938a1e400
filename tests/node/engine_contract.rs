//! The engine contract, run against every engine: the in-memory one, Redis (on a real
//! redis-server started for each check), and Redis on a real three-primary Redis Cluster.

use std::sync::Arc;

use rookery::engine::{
    Delivery, Engine, MemoryEngine,
    redis::{RedisConfig, RedisEngine, RedisTarget},
};

use crate::{contract, redis_cluster::RedisCluster, redis_server::RedisServer};

async fn memory_engine(history_len: usize, delivery: Arc<dyn Delivery>) -> Arc<dyn Engine> {
    Arc::new(MemoryEngine::new(history_len, delivery).with_presence_max_users(contract::PRESENCE_MAX_USERS))
}

async fn redis_engine(history_len: usize, delivery: Arc<dyn Delivery>) -> (Arc<dyn Engine>, RedisServer) {
    let server = RedisServer::start();
    let engine = connect(RedisTarget::Server(server.url().into()), 4, history_len, delivery).await;
    (engine, server)
}

/// The engine on a cluster with sixteen shards, so the rooms of the contract land on every
/// primary.
async fn redis_cluster_engine(history_len: usize, delivery: Arc<dyn Delivery>) -> (Arc<dyn Engine>, RedisCluster) {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0)).await.expect("start the cluster");
    let seeds = cluster.seeds().split(',').map(|seed| seed.to_owned().into()).collect();
    let engine = connect(RedisTarget::Cluster(seeds), 16, history_len, delivery).await;
    (engine, cluster)
}

async fn connect(
    target: RedisTarget,
    bus_shards: u32,
    history_len: usize,
    delivery: Arc<dyn Delivery>,
) -> Arc<dyn Engine> {
    let config = RedisConfig {
        target,
        node_id: "contract-node".into(),
        bus_shards,
        bus_retention_ms: 600_000,
        history_len,
        read_batch: 100,
        read_interval: std::time::Duration::from_millis(2),
        publish_interval: std::time::Duration::from_millis(2),
        node_ttl_ms: 15_000,
        max_lag_ms: 10_000,
        presence_max_users: contract::PRESENCE_MAX_USERS,
        min_replicas: 0,
    };
    let engine = RedisEngine::connect(config, delivery, rookery::telemetry::Metrics::new())
        .await
        .expect("connect to the test Redis");
    Arc::new(engine)
}

mod memory {
    crate::engine_contract_tests!(super::memory_engine);
}

mod redis {
    crate::engine_contract_tests!(super::redis_engine);
}

mod redis_cluster {
    crate::engine_contract_tests!(super::redis_cluster_engine);
}
