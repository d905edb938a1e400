//! The engine contract, run against every engine: the in-memory one and Redis (on a real
//! redis-server started for each check).

use std::sync::Arc;

use rookery::engine::{
    Delivery, Engine, MemoryEngine,
    redis::{RedisConfig, RedisEngine},
};

use crate::{contract, redis_server::RedisServer};

async fn memory_engine(history_len: usize, delivery: Arc<dyn Delivery>) -> Arc<dyn Engine> {
    Arc::new(MemoryEngine::new(history_len, delivery).with_presence_max_users(contract::PRESENCE_MAX_USERS))
}

async fn redis_engine(history_len: usize, delivery: Arc<dyn Delivery>) -> (Arc<dyn Engine>, RedisServer) {
    let server = RedisServer::start();
    let config = RedisConfig {
        url: server.url().into(),
        node_id: "contract-node".into(),
        bus_shards: 4,
        bus_retention_ms: 600_000,
        history_len,
        read_batch: 100,
        read_interval: std::time::Duration::from_millis(2),
        node_ttl_ms: 15_000,
        max_lag_ms: 10_000,
        presence_max_users: contract::PRESENCE_MAX_USERS,
    };
    let engine = RedisEngine::connect(config, delivery, rookery::telemetry::Metrics::new())
        .await
        .expect("connect to the test redis-server");
    (Arc::new(engine), server)
}

mod memory {
    crate::engine_contract_tests!(super::memory_engine);
}

mod redis {
    crate::engine_contract_tests!(super::redis_engine);
}
